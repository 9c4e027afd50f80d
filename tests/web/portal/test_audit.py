"""The audit log: what sign-in and views record, the viewer's filters, and tamper detection.

Tampering needs the rights to drop the append-only triggers first (the database
refuses UPDATE and DELETE on the log otherwise); these tests do that, as an
attacker with the owner's rights would, and `verify` / `billing audit verify`
must then name the first entry edited, inserted or deleted.
"""

from __future__ import annotations

import datetime as dt
import re
import threading

import pytest
from db.conftest import cli  # noqa: F401  (tests/db/conftest.py: `billing …` in this process)
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from audit.log import (
    DELETED,
    EDITED,
    INSERTED,
    VOCABULARY,
    Actor,
    AuditEntry,
    canonical,
    details,
    entry_hash,
    record,
    verify,
)
from ledger.models import Invoice

from .conftest import form_post

WHO = Actor("tester@example.com", "test", ip="192.0.2.7")


def chain(sessions, count: int = 5) -> None:
    with sessions.begin() as session:
        for n in range(1, count + 1):
            record(session, WHO, "invoice.list", f"invoice:acme-health/2026-0{n}", details={"n": n})


def tamper(sessions, *statements: str) -> None:
    with sessions.begin() as session:
        connection = session.connection()
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql("DROP TRIGGER audit_log_append_only ON audit_log")
        else:
            connection.exec_driver_sql("DROP TRIGGER audit_log_no_update")
            connection.exec_driver_sql("DROP TRIGGER audit_log_no_delete")
        for statement in statements:
            connection.execute(text(statement))


def found(sessions):
    with sessions() as session:
        broken = verify(session)
    return (broken.sequence, broken.kind) if broken else None


def forged_row(sessions, sequence: int, prev_hash: str) -> str:
    """An INSERT of a well-formed entry (its own hash right) with this sequence and link."""
    entry = AuditEntry(sequence=sequence, at=dt.datetime(2026, 5, 1, tzinfo=dt.timezone.utc), actor="intruder",
                       action="invoice.view", resource="invoice:x", ip=None, environment="test", outcome="success",
                       details={}, prev_hash=prev_hash)
    entry.hash = entry_hash(entry)
    with sessions() as session:
        at = "'2026-05-01 00:00:00'" if session.connection().dialect.name == "sqlite" else \
            "'2026-05-01 00:00:00+00'"
    return (f"INSERT INTO audit_log (sequence, at, actor, action, resource, ip, environment, outcome, details, "
            f"prev_hash, hash) VALUES ({sequence}, {at}, 'intruder', 'invoice.view', 'invoice:x', NULL, 'test', "
            f"'success', '{{}}', '{prev_hash}', '{entry.hash}')")


def hash_of(sessions, sequence: int) -> str:
    with sessions() as session:
        return session.get(AuditEntry, sequence).hash


def test_an_intact_chain_verifies(portal_sessions, cli):  # noqa: F811
    chain(portal_sessions)
    assert found(portal_sessions) is None
    status, out, _ = cli("audit", "verify")
    assert status == 0 and "the audit log is intact: 5 entries" in out


def test_the_database_refuses_to_change_or_delete_entries(portal_sessions):
    chain(portal_sessions, 2)
    for statement in ("UPDATE audit_log SET actor = 'someone else'", "DELETE FROM audit_log WHERE sequence = 1"):
        with pytest.raises(DBAPIError, match="append-only"):
            with portal_sessions.begin() as session:
                session.execute(text(statement))
    assert found(portal_sessions) is None


