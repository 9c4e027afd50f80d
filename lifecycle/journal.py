"""The journal of a period: every document posted in it, as double-entry lines (invoicing/journal.py).

    lines = period_journal(session, Period(2026, 7), Accounts.of(environment.accounts), "Europe/London")
    render_csv(lines)        # what `billing journal --period 2026-07` writes and finance downloads

A document is posted on the day it took effect, in the seller's time zone: an
invoice on its issue date (its tax point), a credit note on the day it was issued,
a void on the day it was recorded (the reversal of every line of its invoice). So
the journal of July holds what was issued, credited and voided in July, whatever
billing period the invoices charge (each line names it): what an accountant posts
in July's books and what July's VAT return declares. Drafts and approved invoices
are not in the books yet.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.periods import Period
from invoicing.journal import (
    Accounts,
    JournalLine,
    Posting,
    credit_note_entries,
    invoice_entries,
    reversal,
)
from ledger.models import Invoice, InvoiceVoid
from lifecycle.models import CreditNote

UTC = dt.UTC


def period_journal(session: Session, period: Period, accounts: Accounts, timezone: str = "UTC", *,
                   customer: str | None = None) -> list[JournalLine]:
    """Every journal line posted in `period` (by the posting day in `timezone`), by day, then document."""
    zone = ZoneInfo(timezone)
    start = dt.datetime.combine(period.first_day, dt.time(), zone).astimezone(UTC)
    end = dt.datetime.combine(period.last_day + dt.timedelta(days=1), dt.time(), zone).astimezone(UTC)

    def posted_on(instant: dt.datetime) -> dt.date:
        return instant.astimezone(zone).date()

    def of_customer(query):
        return query if customer is None else query.where(Invoice.customer == customer)

    documents: list[tuple[dt.date, str, int, list[JournalLine]]] = []
    for row in session.scalars(of_customer(select(Invoice).where(
            Invoice.status == "issued", Invoice.issued_at >= start, Invoice.issued_at < end))):
        date = dt.date.fromisoformat(row.document["issue_date"]) if row.document.get("issue_date") \
            else posted_on(row.issued_at)
        documents.append((date, _number(row), 0, invoice_entries(row.document, accounts,
                                                                 Posting(date, _number(row), "invoice"))))
    for row, voided in session.execute(of_customer(select(Invoice, InvoiceVoid).join(
            InvoiceVoid, InvoiceVoid.invoice_id == Invoice.id).where(
            InvoiceVoid.voided_at >= start, InvoiceVoid.voided_at < end))):
        date = posted_on(voided.voided_at)
        issued = invoice_entries(row.document, accounts, Posting(date, _number(row), "invoice"))
        documents.append((date, _number(row), 2, reversal(issued, Posting(date, _number(row), "void"))))
    notes = select(CreditNote, Invoice).join(Invoice, Invoice.id == CreditNote.invoice_id).where(
        CreditNote.issued_at >= start, CreditNote.issued_at < end)
    for note, invoice in session.execute(of_customer(notes)):
        date = posted_on(note.issued_at)
        credited = {"lines": note.lines, "tax": getattr(note, "tax", None), "invoice": _number(invoice)}
        documents.append((date, note.number, 1, credit_note_entries(
            credited, invoice.document, accounts, Posting(date, note.number, "credit note"))))
    documents.sort(key=lambda d: (d[0], d[1], d[2]))
    return [line for *_, lines in documents for line in lines]


def _number(row: Invoice) -> str:
    return row.number or f"invoice #{row.id}"
