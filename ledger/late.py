"""Late usage: what arrived after its period's invoice was issued, billed on the next open invoice.

The issued invoice never changes. The late usage of its period P is billed once,
on the next invoice of the contract that is not issued yet, as the difference it
makes to P: P is computed again under P's own contract version, from the cap
counts P started from, once with the usage P has billed so far and once with the
late usage added; every line that changes gives a line of the difference, marked
"late usage for P":

    Standard processing, late usage for 2026-05: 120 units             102.00
    minimum: late usage for 2026-05: true-up 0.00 instead of 102.00   -102.00

so graduated tiers continue where P stopped, a minimum already trued up is not
charged twice, and a cap already reached stays reached. Late events that P would
not have billed (site inactive, unknown category, …) and conflicts that arrived
after P was issued are listed under `unbilled` of that invoice, marked with P.
docs/late-events.md says why.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.engine import Connection

from engine.evaluate import Carried, PeriodResult, SiteResult, bill
from engine.lines import kind_of
from engine.periods import Period
from engine.usage import Tally
from ledger.contracts import StoredContract
from ledger.invoices import CapCounts, counts_from_json, next_open
from ledger.models import Invoice
from metering.models import ConflictingEvent, LateRollup
from metering.rollups import Cell, as_usage, usage_cells

ZERO = Decimal(0)


@dataclass
class LateBilling:
    """What one late period adds to an invoice."""

    period: Period
    lines: dict[str, list] = field(default_factory=dict)            # site → lines of differences
    names: dict[str, str] = field(default_factory=dict)             # site → its name in `period`
    unbilled: dict[tuple[str, str, str], Tally] = field(default_factory=dict)
    cap_counts: CapCounts = field(default_factory=dict)             # what the caps count in addition
    rollup_ids: list[int] = field(default_factory=list)
    conflict_ids: list[int] = field(default_factory=list)


def late_billings(connection: Connection, contract: StoredContract, issued: dict[Period, Invoice],
                  period: Period) -> list[LateBilling]:
    """The late periods that the invoice of `period` bills, oldest first."""
    last = contract.timeline.versions[-1][1].terms.ends
    last_period = Period.of(last) if last else None

    def billed_here(day, billed_on) -> bool:
        owner = Period.of(day)
        if owner >= period or owner not in issued:   # its own period bills it (reopened_usage)
            return False
        return billed_on == period or (billed_on is None and next_open(issued, owner, last_period) == period)

    billings: dict[Period, LateBilling] = {}
    additions: dict[Period, list[Cell]] = defaultdict(list)
    late = LateRollup.__table__
    query = select(late.c.id, late.c.day, late.c.site, late.c.category, late.c.quantity, late.c.events,
                   late.c.billed_on).where(late.c.customer == contract.id,
                                           (late.c.billed_on.is_(None)) | (late.c.billed_on == period))
    for row_id, day, site, category, quantity, events, billed_on in connection.execute(query):
        if billed_here(day, billed_on):
            owner = Period.of(day)
            billings.setdefault(owner, LateBilling(owner)).rollup_ids.append(row_id)
            additions[owner].append((day, site, category, quantity, events))

    conflicts = ConflictingEvent.__table__
    query = select(conflicts.c.id, conflicts.c.day, conflicts.c.site, conflicts.c.category, conflicts.c.quantity,
                   conflicts.c.billed_on).where(conflicts.c.customer == contract.id, conflicts.c.late,
                                                (conflicts.c.billed_on.is_(None)) | (conflicts.c.billed_on == period))
    for row_id, day, site, category, quantity, billed_on in connection.execute(query):
        if billed_here(day, billed_on):
            owner = Period.of(day)
            billing = billings.setdefault(owner, LateBilling(owner))
            billing.conflict_ids.append(row_id)
            billing.unbilled.setdefault(("conflict", site, category), Tally()).add(quantity)

    for owner, cells in additions.items():
        _recompute(connection, contract, issued[owner], billings[owner], cells, period)
    return [billings[p] for p in sorted(billings)]


@dataclass
class Reopened:
    """Late usage and conflicts of periods whose issued invoice was voided: their own invoice bills them again,
    as if they had come on time (and, once that invoice is issued, goes on counting them)."""

    cells: list[Cell]
    rollup_ids: dict[Period, list[int]]       # not billed yet, by their period
    conflict_ids: dict[Period, list[int]]


def reopened_usage(connection: Connection, customer: str, issued: dict[Period, Invoice], first: Period,
                   last: Period) -> Reopened:
    """What periods first..last bill of their own late rows: the rows billed by a period's own invoice (issued
    again after a void), and the rows not billed yet of a period without an invoice in force."""
    reopened = Reopened([], defaultdict(list), defaultdict(list))
    late = LateRollup.__table__
    query = select(late.c.id, late.c.day, late.c.site, late.c.category, late.c.quantity, late.c.events,
                   late.c.billed_on).where(late.c.customer == customer, late.c.day >= first.first_day,
                                           late.c.day <= last.last_day)
    for row_id, day, site, category, quantity, events, billed_on in connection.execute(query):
        owner = Period.of(day)
        if billed_on is None and owner not in issued:
            reopened.rollup_ids[owner].append(row_id)
        elif billed_on != owner:
            continue
        reopened.cells.append((day, site, category, quantity, events))
    conflicts = ConflictingEvent.__table__
    query = select(conflicts.c.id, conflicts.c.day).where(
        conflicts.c.customer == customer, conflicts.c.late, conflicts.c.billed_on.is_(None),
        conflicts.c.day >= first.first_day, conflicts.c.day <= last.last_day)
    for row_id, day in connection.execute(query):
        if Period.of(day) not in issued:
            reopened.conflict_ids[Period.of(day)].append(row_id)
    return reopened


def _recompute(connection: Connection, contract: StoredContract, owner: Invoice, billing: LateBilling,
               added: list[Cell], period: Period) -> None:
    late = LateRollup.__table__
    query = select(late.c.day, late.c.site, late.c.category, late.c.quantity, late.c.events).where(
        late.c.customer == contract.id, late.c.billed_on.is_not(None), late.c.billed_on != period,
        late.c.day >= owner.period.first_day, late.c.day <= owner.period.last_day,
    )
    billed_before = usage_cells(connection, contract.id, owner.period, owner.period)
    billed_before += [tuple(row) for row in connection.execute(query)]
    carried = Carried(owner.period.shift(-1), counts_from_json(owner.cap_counts_before))
    before = bill(contract.timeline, as_usage(billed_before), owner.period, carried)
    after = bill(contract.timeline, as_usage(billed_before, added), owner.period, carried)
    _differences(before, after, billing)


def _differences(before: PeriodResult, after: PeriodResult, billing: LateBilling) -> None:
    money = after.plan.terms.money
    old_sites = {site.site: site for site in before.sites}
    for site in after.sites:
        old_lines = {_key(line): line for line in old_sites[site.site].lines}
        lines = []
        for line in site.lines:
            lines += _difference(old_lines.pop(_key(line), None), line, billing.period, money)
        for gone in old_lines.values():
            lines += _difference(gone, None, billing.period, money)
        if lines:
            billing.lines[site.site] = lines
            billing.names[site.site] = site.name
    for key, tally in after.unbilled.items():
        was = before.unbilled.get(key, Tally())
        if tally.events != was.events:
            billing.unbilled.setdefault(key, Tally()).add(tally.quantity - was.quantity, tally.events - was.events)
    for key, counted in after.cap_counts.items():
        if counted != before.cap_counts.get(key, ZERO):
            billing.cap_counts[key] = counted - before.cap_counts.get(key, ZERO)


def _key(line) -> tuple:
    return line.kind, kind_of(line).match_key(line)


def _difference(old, new, period: Period, money) -> list:
    """The lines that take `old` to `new` (either may be None), as their kind builds them; none when equal."""
    return kind_of(new or old).difference(old, new, period, money)


def with_late_lines(result: PeriodResult, billings: list[LateBilling]) -> tuple[PeriodResult, dict[int, Period]]:
    """The period's result with each late period's lines added to its sites (a site inactive now gets its own
    entry, after the others), and which lines are late for which period."""
    late_for: dict[int, Period] = {}
    sites = {site.site: site for site in result.sites}
    order = [site.site for site in result.sites]
    for billing in billings:
        for site_id, lines in billing.lines.items():
            site = sites.get(site_id)
            if site is None:
                site = SiteResult(site_id, billing.names[site_id], (), ZERO)
                order.append(site_id)
            sites[site_id] = SiteResult(site.site, site.name, site.lines + tuple(lines),
                                        site.total + sum((line.amount for line in lines), ZERO))
            late_for.update({id(line): billing.period for line in lines})
    merged = PeriodResult(result.period, result.plan, [sites[s] for s in order], result.unbilled,
                          result.cap_counts)
    return merged, late_for