@pytest.mark.parametrize("how, statements, first", [
    ("edit a field", ["UPDATE audit_log SET actor = 'someone else' WHERE sequence = 3"], (3, EDITED)),
    ("edit the details", ["UPDATE audit_log SET details = '{\"n\": 9}' WHERE sequence = 2"], (2, EDITED)),
    ("edit the time", ["UPDATE audit_log SET at = '2020-01-01 00:00:00' WHERE sequence = 4"], (4, EDITED)),
    ("delete a middle entry", ["DELETE FROM audit_log WHERE sequence = 2"], (2, DELETED)),
    ("delete the first entries", ["DELETE FROM audit_log WHERE sequence <= 2"], (1, DELETED)),
    ("delete the last entry", ["DELETE FROM audit_log WHERE sequence = 5"], (5, DELETED)),
    ("delete everything", ["DELETE FROM audit_log"], (1, DELETED)),
    ("insert after the last", ["forged 6 after 5"], (6, INSERTED)),
    ("insert before the first", ["forged 0 after genesis"], (0, INSERTED)),
    ("insert in the middle", ["UPDATE audit_log SET sequence = sequence + 10 WHERE sequence >= 3",
                              "UPDATE audit_log SET sequence = sequence - 9 WHERE sequence >= 13",
                              "forged 3 after 2"], (3, INSERTED)),
])
def test_tampering_is_found(portal_sessions, cli, how, statements, first):  # noqa: F811
    chain(portal_sessions)
    sql = []
    for statement in statements:
        if statement.startswith("forged"):
            _, sequence, _, after = statement.split()
            prev = "0" * 64 if after == "genesis" else hash_of(portal_sessions, int(after))
            statement = forged_row(portal_sessions, int(sequence), prev)
        sql.append(statement)
    tamper(portal_sessions, *sql)
    assert found(portal_sessions) == first, how
    status, _, err = cli("audit", "verify")
    assert status == 1 and f"the audit log is broken at entry {first[0]}: {first[1]}" in err


def test_an_edit_with_its_hash_recomputed_is_found_by_the_next_link(portal_sessions):
    chain(portal_sessions)
    with portal_sessions() as session:
        entry = session.get(AuditEntry, 2)
        entry.actor = "someone else"
        new_hash = entry_hash(entry)
    tamper(portal_sessions, f"UPDATE audit_log SET actor = 'someone else', hash = '{new_hash}' WHERE sequence = 2")
    assert found(portal_sessions) == (2, EDITED)


def test_the_hash_covers_a_canonical_json_of_the_entry():
    assert canonical({"b": 1, "a": "é"}) == '{"a":"é","b":1}'.encode()


def test_sign_in_and_views_are_recorded_with_address_and_environment(portal_client, users, portal_clock,
                                                                      portal_sessions, invoice_ids):
    user = users["customer_finance"]
    form_post(portal_client, "/login", {"email": user.email, "password": "wrong password!"})
    form_post(portal_client, "/login", {"email": user.email, "password": "correct horse battery staple"})
    form_post(portal_client, "/login/code", {"code": user.code(portal_clock())})
    portal_client.get("/invoices")
    portal_client.get(f"/invoices/{invoice_ids['customer']}")
    portal_client.get(f"/invoices/{invoice_ids['other']}")
    portal_client.get("/audit")
    form_post(portal_client, "/logout", {}, page="/")
    with portal_sessions() as session:
        rows = session.scalars(select(AuditEntry).where(AuditEntry.actor == user.email)
                               .order_by(AuditEntry.sequence)).all()
    assert [(e.action, e.outcome) for e in rows] == [
        ("login.password", "failure"), ("login.password", "success"), ("login.mfa", "success"),
        ("invoice.list", "success"), ("invoice.view", "success"), ("invoice.view", "denied"),
        ("access.denied", "denied"), ("logout", "success")]
    assert rows[4].resource == f"invoice:acme-health/2026-04#{invoice_ids['customer']}"
    assert rows[5].resource == f"invoice:northwind/2026-02#{invoice_ids['other']}"
    assert {(e.ip, e.environment) for e in rows} == {("127.0.0.1", "test")}
    assert found(portal_sessions) is None


def test_the_viewer_filters(signed_in_client, portal_sessions):
    chain(portal_sessions, 3)
    with portal_sessions.begin() as session:
        record(session, Actor("ana@example.com", "test"), "login.password", "user:ana@example.com",
               outcome="failure", at=dt.datetime(2026, 3, 14, 9, 30, tzinfo=dt.timezone.utc))
    viewer = signed_in_client("finance")

    def shown(**query) -> str:
        response = viewer.get("/audit", query_string=query)
        assert response.status_code == 200
        return response.get_data(as_text=True)

    page = shown()
    assert "tester@example.com" in page and "ana@example.com" in page
    assert "tester@example.com" not in shown(actor="ANA")
    assert "ana@example.com" in shown(action="login") and "tester@example.com" not in shown(action="login")
    assert "ana@example.com" not in shown(action="log")   # an action or its dotted prefix, not any prefix
    assert "invoice:acme-health/2026-02" in shown(resource="2026-02")
    assert "invoice:acme-health/2026-01" not in shown(resource="2026-02")
    assert "ana@example.com" in shown(since="2026-03-14", until="2026-03-14")
    assert "ana@example.com" not in shown(since="2026-03-15")
    assert "ana@example.com" not in shown(until="2026-03-13")
    assert "No entries match" in shown(actor="%") and "No entries match" in shown(resource="%")   # literally
    assert "Not a valid date value" in shown(since="14/03/2026")


