"""Late usage in the database: which late rows an invoice bills, and what their periods had billed before.

The engine computes the difference they make (engine/late.py, which says how);
this module only reads the rows it needs (`late_usage`), and the rows of periods
whose issued invoice was voided, which their own invoice bills again
(`reopened_usage`). Issuing marks the rows billed (ledger/issuing.py).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.engine import Connection

from engine.late import LateUsage
from engine.periods import Period
from engine.usage import Tally
from ledger.contracts import StoredContract
from ledger.invoices import counts_from_json, next_open
from ledger.models import Invoice
from metering.models import ConflictingEvent, LateRollup
from metering.rollups import Cell, as_usage, usage_cells

ZERO = Decimal(0)


@dataclass
class LateRows:
    """The late rows of one issued period that an invoice bills: what issuing marks as billed."""

    period: Period
    rollup_ids: list[int] = field(default_factory=list)
    conflict_ids: list[int] = field(default_factory=list)


def late_usage(connection: Connection, contract: StoredContract, issued: dict[Period, Invoice],
               period: Period) -> list[tuple[LateUsage, LateRows]]:
    """The late periods that the invoice of `period` bills, oldest first: what the engine needs of each, and
    which rows they are."""
    last = contract.timeline.versions[-1][1].terms.ends
    last_period = Period.of(last) if last else None

    def billed_here(day, billed_on) -> bool:
        owner = Period.of(day)
        if owner >= period or owner not in issued:   # its own period bills it (reopened_usage)
            return False
        return billed_on == period or (billed_on is None and next_open(issued, owner, last_period) == period)

    rows: dict[Period, LateRows] = {}
    additions: dict[Period, list[Cell]] = defaultdict(list)
    reported: dict[Period, dict] = defaultdict(dict)   # late conflicts, per period
    late = LateRollup.__table__
    query = select(late.c.id, late.c.day, late.c.site, late.c.category, late.c.quantity, late.c.events,
                   late.c.billed_on).where(late.c.customer == contract.id,
                                           (late.c.billed_on.is_(None)) | (late.c.billed_on == period))
    for row_id, day, site, category, quantity, events, billed_on in connection.execute(query):
        if billed_here(day, billed_on):
            owner = Period.of(day)
            rows.setdefault(owner, LateRows(owner)).rollup_ids.append(row_id)
            additions[owner].append((day, site, category, quantity, events))

    conflicts = ConflictingEvent.__table__
    query = select(conflicts.c.id, conflicts.c.day, conflicts.c.site, conflicts.c.category, conflicts.c.quantity,
                   conflicts.c.billed_on).where(conflicts.c.customer == contract.id, conflicts.c.late,
                                                (conflicts.c.billed_on.is_(None)) | (conflicts.c.billed_on == period))
    for row_id, day, site, category, quantity, billed_on in connection.execute(query):
        if billed_here(day, billed_on):
            owner = Period.of(day)
            rows.setdefault(owner, LateRows(owner)).conflict_ids.append(row_id)
            reported[owner].setdefault(("conflict", site, category), Tally()).add(quantity)

    return [(_late_usage(connection, contract, issued[owner], additions[owner], reported[owner], period), rows[owner])
            for owner in sorted(rows)]


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


def _late_usage(connection: Connection, contract: StoredContract, owner: Invoice, added: list[Cell],
                conflicts: dict, period: Period) -> LateUsage:
    """What `owner`'s period has billed so far (its rollups, and late rows billed by other invoices than the one
    of `period`), the counts it started from, and what is added now."""
    late = LateRollup.__table__
    query = select(late.c.day, late.c.site, late.c.category, late.c.quantity, late.c.events).where(
        late.c.customer == contract.id, late.c.billed_on.is_not(None), late.c.billed_on != period,
        late.c.day >= owner.period.first_day, late.c.day <= owner.period.last_day,
    )
    billed_before = usage_cells(connection, contract.id, owner.period, owner.period)
    billed_before += [tuple(row) for row in connection.execute(query)]
    return LateUsage(owner.period, counts_from_json(owner.cap_counts_before), as_usage(billed_before),
                     as_usage(added), conflicts)
