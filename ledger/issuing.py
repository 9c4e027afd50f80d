"""Recording an issued invoice: the document and what its caps and its account rules counted, frozen.

Just enough for the database mode's rules (caps count what issued invoices
counted; usage that arrives for an issued period is late). The invoice lifecycle
(drafts, approval, numbering, voiding) builds on this.

    row = record_issued_invoice(session, "acme-health", Period(2026, 5))
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from engine.periods import Period
from ledger.billing_from_db import ComputedInvoice, invoice_from_db
from ledger.contracts import UnknownContract
from ledger.invoices import counts_json
from ledger.models import Contract, Invoice, in_force
from metering.models import ConflictingEvent, LateRollup

UTC = dt.timezone.utc


class AlreadyIssued(Exception):
    pass


def record_issued_invoice(session: Session, customer: str, period: Period, *,
                          now: dt.datetime | None = None) -> Invoice:
    """Computes the invoice and stores it as issued (a draft or approved one of the period becomes it).

    The contract is locked first, so no ingest batch can slip an on-time event
    into the period between the computation and the commit.
    """
    now = now or dt.datetime.now(UTC)
    if session.get(Contract, customer, with_for_update=True) is None:
        raise UnknownContract(customer)
    row = session.scalar(select(Invoice).where(Invoice.customer == customer, Invoice.period == period,
                                               Invoice.status.in_(("draft", "approved")) | in_force()))
    if row is not None and row.status == "issued":
        raise AlreadyIssued(f"the invoice of '{customer}' for {period} is already issued")
    computed = invoice_from_db(session, customer, period)
    if row is None:
        row = Invoice(customer=customer, period=period, created_at=now)
        session.add(row)
    return freeze(session, row, computed, now)


def computed_fields(computed: ComputedInvoice) -> dict:
    """What an invoice row keeps of a computation: the document, contract version, cap counts, usage digest."""
    return {
        "document": computed.document,
        "contract_sha": computed.result.plan.terms.version,
        "cap_counts_before": counts_json(computed.result.cap_counts_before, computed.result.account_counts_before),
        "cap_counts": counts_json(computed.result.cap_counts, computed.result.account_counts),
        "usage_hash": computed.usage_hash,
    }


def freeze(session: Session, row: Invoice, computed: ComputedInvoice, now: dt.datetime) -> Invoice:
    """Stores `computed` in `row` as issued and marks the late usage it bills; set any other field first:
    once flushed, the row never changes again (store/models.py, migration 0004)."""
    for name, value in computed_fields(computed).items():
        setattr(row, name, value)
    row.status = "issued"
    row.issued_at = now
    period = computed.result.period
    rollup_ids = [i for rows in computed.late for i in rows.rollup_ids]
    rollup_ids += computed.reopened.rollup_ids.get(period, [])
    conflict_ids = [i for rows in computed.late for i in rows.conflict_ids]
    conflict_ids += computed.reopened.conflict_ids.get(period, [])
    if rollup_ids:
        session.execute(update(LateRollup).where(LateRollup.id.in_(rollup_ids)).values(billed_on=period))
    if conflict_ids:
        session.execute(update(ConflictingEvent).where(ConflictingEvent.id.in_(conflict_ids)).values(billed_on=period))
    session.flush()
    return row
