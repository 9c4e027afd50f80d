"""The audit chain anchored outside the database (issue 13, item 4; audit/anchors.py): each close and issue
appends the signed head to the environment's anchor file, and `billing audit verify` finds an insider's rewrite
(an entry deleted, the rest re-hashed, the head updated: the chain alone says intact), a cut log, and a forged
anchor."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import bindparam, select, text

from audit.anchors import Anchoring, write_anchor
from audit.log import AuditEntry, AuditHead, entry_hash

from .test_lifecycle import customers  # noqa: F401  (the fixture)

KEY = "k5Qf0vJ2nR8sW3xY6zA9bC1dE4gH7jL0mN2pT5uV8wX"


@pytest.fixture
def anchors(tmp_path, monkeypatch):
    path = tmp_path / "anchors" / "test.jsonl"
    monkeypatch.setenv("BILLING_AUDIT_KEY", KEY)
    monkeypatch.setenv("BILLING_AUDIT_ANCHOR_FILE", str(path))
    return path


def _lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _head(sessions) -> int:
    with sessions() as session:
        return session.get(AuditHead, 1).sequence


def _rewrite(sessions, delete: list[int]) -> None:
    """An insider with the owner's rights: deletes entries, re-hashes every one after, updates the head."""
    with sessions.begin() as session:
        connection = session.connection()
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql("DROP TRIGGER audit_log_append_only ON audit_log")
        else:
            connection.exec_driver_sql("DROP TRIGGER audit_log_no_update")
            connection.exec_driver_sql("DROP TRIGGER audit_log_no_delete")
        connection.execute(text("DELETE FROM audit_log WHERE sequence IN :gone").bindparams(
            bindparam("gone", expanding=True)), {"gone": delete})
    with sessions.begin() as session:
        previous, sequence = "0" * 64, 0
        for entry in session.scalars(select(AuditEntry).order_by(AuditEntry.sequence)).all():
            sequence += 1
            fields = {column: getattr(entry, column) for column in
                      ("at", "actor", "action", "resource", "ip", "environment", "outcome", "details")}
            session.delete(entry)
            session.flush()
            moved = AuditEntry(sequence=sequence, prev_hash=previous, **fields)
            moved.hash = entry_hash(moved)
            session.add(moved)
            session.flush()
            previous = moved.hash
        head = session.get(AuditHead, 1)
        head.sequence, head.hash = sequence, previous


def test_closes_and_issues_are_anchored_and_verify_says_so(customers, cli, sessions, anchors):
    assert cli("close", "--period", "2026-05", "--customer", "tiny")[0] == 0
    [closed] = _lines(anchors)
    assert closed["sequence"] == _head(sessions) and closed["environment"] == "test" and len(closed["mac"]) == 64
    assert cli("approve", "--customer", "tiny", "--period", "2026-05")[0] == 0
    assert cli("issue", "--customer", "tiny", "--period", "2026-05")[0] == 0
    assert [line["sequence"] for line in _lines(anchors)][-1] == _head(sessions)
    status, out, _ = cli("audit", "verify")
    assert status == 0 and "intact" in out and f"3 signed anchors agree, the last at entry {_head(sessions)}" in out
    assert cli("audit", "anchor")[0] == 0 and len(_lines(anchors)) == 4


def test_a_rewritten_chain_is_found_by_its_anchors(customers, cli, sessions, anchors, monkeypatch):
    assert cli("close", "--period", "2026-05", "--customer", "tiny")[0] == 0
    assert cli("close", "--period", "2026-05", "--customer", "c1")[0] == 0
    _rewrite(sessions, delete=[2])
    monkeypatch.delenv("BILLING_AUDIT_KEY")   # without its anchors, the re-hashed chain passes
    assert cli("audit", "verify")[0] == 0
    monkeypatch.setenv("BILLING_AUDIT_KEY", KEY)
    status, _, err = cli("audit", "verify")
    assert status == 1 and "does not match its anchors" in err and "the chain was rewritten" in err


def test_a_cut_log_and_a_forged_anchor_are_found(customers, cli, sessions, anchors):
    assert cli("close", "--period", "2026-05", "--customer", "tiny")[0] == 0
    last = _head(sessions)
    _rewrite(sessions, delete=[last])
    status, _, err = cli("audit", "verify")
    assert status == 1 and f"entry {last}, anchored at" in err and "it was cut" in err

    anchors.write_text("", encoding="utf-8")
    forged = Anchoring(anchors, b"a key the insider made up", "test")
    with sessions() as session:
        head = session.get(AuditHead, 1)
        write_anchor(forged, head.sequence, head.hash)
    status, _, err = cli("audit", "verify")
    assert status == 1 and "is not signed with this environment's audit key" in err


def test_the_portal_anchors_what_it_records_too(db_url, cli, anchors, monkeypatch):
    from admin_app import create_app
    from admin_app.database import SESSIONS
    from audit.log import Actor, record

    assert cli("db", "upgrade")[0] == 0
    monkeypatch.setenv("BILLING_SECRET_KEY", "test-only")
    app = create_app({"TESTING": True, "DATABASE_URL": db_url})
    try:
        with app.extensions[SESSIONS].begin() as session:
            record(session, Actor("finance@example.com", "test"), "invoice.view", "invoice:x")
        assert not anchors.exists()   # a view is not anchored
        with app.extensions[SESSIONS].begin() as session:
            record(session, Actor("finance@example.com", "test"), "invoice.issue", "invoice:x")
            sequence = record(session, Actor("finance@example.com", "test"), "invoice.view", "invoice:x").sequence
        assert [line["sequence"] for line in _lines(anchors)] == [sequence]   # the head the transaction committed
    finally:
        app.extensions["billing.engine"].dispose()
