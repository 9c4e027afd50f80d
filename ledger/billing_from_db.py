"""One period's invoice from the database, with exactly the engine and the invoice of the file mode.

    computed = invoice_from_db(session, "acme-health", Period(2026, 5))
    computed.invoice     # invoicing.invoice.Invoice: render it as text, PDF, …
    computed.document    # its JSON (interfaces §3), late lines marked with "late_for"

Every period is computed with the contract version in effect then. The caps
start from the counts of the last issued invoice of the contract year before the
period; the periods after it are computed again from their rollups. Exact
duplicates are not listed under `unbilled` (they are routine retries; the ingest
summary counts them); a conflict is listed once per distinct conflicting event.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.evaluate import BillingInputs, PeriodResult, bill_invoice
from engine.periods import Period, contract_year_start
from engine.usage import Tally
from invoicing.invoice import Invoice, build_invoice, invoice_json
from ledger.contracts import StoredContract, load_contract
from ledger.invoices import carried_into, issued_invoices
from ledger.late import LateRows, Reopened, late_usage, reopened_usage
from metering.models import ConflictingEvent
from metering.rollups import as_usage, usage_cells
from storage.types import decimal_text

ZERO = Decimal(0)


@dataclass(frozen=True)
class ComputedInvoice:
    contract: StoredContract
    inputs: BillingInputs          # what the engine computed it from, gathered once
    result: PeriodResult           # every line of the invoice, late differences included
    invoice: Invoice
    document: dict
    cells: list                    # the rollup rows behind `inputs.usage`
    late: tuple[LateRows, ...]     # the late rows of earlier periods billed here
    reopened: Reopened             # late rows that their own periods bill (after a void)

    @property
    def usage_hash(self) -> str:
        """A digest of the usage the invoice was computed from: its period's rollups and the late rows it bills."""
        period = self.result.period
        digest = hashlib.sha256()
        for day, site, category, quantity, events in sorted(c for c in self.cells if Period.of(c[0]) == period):
            digest.update(f"{day}|{site}|{category}|{decimal_text(quantity)}|{events}\n".encode())
        for rows in self.late:
            digest.update(f"late {rows.period}: {sorted(rows.rollup_ids)} {sorted(rows.conflict_ids)}\n".encode())
        return digest.hexdigest()


def invoice_from_db(session: Session, customer: str, period: Period) -> ComputedInvoice:
    """Raises ledger.contracts.UnknownContract, engine.evaluate.OutsideContract."""
    return invoice_of_contract(session, load_contract(session, customer), period)


def invoice_of_contract(session: Session, contract: StoredContract, period: Period) -> ComputedInvoice:
    """The invoice of `period` under `contract`'s timeline, on the stored usage and issued invoices of
    `contract.id`: a what-if (review/whatif.py) passes the stored contract with another timeline.
    Raises engine.evaluate.OutsideContract."""
    timeline = contract.timeline
    timeline.require_billed(period)
    inputs, cells, late, reopened, conflicts = gather(session, contract, period)
    result = bill_invoice(inputs)
    invoice = build_invoice(result, conflicts)
    return ComputedInvoice(contract, inputs, result, invoice, invoice_json(invoice), cells, late, reopened)


def gather(session: Session, contract: StoredContract, period: Period
           ) -> tuple[BillingInputs, list, tuple[LateRows, ...], Reopened, dict]:
    """Everything the invoice of `period` is computed from, read once: the on-time usage from the last issued
    invoice of the contract year (or the year's start) on, what that invoice froze, the late usage of issued
    periods that this invoice bills, with the rows behind them, and the period's conflicts."""
    customer, timeline = contract.id, contract.timeline
    connection = session.connection()
    issued = issued_invoices(session, customer)
    late = late_usage(connection, contract, issued, period)
    year_start = contract_year_start(timeline.first.terms.starts, period)
    carried = carried_into(issued, year_start, period)
    first = carried.period.shift(1) if carried else year_start
    reopened = reopened_usage(connection, customer, issued, first, period)
    cells = usage_cells(connection, customer, first, period) + reopened.cells
    inputs = BillingInputs(timeline, period, as_usage(cells), carried, tuple(usage for usage, _ in late))
    conflicts = _conflicts(session, customer, period, reopened=period not in issued)
    return inputs, cells, tuple(rows for _, rows in late), reopened, conflicts


def _conflicts(session: Session, customer: str, period: Period, *, reopened: bool) -> dict:
    """Conflicts of the period, one per distinct conflicting event: those that arrived before it was issued, and
    the late ones that its own invoice reports (`reopened`: it has none in force, its issued one was voided)."""
    table = ConflictingEvent.__table__
    own = table.c.late.is_(False) | (table.c.billed_on == period)
    if reopened:
        own = own | table.c.billed_on.is_(None)
    query = select(table.c.site, table.c.category, table.c.quantity).where(
        table.c.customer == customer, own, table.c.day >= period.first_day, table.c.day <= period.last_day,
    )
    groups: dict[tuple[str, str, str], Tally] = {}
    for site, category, quantity in session.execute(query):
        groups.setdefault(("conflict", site, category), Tally()).add(quantity)
    return groups
