"""The dashboard's figures kept in memory, recomputed only when the data under them changed.

    cache = DashboardCache()
    board = cache.get(sessions, "acme-health", Period(2026, 6))   # review.dashboard.Dashboard

Computing a 60-site customer's period from a million events' rollups takes a
quarter of a second; twenty people refreshing a dashboard must not pay that on
every request. Each request therefore asks the database two cheap questions:

1. the *stamp*, one statement over indexes: the newest stored event and
   conflict (any customer: ingest adds to the rollups only in the transaction
   that stores the events), and this customer's issued invoices, voids and
   contract versions. An unchanged stamp serves the figures from memory.
2. when the stamp moved (or RECHECK_SECONDS passed since the figures were last
   checked), the *usage digest*: the number and event count of the customer's
   rollups of the periods the figures read, its pending late rollups and its
   conflicts. Another customer's events move the stamp but not the digest, so
   they cost this customer's dashboard one aggregate query, not a recomputation.

The issued invoices the figures read are checked against the digests recorded
when they were issued (review.dashboard `still_frozen`, ledger/invoices.py
`frozen_mismatch`): the shown period's own issued invoice on every request, the
others (history, the account's contract year) at every recheck. An invoice
changed outside the application (which moves no stamp) is then withheld at
once on its own page, within RECHECK_SECONDS everywhere else.

Only a changed digest (or stamp of invoices and versions) recomputes, once: the
requests that arrive meanwhile wait for that one computation (single flight)
and are then served its result. New events therefore show on the first request
after their batch commits. The periodic recheck covers the one case the stamp
can miss: on PostgreSQL, two ingest transactions may commit out of the order of
their event ids, so an event committed last may carry an id below the newest
one already seen; the digest catches it within RECHECK_SECONDS.

Entries are per (customer, period), at most MAX_ENTRIES (least recently used
dropped first); the cache lives in one process (each `billing serve` process
keeps its own). What a caller makes of the figures (the portal's rendered page
and JSON) is kept in the figures' entry (`kept_with`), so it goes when they go.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Hashable, TypeVar

from sqlalchemy import func, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from engine.periods import Period
from ledger.models import ContractVersion, Invoice, InvoiceVoid
from metering.models import ConflictingEvent, LateRollup, Rollup, UsageEvent
from review.dashboard import (
    HISTORY_PERIODS,
    Dashboard,
    PeriodPoint,
    dashboard,
    still_frozen,
)

RECHECK_SECONDS = 2.0
MAX_ENTRIES = 256
MAX_KEPT_WITH = 32      # renderings per computation of the figures (locales, days, sites shown)
T = TypeVar("T")


def stamp(connection: Connection, customer: str) -> tuple:
    """What moves whenever anything the customer's figures depend on may have changed (one statement)."""
    issued = Invoice.status == "issued"
    mine = Invoice.customer == customer
    # One round trip: scalar subqueries, each answered from an index or a small table.
    query = select(
        select(func.max(UsageEvent.id)).scalar_subquery(),
        select(func.max(ConflictingEvent.id)).scalar_subquery(),
        select(func.count(Invoice.id)).where(mine, issued).scalar_subquery(),
        select(func.max(Invoice.issued_at)).where(mine, issued).scalar_subquery(),
        select(func.count(InvoiceVoid.invoice_id)).join(Invoice, Invoice.id == InvoiceVoid.invoice_id)
        .where(mine).scalar_subquery(),
        select(func.count(ContractVersion.id)).where(ContractVersion.contract_id == customer).scalar_subquery(),
        select(func.max(ContractVersion.saved_at)).where(ContractVersion.contract_id == customer).scalar_subquery(),
    )
    return tuple(connection.execute(query).one())


def usage_digest(connection: Connection, customer: str, period: Period, history: int = HISTORY_PERIODS) -> tuple:
    """The size of the usage the figures of `period` read: its rollups from the earliest contract year any
    period of its history may start (two years back covers every history period's own year), its pending late
    rollups and its conflicts. Ingest only ever adds to these, so any new batch changes the digest."""
    first = period.shift(-(history - 1) - 11).first_day
    rollups, late, conflicts = Rollup.__table__, LateRollup.__table__, ConflictingEvent.__table__
    parts = [
        select(func.count(), func.sum(rollups.c.events)).where(
            rollups.c.customer == customer, rollups.c.day >= first, rollups.c.day <= period.last_day),
        select(func.count(), func.sum(late.c.events)).where(late.c.customer == customer, late.c.billed_on.is_(None)),
        select(func.count()).where(conflicts.c.customer == customer),
    ]
    rows = [tuple(connection.execute(part).one()) for part in parts]
    return tuple(value for row in rows for value in row)