def test_concurrent_writers_keep_one_unbroken_chain(portal_sessions):
    def write(worker: int) -> None:
        for n in range(20):
            with portal_sessions.begin() as session:
                record(session, Actor(f"worker-{worker}", "test"), "invoice.view", f"invoice:{worker}/{n}")

    threads = [threading.Thread(target=write, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with portal_sessions() as session:
        assert session.scalars(select(AuditEntry.sequence).order_by(AuditEntry.sequence)).all() == list(range(1, 81))
    assert found(portal_sessions) is None


def keys_by_entry_point(sessions, action: str) -> dict[tuple[str, str], set[frozenset]]:
    """(portal or cli, outcome) → the sets of detail keys its `action` entries have."""
    found: dict[tuple[str, str], set[frozenset]] = {}
    with sessions() as session:
        for entry in session.scalars(select(AuditEntry).where(AuditEntry.action == action)):
            where = "cli" if entry.actor.startswith("cli:") else "portal"
            found.setdefault((where, entry.outcome), set()).add(frozenset(entry.details))
    return found


def test_the_portal_and_the_command_line_record_a_save_with_the_same_keys(
        signed_in_client, portal_sessions, cli, tmp_path, monkeypatch):  # noqa: F811
    from .test_contracts_pages import ACME, save

    monkeypatch.setenv("BILLING_ENV", "test")
    client = signed_in_client("deal_desk")
    assert save(client, ACME.replace("rate 0.85", "rate 0.87"), "renewal", "2027-01").status_code == 302
    assert save(client, ACME.replace("rate 0.85", "rate 0.86"), "too early", "2026-04").status_code == 400
    path = tmp_path / "acme-health.pricing"
    path.write_text(ACME.replace("rate 0.85", "rate 0.88"), encoding="utf-8")
    assert cli("contract", "save", path, "--effective", "2027-02", "--comment", "renewal")[0] == 0
    assert cli("contract", "save", path, "--effective", "2026-04", "--comment", "too early")[0] == 1
    found = keys_by_entry_point(portal_sessions, "contract.save")
    vocabulary = {frozenset(VOCABULARY["contract.save"])}
    assert found == {(where, outcome): vocabulary for where in ("portal", "cli") for outcome in ("success", "failure")}
    with portal_sessions() as session:
        saves = session.scalars(select(AuditEntry).where(AuditEntry.action == "contract.save")
                                .order_by(AuditEntry.sequence)).all()
    assert [(e.details["result"], e.details["in_effect_from"], e.details["source"]) for e in saves] == [
        ("saved", "2027-01", "portal editor"), (None, "2026-04", "portal editor"),
        ("saved", "2027-02", f"file {path}"), (None, "2026-04", f"file {path}")]
    assert all(e.details["reason"] for e in saves if e.outcome == "failure")


def test_a_refused_lifecycle_step_is_recorded_alike_from_the_portal_and_the_command_line(
        signed_in_client, portal_sessions, invoice_ids, cli, monkeypatch):  # noqa: F811
    monkeypatch.setenv("BILLING_ENV", "test")
    finance = signed_in_client("finance")
    issued = f"/invoices/{invoice_ids['customer']}"
    with portal_sessions() as session:
        number = session.get(Invoice, invoice_ids["customer"]).number
    for action in ("approve", "issue"):
        assert form_post(finance, f"{issued}/{action}", {}, page=issued).status_code == 302
        assert cli(action, "--number", number)[0] == 1
    assert cli("void", "--customer", "acme-health", "--period", "2026-06", "--reason", "wrong sites")[0] == 1
    draft = f"/invoices/{invoice_ids['draft']}"
    assert form_post(finance, f"{draft}/void", {"reason": "wrong sites"}, page=draft).status_code in (302, 400)
    for action in ("invoice.approve", "invoice.issue", "invoice.void"):
        found = keys_by_entry_point(portal_sessions, action)
        assert found.get(("portal", "failure")) == found.get(("cli", "failure")) == {frozenset(VOCABULARY[action])}, \
            (action, found)
        assert all(keys <= set(VOCABULARY[action]) for keysets in found.values() for keys in keysets)


def test_the_portal_and_the_command_line_record_a_view_with_the_same_keys(
        signed_in_client, portal_sessions, invoice_ids, cli, monkeypatch):  # noqa: F811
    monkeypatch.setenv("BILLING_ENV", "test")
    finance = signed_in_client("finance")
    assert finance.get(f"/invoices/{invoice_ids['customer']}").status_code == 200
    assert finance.get("/invoices/999999").status_code == 404
    assert cli("invoice", "--customer", "acme-health", "--period", "2026-04", "--format", "json")[0] == 0
    found = keys_by_entry_point(portal_sessions, "invoice.view")
    vocabulary = {frozenset(VOCABULARY["invoice.view"])}
    assert found == {("portal", "success"): vocabulary, ("portal", "failure"): vocabulary,
                     ("cli", "success"): vocabulary}, found
    with portal_sessions() as session:
        views = session.scalars(select(AuditEntry).where(AuditEntry.action == "invoice.view")
                                .order_by(AuditEntry.sequence)).all()
    assert [(e.outcome, e.details["status"], e.details["format"], e.details["computed"], e.details["reason"])
            for e in views] == [("success", "issued", "html", False, None),
                                ("failure", None, None, None, "no such invoice"),
                                ("success", "issued", "json", False, None)]
    assert views[2].details["output"] == "standard output"


def test_the_portal_and_the_command_line_record_a_close_with_the_same_keys(
        signed_in_client, portal_sessions, invoice_ids, cli, monkeypatch):  # noqa: F811
    monkeypatch.setenv("BILLING_ENV", "test")
    finance = signed_in_client("finance")
    for period in ("2026-06", "2026-05"):   # June's draft recomputed; May is issued: refused
        assert form_post(finance, "/invoices/close", {"period": period, "customer": "acme-health"},
                         page="/invoices").status_code == 302
        assert cli("close", "--period", period, "--customer", "acme-health")[0] in (0, 1)
    found = keys_by_entry_point(portal_sessions, "invoice.close")
    vocabulary = {frozenset(VOCABULARY["invoice.close"])}
    assert found == {(where, outcome): vocabulary for where in ("portal", "cli") for outcome in ("success", "failure")}
    assert "outcome" not in VOCABULARY["invoice.close"]   # the entry's own column says whether it succeeded
    with portal_sessions() as session:
        closes = session.scalars(select(AuditEntry).where(AuditEntry.action == "invoice.close")
                                 .order_by(AuditEntry.sequence)).all()
        june = session.scalar(select(Invoice.id).where(Invoice.customer == "acme-health", Invoice.status == "draft"))
    assert [(e.outcome, e.details["code"]) for e in closes] == [
        ("success", None), ("success", None), ("failure", "already-issued"), ("failure", "already-issued")]
    assert [e.resource for e in closes[:2]] == [f"invoice:acme-health/2026-06#{june}"] * 2
    assert closes[0].details["result"] in ("created", "refreshed", "unchanged")
    assert closes[1].details["result"] == "unchanged" and closes[0].details["total"] == closes[1].details["total"]
    assert {e.details["reconciliation"] for e in closes[:2]} <= {"passed", "explained", "failed"}
    assert closes[0].details["reconciliation"] == closes[1].details["reconciliation"]
    runs = keys_by_entry_point(portal_sessions, "reconciliation.run")   # one function records it for both
    assert runs == {(where, "success"): {frozenset(VOCABULARY["reconciliation.run"])} for where in ("portal", "cli")}


def test_the_journal_is_recorded_with_the_same_keys_downloaded_or_exported(
        signed_in_client, portal_sessions, cli, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv("BILLING_ENV", "test")
    finance = signed_in_client("finance")
    assert finance.get("/reconciliation/journal?period=2026-05").status_code == 200
    target = tmp_path / "journal.csv"
    assert cli("journal", "--period", "2026-05", "--customer", "acme-health", "--output", target)[0] == 0
    assert VOCABULARY["journal.download"] == VOCABULARY["journal.export"]   # one read, named by where it went
    keys = {frozenset(VOCABULARY["journal.export"])}
    assert keys_by_entry_point(portal_sessions, "journal.download") == {("portal", "success"): keys}
    assert keys_by_entry_point(portal_sessions, "journal.export") == {("cli", "success"): keys}
    with portal_sessions() as session:
        download, export = (session.scalars(select(AuditEntry).where(AuditEntry.action == action)).one()
                            for action in ("journal.download", "journal.export"))
    assert (download.details["format"], download.details["customer"], download.details["output"]) == ("csv", None, None)
    assert (export.details["format"], export.details["customer"], export.details["output"]) == (
        "csv", "acme-health", str(target))
    assert target.read_text(encoding="utf-8").count("\n") == export.details["lines"] + 1   # the header, then each line


def test_the_audit_page_shows_a_close_and_a_view_in_their_vocabulary(signed_in_client, portal_sessions, invoice_ids):
    finance = signed_in_client("finance")
    form_post(finance, "/invoices/close", {"period": "2026-06", "customer": "acme-health"}, page="/invoices")
    assert finance.get(f"/invoices/{invoice_ids['customer']}").status_code == 200
    html = finance.get("/audit").get_data(as_text=True)
    assert re.search(r"<span>result: (created|refreshed|unchanged)</span>", html), html
    assert re.search(r"<span>reconciliation: (passed|explained|failed)</span>", html)
    assert "<span>format: html</span>" in html and "<span>status: issued</span>" in html
    assert "outcome: " not in html and "reason: " not in html   # no detail named outcome; none shown when None


def test_a_key_outside_an_actions_vocabulary_is_refused(portal_sessions):
    with portal_sessions() as session, pytest.raises(ValueError, match="effective"):
        record(session, WHO, "contract.save", "contract:acme-health", details={"effective": "2026-05"})
    assert details("invoice.void", reason="wrong sites") == {"number": None, "reason": "wrong sites", "code": None}


def test_the_viewer_sorts_and_pages_on_the_server(signed_in_client, portal_sessions):
    with portal_sessions.begin() as session:
        for n in range(230):
            record(session, Actor(f"actor-{n % 7}@example.com", "test"), "invoice.view", f"invoice:x/{n:03d}")
    viewer = signed_in_client("admin")

    def pages(**query) -> list[list[int]]:
        """The sequences each page shows, following its Next link to the end."""
        found, path = [], "/audit"
        while path:
            page = viewer.get(path, query_string=query if path == "/audit" else None).get_data(as_text=True)
            found.append([int(n) for n in re.findall(r'<td class="num">(\d+)</td>', page)])
            following = re.search(r'id="next-page" href="([^"]+)"', page)
            path = following.group(1).replace("&amp;", "&") if following else None
        return found

    with portal_sessions() as session:
        rows = session.scalars(select(AuditEntry).where(AuditEntry.resource.like("invoice:x/%"))).all()
    by_actor = [e.sequence for e in sorted(rows, key=lambda e: (e.actor, e.sequence))]
    shown = pages(resource="invoice:x/", sort="actor", order="asc")
    assert [len(page) for page in shown] == [100, 100, 30]
    assert [n for page in shown for n in page] == by_actor
    newest = pages(resource="invoice:x/")
    assert [n for page in newest for n in page] == sorted((e.sequence for e in rows), reverse=True)
    by_resource = pages(resource="invoice:x/", sort="resource", order="desc")[0]
    assert by_resource == [e.sequence for e in sorted(rows, key=lambda e: e.resource, reverse=True)][:100]
    page = viewer.get("/audit", query_string={"sort": "password_hash"}).get_data(as_text=True)
    assert "Not a valid choice" in page


def test_long_values_wrap_inside_the_card(signed_in_client, portal_sessions):
    with portal_sessions.begin() as session:
        record(session, WHO, "invoice.issue", "invoice:acme-health/2026-05#1", details={"pdf_sha256": "f" * 64})
    page = signed_in_client("admin").get("/audit").get_data(as_text=True)
    assert '<td class="details wrap-anywhere"><span>pdf sha256: ' + "f" * 64 in page
    css = signed_in_client("admin").get("/static/audit.css").get_data(as_text=True)
    assert "overflow-wrap: anywhere" in css and "audit.css" in page
