"""A customer's usage as its invoices bill it, per site, category and local day: what a customer's finance team
reconciles against its own records.

    export = usage_export(session, "acme-health", dt.date(2026, 5, 1), dt.date(2026, 5, 31))
    export.rows          # UsageRow(day, site, category, quantity, events, status, invoice_period), by day
    usage_csv(export)    # the CSV a spreadsheet opens: quantities and counts are numbers

Days are local days in the contract's time zone, as metering sums them and the
invoice bills them. The rows are the rollups the invoice of each day's period is
computed from (ledger/billing_from_db.py), each with what the invoice does with
it, decided by the plan's own meter steps (classify, the site's active window):

    billed                      a usage line of the invoice of `invoice_period` counts it
    billed late                 it arrived after its period's invoice was issued: a late line of the invoice of
                                `invoice_period` counts it (empty: the next invoice will)
    not billed: <reason>        the invoice lists it under "not billed" (unknown site or category, site inactive,
                                outside the contract's dates)

So summing the `billed` rows of one period per site and category gives the
quantities and event counts of that invoice's usage lines. Rejected events
(duplicates, conflicts) are in no rollup: the invoice reports conflicts apart,
and so does this export, by leaving them out.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.evaluate import Evaluation
from engine.periods import Period
from engine.plan import Phase, Plan
from engine.sheet import CapLedger, Sheet
from engine.steps import OUTSIDE_CONTRACT, SITE_INACTIVE
from engine.usage import Tally
from invoicing.csv_view import spreadsheet_safe
from ledger.contracts import load_contract
from metering.models import LateRollup
from metering.rollups import usage_cells
from storage.types import decimal_text

BILLED, BILLED_LATE, NOT_BILLED = "billed", "billed late", "not billed: {reason}"
COLUMNS = ("customer", "day", "site", "category", "quantity", "events", "status", "invoice_period")
Key = tuple[dt.date, str, str]   # (local day, site, category)


@dataclass(frozen=True)
class UsageRow:
    day: dt.date
    site: str
    category: str
    quantity: Decimal
    events: int
    status: str                       # BILLED, BILLED_LATE or NOT_BILLED with its reason
    invoice_period: Period | None     # the invoice that bills it (None: not billed, or late and not yet billed)


@dataclass(frozen=True)
class UsageExport:
    customer: str
    first: dt.date
    last: dt.date
    zone: str
    rows: tuple[UsageRow, ...]

    @property
    def filename(self) -> str:
        return f"usage-{self.customer}-{self.first.isoformat()}-to-{self.last.isoformat()}.csv"

    def billed(self) -> dict[tuple[str, str], Tally]:
        """Quantities and events billed per (site, category), late ones included."""
        sums: dict[tuple[str, str], Tally] = {}
        for row in self.rows:
            if row.status in (BILLED, BILLED_LATE):
                sums.setdefault((row.site, row.category), Tally()).add(row.quantity, row.events)
        return sums


def usage_export(session: Session, customer: str, first: dt.date, last: dt.date) -> UsageExport:
    """Raises ledger.contracts.UnknownContract."""
    contract = load_contract(session, customer)
    timeline = contract.timeline
    on_time = [cell for cell in usage_cells(session.connection(), customer, Period.of(first), Period.of(last))
               if first <= cell[0] <= last]
    late = session.execute(select(LateRollup.day, LateRollup.site, LateRollup.category, LateRollup.quantity,
                                  LateRollup.events, LateRollup.billed_on).where(
        LateRollup.customer == customer, LateRollup.day >= first, LateRollup.day <= last)).all()
    billed_on = {(day, site, category): on for day, site, category, _, _, on in late}
    rows = []
    for period, cells in _by_period(on_time).items():
        statuses = _statuses(timeline.plan_for(period), period, cells)
        rows += [_row(key, tally, statuses[key], period) for key, tally in cells.items()]
    for period, cells in _by_period([row[:5] for row in late]).items():
        statuses = _statuses(timeline.plan_for(period), period, cells)
        rows += [_row(key, tally, BILLED_LATE if statuses[key] == BILLED else statuses[key], billed_on[key])
                 for key, tally in cells.items()]
    rows.sort(key=lambda row: (row.day, row.site, row.category, row.status))
    return UsageExport(customer, first, last, contract.zone.key, tuple(rows))


def usage_csv(export: UsageExport) -> str:
    """One row per day, site, category and status; quantity and events as plain numbers, text cells that a
    spreadsheet would take for a formula quoted (invoicing/csv_view.py)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for row in export.rows:
        writer.writerow([spreadsheet_safe(value) for value in (
            export.customer, row.day.isoformat(), row.site, row.category, decimal_text(row.quantity), row.events,
            row.status, str(row.invoice_period) if row.invoice_period else "")])
    return out.getvalue()


def _row(key: Key, tally: Tally, status: str, invoice_period: Period | None) -> UsageRow:
    """`invoice_period` is kept for billed rows only: what is not billed belongs to no invoice."""
    day, site, category = key
    billed = status in (BILLED, BILLED_LATE)
    return UsageRow(day, site, category, tally.quantity, tally.events, status, invoice_period if billed else None)


def _by_period(cells) -> dict[Period, dict[Key, Tally]]:
    periods: dict[Period, dict[Key, Tally]] = {}
    for day, site, category, quantity, events in cells:
        tally = periods.setdefault(Period.of(day), {}).setdefault((day, site, category), Tally())
        tally.add(quantity, events)
    return periods


def _statuses(plan: Plan, period: Period, cells: dict[Key, Tally]) -> dict[Key, str]:
    """What the invoice of `period` does with each cell: the plan's meter steps route it (engine/steps.py:
    classify, then each site's active window), exactly as they do when the invoice is computed."""
    terms = plan.terms
    first = max(period.first_day, terms.starts)
    last = min(period.last_day, terms.ends) if terms.ends else period.last_day
    sheets = {site.site: Sheet(site.site, site.name, period, terms.money, dict(terms.categories), CapLedger(), {},
                               first, last) for site in plan.sites}
    evaluation = Evaluation(dict(cells), sheets)
    for step in plan.steps:
        if step.phase is Phase.METER:
            step.run(step, evaluation)
    statuses: dict[Key, str] = {}
    for site in plan.sites:
        sheet = sheets[site.site]
        for step in site.steps:
            if step.phase is Phase.METER:
                step.run(step, sheet)
        for day, category in sheet.daily:
            active = sheet.first_day <= day <= sheet.last_day
            statuses[(day, site.site, category)] = BILLED if active else NOT_BILLED.format(reason=SITE_INACTIVE)
    reasons: dict[tuple[str, str], list[str]] = {}
    for reason, site, category in evaluation.unbilled:
        reasons.setdefault((site, category), []).append(reason)
    for day, site, category in cells:
        if (day, site, category) not in statuses:
            candidates = reasons[(site, category)]
            outside = day < terms.starts or (terms.ends is not None and day > terms.ends)
            reason = OUTSIDE_CONTRACT if outside and OUTSIDE_CONTRACT in candidates else \
                next(r for r in candidates if r != OUTSIDE_CONTRACT or len(candidates) == 1)
            statuses[(day, site, category)] = NOT_BILLED.format(reason=reason)
    return statuses