@dataclass
class Entry:
    stamp: tuple
    digest: tuple
    checked: float            # monotonic time of the last check against the database
    board: Dashboard
    kept: dict = field(default_factory=dict)   # what callers made of `board` (kept_with)


class DashboardCache:
    """Thread-safe; one per app (admin_app/dashboard.py keeps it in app.extensions)."""

    def __init__(self, compute: Callable[..., Dashboard] = dashboard,
                 clock: Callable[[], float] = time.monotonic, recheck: float = RECHECK_SECONDS,
                 max_entries: int = MAX_ENTRIES):
        self.compute = compute
        self.clock = clock
        self.recheck = recheck
        self.max_entries = max_entries
        self.entries: OrderedDict[tuple[str, Period], Entry] = OrderedDict()
        self.locks: dict[tuple[str, Period], threading.Lock] = {}
        self.guard = threading.Lock()
        self.computations = 0          # how many times figures were computed (tests and the benchmark read it)

    def get(self, session: Session, customer: str, period: Period) -> Dashboard:
        """The figures as the data stands now; raises what review.dashboard.dashboard raises."""
        key = (customer, period)
        current = stamp(session.connection(), customer)
        entry = self._fresh(key, current)
        if entry is not None and (entry.board.issued is None or still_frozen(session, entry.board, shown_only=True)):
            return entry.board
        with self._lock(key):
            entry = self._fresh(key, current)     # another request checked or computed while this one waited
            if entry is not None and (entry.board.issued is None
                                      or still_frozen(session, entry.board, shown_only=True)):
                return entry.board
            digest = usage_digest(session.connection(), customer, period)
            entry = self.entries.get(key)
            if (entry is not None and entry.stamp[2:] == current[2:] and entry.digest == digest
                    and still_frozen(session, entry.board)):
                entry = Entry(current, digest, self.clock(), entry.board, entry.kept)
            else:
                entry = Entry(current, digest, self.clock(), self.compute(session, customer, period,
                                                                          earlier=self._earlier(session, customer)))
                self.computations += 1
            self._store(key, entry)
            return entry.board

    def kept_with(self, board: Dashboard, key: Hashable, make: Callable[[], T]) -> T:
        """What `make()` returns, made once per computation of `board` and `key`: kept in the figures' entry,
        and dropped with them when the data under them changes."""
        entry_key = (board.customer, board.period)
        with self.guard:
            entry = self.entries.get(entry_key)
            if entry is not None and entry.board is board and key in entry.kept:
                return entry.kept[key]
        made = make()
        with self.guard:
            entry = self.entries.get(entry_key)
            if entry is not None and entry.board is board:
                entry.kept[key] = made
                while len(entry.kept) > MAX_KEPT_WITH:
                    del entry.kept[next(iter(entry.kept))]
        return made

    def _earlier(self, session: Session, customer: str) -> Callable[[Period], PeriodPoint]:
        """An earlier open period's point of the history, from this cache: each period is computed once and
        kept until its own data changes (events of a later period leave its digest as it was). Locks are taken
        for earlier periods only while holding a later one's, so two requests never wait for each other."""
        return lambda period: self.get(session, customer, period).history[-1]

    def _fresh(self, key, current: tuple) -> Entry | None:
        with self.guard:
            entry = self.entries.get(key)
            if entry is None or entry.stamp != current or self.clock() - entry.checked > self.recheck:
                return None
            self.entries.move_to_end(key)
            return entry

    def _lock(self, key) -> threading.Lock:
        with self.guard:
            return self.locks.setdefault(key, threading.Lock())

    def _store(self, key, entry: Entry) -> None:
        with self.guard:
            self.entries[key] = entry
            self.entries.move_to_end(key)
            while len(self.entries) > self.max_entries:
                old, _ = self.entries.popitem(last=False)
                self.locks.pop(old, None)
