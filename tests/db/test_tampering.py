"""Frozen rows against an insider (issue 13, item 3): SQLite's INSERT OR REPLACE and PostgreSQL's ON CONFLICT DO
UPDATE cannot replace an issued invoice, its PDF, its void, a credit note or an audit entry (migration 0007); and
an issued invoice changed all the same (its triggers dropped, as the database's owner could) is withheld and
reported wherever it is read: by the lifecycle and the command line, by the reconciliation, by the portal."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from engine.refusal import Refused
from ledger.invoices import Selector, frozen_mismatch
from ledger.models import Invoice
from lifecycle.credit_notes import credit
from lifecycle.transitions import existing, void
from review.reconcile import DISCREPANCY, reconcile

from .test_lifecycle import MAY, THRESHOLD, WHO, _issue, customers, snapshot  # noqa: F401  (the fixture)

# table → its key columns and one column changed in the replacement
REPLACED = {"invoices": ("id", "document"), "invoice_pdfs": ("invoice_id", "sha256"),
            "invoice_voids": ("invoice_id", "reason"), "credit_notes": ("id", "reason"),
            "audit_log": ("sequence", "actor")}
FORGED = b"%PDF-1.7 a forged invoice"
CHANGED = {"document": "'{}'", "sha256": "'0000'", "reason": "'rewritten'", "actor": "'someone else'"}


def _replace(sessions, table: str) -> None:
    """Writes a copy of the table's first row, one column changed, over it: the way each database allows."""
    key, column = REPLACED[table]
    with sessions.begin() as session:
        connection = session.connection()
        connection.exec_driver_sql(f"CREATE TEMP TABLE copied AS SELECT * FROM {table} ORDER BY {key} LIMIT 1")
        connection.exec_driver_sql(f"UPDATE copied SET {column} = {CHANGED[column]}")
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql(f"INSERT OR REPLACE INTO {table} SELECT * FROM copied")
        else:
            connection.exec_driver_sql(f"INSERT INTO {table} SELECT * FROM copied ON CONFLICT ({key}) "
                                       f"DO UPDATE SET {column} = EXCLUDED.{column}")


def test_frozen_rows_cannot_be_replaced(customers, sessions):
    issued = _issue(sessions, "tiny", MAY)
    with sessions.begin() as session:
        credit(session, session.get(Invoice, issued.id), WHO, "a goodwill credit", [("s1", "1.00")], prefix="TEST")
    other = _issue(sessions, "c1", MAY)
    with sessions.begin() as session:
        void(session, Selector(number=other.number), WHO, "to test its void")
    before = snapshot(sessions)
    for table in REPLACED:
        with pytest.raises(DBAPIError, match="cannot be changed or deleted|append-only"):
            _replace(sessions, table)
    assert snapshot(sessions) == before


def _tamper(sessions, invoice_id: int, statement: str) -> None:
    """What an insider who may drop triggers can do to an issued invoice."""
    with sessions.begin() as session:
        connection = session.connection()
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql("ALTER TABLE invoices DISABLE TRIGGER USER")
            connection.exec_driver_sql("ALTER TABLE invoice_pdfs DISABLE TRIGGER USER")
        else:
            for trigger in ("invoices_issued_no_update", "invoice_pdfs_no_update"):
                connection.exec_driver_sql(f"DROP TRIGGER {trigger}")
        connection.execute(text(statement), {"id": invoice_id, "forged": FORGED,
                                             "forged_sha": hashlib.sha256(FORGED).hexdigest()})


@pytest.mark.parametrize("statement, words", [
    ("UPDATE invoices SET document = CAST(replace(CAST(document AS TEXT), 's1', 's9') AS {json}) WHERE id = :id",
     "stored document"),
    ("UPDATE invoice_pdfs SET pdf = :forged WHERE invoice_id = :id", "stored PDF"),
    ("UPDATE invoice_pdfs SET pdf = :forged, sha256 = :forged_sha WHERE invoice_id = :id", "stored PDF"),
])
def test_a_tampered_invoice_is_withheld_and_reported(customers, sessions, statement, words):
    issued = _issue(sessions, "tiny", MAY)
    with sessions() as session:
        assert frozen_mismatch(session, session.get(Invoice, issued.id)) is None
        json_type = "JSON" if session.connection().dialect.name == "postgresql" else "TEXT"
    statement = statement.format(json=json_type)
    _tamper(sessions, issued.id, statement)
    with sessions() as session:
        assert words in frozen_mismatch(session, session.get(Invoice, issued.id))
        with pytest.raises(Refused, match=f"{words} of invoice {issued.number} is not the one issued"):
            existing(session, Selector(number=issued.number))
        report = reconcile(session, "tiny", MAY, THRESHOLD)
    [finding] = [f for f in report.findings if f.kind.startswith("the stored invoice")]
    assert finding.status == DISCREPANCY and words in finding.detail
