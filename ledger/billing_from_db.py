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
from dataclasses import dataclass, replace
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.evaluate import Carried, PeriodResult, bill
from engine.periods import Period, contract_year_start
from engine.usage import Tally, Usage
from invoicing.invoice import Invoice, UnbilledGroup, build_invoice, invoice_json
from ledger.contracts import StoredContract, load_contract
from ledger.invoices import carried_into, issued_invoices
from ledger.late import LateBilling, Reopened, late_billings, reopened_usage, with_late_lines
from metering.models import ConflictingEvent
from metering.rollups import as_usage, usage_cells
from storage.types import decimal_text

ZERO = Decimal(0)


@dataclass(frozen=True)
class ComputedInvoice:
    contract: StoredContract
    invoice: Invoice
    document: dict
    result: PeriodResult
    usage: Usage                   # on-time usage from the period after `carried` (or the year's start) on
    carried: Carried | None        # where its caps started from, when an issued invoice froze that
    cells: list                    # the rollup rows behind `usage`
    late: tuple[LateBilling, ...]  # earlier periods' late usage billed here
    reopened: Reopened             # late rows that their own periods bill (after a void)

    @property
    def usage_hash(self) -> str:
        """A digest of the usage the invoice was computed from: its period's rollups and the late rows it bills."""
        period = self.result.period
        digest = hashlib.sha256()
        for day, site, category, quantity, events in sorted(c for c in self.cells if Period.of(c[0]) == period):
            digest.update(f"{day}|{site}|{category}|{decimal_text(quantity)}|{events}\n".encode())
        for billing in self.late:
            digest.update(f"late {billing.period}: {sorted(billing.rollup_ids)} {sorted(billing.conflict_ids)}\n"
                          .encode())
        return digest.hexdigest()


def invoice_from_db(session: Session, customer: str, period: Period) -> ComputedInvoice:
    """Raises ledger.contracts.UnknownContract, engine.evaluate.OutsideContract."""
    return invoice_of_contract(session, load_contract(session, customer), period)


def invoice_of_contract(session: Session, contract: StoredContract, period: Period) -> ComputedInvoice:
    """The invoice of `period` under `contract`'s timeline, on the stored usage and issued invoices of
    `contract.id`: a what-if (store/whatif.py) passes the stored contract with another timeline.
    Raises engine.evaluate.OutsideContract."""
    customer = contract.id
    timeline = contract.timeline
    timeline.require_billed(period)
    connection = session.connection()
    issued = issued_invoices(session, customer)
    late = late_billings(connection, contract, issued, period)
    year_start = contract_year_start(timeline.first.terms.starts, period)
    carried = carried_into(issued, year_start, period)
    if carried is not None:
        counts = dict(carried.cap_counts)
        for billing in late:
            if contract_year_start(timeline.first.terms.starts, billing.period) == year_start:
                for key, amount in billing.cap_counts.items():
                    counts[key] = counts.get(key, ZERO) + amount
        carried = Carried(carried.period, counts)
    first = carried.period.shift(1) if carried else year_start
    reopened = reopened_usage(connection, customer, issued, first, period)
    cells = usage_cells(connection, customer, first, period) + reopened.cells
    usage = as_usage(cells)
    result, late_for = with_late_lines(bill(timeline, usage, period, carried), late)
    invoice = build_invoice(result, _conflicts(session, customer, period, reopened=period not in issued))
    late_groups = [
        (UnbilledGroup(reason, site, category, tally.events, tally.quantity), billing.period)
        for billing in late for (reason, site, category), tally in sorted(billing.unbilled.items())
    ]
    invoice = replace(invoice, unbilled=invoice.unbilled + tuple(group for group, _ in late_groups))
    late_for.update({id(group): owner for group, owner in late_groups})
    return ComputedInvoice(contract, invoice, _document(invoice, late_for), result, usage, carried, cells,
                           tuple(late), reopened)


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


def _document(invoice: Invoice, late_for: dict[int, Period]) -> dict:
    document = invoice_json(invoice)
    for site, site_json in zip(invoice.sites, document["sites"]):
        for line, line_json in zip(site.lines, site_json["lines"]):
            if id(line) in late_for:
                line_json["late_for"] = str(late_for[id(line)])
    for group, group_json in zip(invoice.unbilled, document["unbilled"]):
        if id(group) in late_for:
            group_json["late_for"] = str(late_for[id(group)])
    return document
