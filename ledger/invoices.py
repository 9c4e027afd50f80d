"""Issued invoices: what each one froze, as the next computations need it.

An issued invoice keeps its document, the contract version it was computed
with, and its caps' counts at the start and at the end of its period (exact
decimal strings: a row [site, scope, amount] per site cap, and a row [name,
amount] per figure the account rules carry: the account cap's count, the
commitment's drawdowns and the year's spend), so that

- a later period of the same contract year starts its caps from the last issued
  counts instead of recomputing (engine.evaluate.Carried), and
- late usage of an issued period is recomputed from the counts that period started from.

What an issued invoice froze is checked whenever it is read for a customer or a
step (`frozen_mismatch`): its document and its PDF must have the SHA-256 the
audit log's `invoice.issue` entry recorded (a chain anchored outside the
database, audit/anchors.py), and the PDF the one its own row states. A
mismatch means the database was changed outside the application: the invoice
is withheld and the mismatch reported, never shown as if it were the one issued.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.log import SUCCESS, AuditEntry, invoice_resource
from engine.evaluate import Carried
from engine.periods import Period
from engine.sheet import AccountCounts
from ledger.models import Invoice, InvoicePdf, InvoiceVoid, in_force
from storage.types import decimal_text

CapCounts = dict[tuple[str, str], Decimal]   # (site, cap scope as written) → counted in the contract year


# The account's figures as an issued invoice freezes them, each in a row of two: [name, amount].
ACCOUNT_ROWS = {"account cap": "cap", "commitment drawn": "drawn", "year spend": "spent"}


def counts_json(counts: CapCounts, account: AccountCounts | None = None) -> list[list[str]]:
    rows = [[site, scope, decimal_text(amount)] for (site, scope), amount in sorted(counts.items())]
    if account is not None and account != AccountCounts():
        rows += [[name, decimal_text(getattr(account, field))] for name, field in ACCOUNT_ROWS.items()]
    return rows


def counts_from_json(rows: list[list[str]]) -> CapCounts:
    return {(row[0], row[1]): Decimal(row[2]) for row in rows if len(row) == 3}


def account_counts_from_json(rows: list[list[str]]) -> AccountCounts:
    return AccountCounts(**{ACCOUNT_ROWS[name]: Decimal(amount) for name, amount in (r for r in rows if len(r) == 2)})


def issued_invoices(session: Session, customer: str) -> dict[Period, Invoice]:
    query = select(Invoice).where(Invoice.customer == customer, in_force()).order_by(Invoice.period)
    return {invoice.period: invoice for invoice in session.scalars(query)}


def carried_into(issued: dict[Period, Invoice], year_start: Period, period: Period) -> Carried | None:
    """The counts of the last issued invoice of the contract year before `period`, if any."""
    before = [p for p in issued if year_start <= p < period]
    if not before:
        return None
    last = max(before)
    return Carried(last, counts_from_json(issued[last].cap_counts), account_counts_from_json(issued[last].cap_counts))


def next_open(issued: dict[Period, Invoice], after: Period, last: Period | None) -> Period | None:
    """The first period after `after` without an issued invoice (None past the contract's last period)."""
    period = after.shift(1)
    while period in issued:
        period = period.shift(1)
    return None if last is not None and period > last else period


@dataclass(frozen=True)
class Selector:
    """Which invoice: a customer's for a period, or the one with an invoice number."""

    customer: str | None = None
    period: Period | None = None
    number: str | None = None

    def __str__(self) -> str:
        return self.number or f"the invoice of '{self.customer}' for {self.period}"


def status_of(session: Session, row: Invoice) -> str:
    """draft, approved, issued, or void (an issued invoice with a void recorded)."""
    if row.status == "issued" and session.get(InvoiceVoid, row.id) is not None:
        return "void"
    return row.status


def find(session: Session, which: Selector) -> Invoice | None:
    """By number; or the customer's open (draft, approved) invoice of the period, else the one in force,
    else the last voided one."""
    if which.number is not None:
        return session.scalar(select(Invoice).where(Invoice.number == which.number))
    rows = session.scalars(select(Invoice).where(Invoice.customer == which.customer, Invoice.period == which.period)
                           .order_by(Invoice.id.desc())).all()
    for row in rows:
        if row.status in ("draft", "approved"):
            return row
    for row in rows:
        if status_of(session, row) == "issued":
            return row
    return rows[0] if rows else None


def document_sha256(document: dict) -> str:
    """The SHA-256 of an invoice document as JSON with sorted keys: the same for the same document, however
    the database returns its keys."""
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def frozen_mismatch(session: Session, row: Invoice) -> str | None:
    """Why the issued invoice's stored document or PDF is not what was issued; None when it is. What was not
    frozen is not compared: a draft, an invoice recorded as issued without the lifecycle (no PDF, no
    `invoice.issue` entry), the document of one issued before its digest was recorded."""
    if row.status != "issued":
        return None
    issued = session.scalar(select(AuditEntry.details).where(
        AuditEntry.action == "invoice.issue", AuditEntry.outcome == SUCCESS,
        AuditEntry.resource == invoice_resource(row.customer, row.period, row.id)).limit(1)) or {}
    stored = session.get(InvoicePdf, row.id)
    if stored is not None:
        pdf = hashlib.sha256(stored.pdf).hexdigest()
        if pdf != stored.sha256 or pdf != issued.get("pdf_sha256", pdf):
            return f"the stored PDF of invoice {row.number} is not the one issued (SHA-256 {pdf})"
    frozen = issued.get("document_sha256")
    if frozen is not None and document_sha256(row.document) != frozen:
        return f"the stored document of invoice {row.number} is not the one issued"
    return None
