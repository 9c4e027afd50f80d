"""Events in: each stored once by its identity (source, id), summed into rollups in the same transaction.

    for line, item, outcome in ingest_events(sessions, read_events("may.jsonl")):
        outcome.status        # accepted | duplicate | conflict | rejected
        outcome.late          # accepted, but its period already has an issued invoice

Items are `(tag, Event | Rejection)` pairs, as `metering.events.read_events`
yields them (the tag is the line number there; an HTTP handler passes the index
in its request); each comes back with its outcome, in order. A `Rejection` stays
rejected, and so does an event for a customer without a contract.

Each batch is one transaction, and a batch's outcomes are yielded only once it
has committed: what was reported accepted is stored, whatever happens next. The
unique key on (source, id) decides which of two concurrent writers stores an
event; the other sees a repeat. A repeat is a duplicate when its time (as an
instant), customer, site, category and quantity (as a decimal) equal the stored
event's, else a conflict, kept once per distinct content in `conflicts`.

An event whose period (its local day's month, in the contract's time zone)
already has an issued invoice is stored with `late` set and summed into
`late_rollups`, never into the rollups the issued invoice was computed from
(docs/late-events.md).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from decimal import Context
from itertools import islice
from typing import Callable, Hashable, Iterable, Iterator
from zoneinfo import ZoneInfo

from sqlalchemy import select, tuple_
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from metering.aggregate import LocalDays
from metering.events import Event, Rejection
from store.bulk import bulk_insert
from store.db import dialect_insert
from store.models import ConflictingEvent, Contract, Invoice, UsageEvent
from store.rollups import Increments, add_to_rollups
from store.types import decimal_text

BATCH_EVENTS = 5000
RETRIES = 5          # PostgreSQL may pick a batch as a deadlock victim; it is then run again
CHUNK = 500

ACCEPTED, DUPLICATE, CONFLICT, REJECTED = "accepted", "duplicate", "conflict", "rejected"
UNKNOWN_CUSTOMER = "unknown customer"

EVENTS = UsageEvent.__table__
EVENT_COLUMNS = ("source", "event_id", "customer", "site", "category", "time", "quantity", "day", "late",
                 "received_at")
UTC = dt.timezone.utc


@dataclass(frozen=True, slots=True)
class Outcome:
    status: str
    late: bool = False
    reason: str = ""      # rejected: a short category for summaries ("bad time", "unknown customer", …)
    detail: str = ""      # rejected: what exactly is wrong; conflict: what differs from the stored event


_ACCEPTED, _ACCEPTED_LATE, _DUPLICATE = Outcome(ACCEPTED), Outcome(ACCEPTED, late=True), Outcome(DUPLICATE)

Item = tuple[Hashable, "Event | Rejection"]


def ingest_events(
    session_factory: sessionmaker,
    items: Iterable[Item],
    *,
    batch_size: int = BATCH_EVENTS,
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(UTC),
) -> Iterator[tuple[Hashable, Event | Rejection, Outcome]]:
    ingestion = _Ingestion(clock)
    items = iter(items)
    while batch := list(islice(items, batch_size)):
        outcomes = ingestion.store(session_factory, batch)
        for (tag, item), outcome in zip(batch, outcomes):
            yield tag, item, outcome


def fingerprint(event: Event) -> str:
    """What tells one content of an identity from another, stable across processes and backends."""
    data = event.data
    quantity = data.quantity   # 1.50 and 1.5 are one quantity: drop trailing zeros, rounding nothing away
    exact = quantity.normalize(Context(prec=max(28, len(quantity.as_tuple().digits))))
    text = "\x1f".join((event.time.astimezone(UTC).isoformat(), data.customer, data.site, data.category,
                        decimal_text(exact)))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def differences(stored, event: Event) -> list[str]:
    """The fields in which `event` differs from the stored (time, customer, site, category, quantity)."""
    data = event.data
    return [name for name, mine, theirs in zip(
        ("time", "customer", "site", "category", "quantity"),
        (event.time, data.customer, data.site, data.category, data.quantity),
        stored,
    ) if mine != theirs]


class _Ingestion:
    """What stays known across batches: contracts' time zones, and whether the fast path is worth trying."""

    def __init__(self, clock: Callable[[], dt.datetime]):
        self.clock = clock
        self.local_days: dict[str, LocalDays] = {}
        self.careful = False

    def store(self, session_factory: sessionmaker, batch: list[Item]) -> list[Outcome]:
        for attempt in range(RETRIES):
            try:
                with session_factory.begin() as session:
                    return self._store(session, batch)
            except OperationalError as exc:
                if getattr(exc.orig, "sqlstate", None) not in ("40P01", "40001") or attempt == RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    def _customers(self, session: Session, names: set[str]) -> dict[str, set[tuple[int, int]]]:
        """Per known customer in `names`, the (year, month) of its issued invoices; locks them against issuing."""
        missing = names - self.local_days.keys()
        if missing:
            for name, zone in session.execute(select(Contract.id, Contract.timezone).where(Contract.id.in_(missing))):
                self.local_days[name] = LocalDays(ZoneInfo(zone))
        known = sorted(names & self.local_days.keys())
        session.execute(select(Contract.id).where(Contract.id.in_(known)).order_by(Contract.id)
                        .with_for_update(read=True))
        issued: dict[str, set[tuple[int, int]]] = {name: set() for name in known}
        query = select(Invoice.customer, Invoice.period).where(Invoice.customer.in_(known), Invoice.status == "issued")
        for name, period in session.execute(query):
            issued[name].add((period.year, period.month))
        return issued

    def _store(self, session: Session, batch: list[Item]) -> list[Outcome]:
        connection = session.connection()
        now = self.clock()
        issued = self._customers(session, {item.data.customer for _, item in batch if isinstance(item, Event)})
        outcomes: list[Outcome | None] = [None] * len(batch)
        first: dict[tuple[str, str], int] = {}
        candidates, rows, repeats = [], [], []
        for index, (_, item) in enumerate(batch):
            if not isinstance(item, Event):
                outcomes[index] = Outcome(REJECTED, reason=item.reason, detail=item.detail)
                continue
            data = item.data
            months = issued.get(data.customer)
            if months is None:
                outcomes[index] = _unknown(data.customer)
                continue
            identity = (item.source, item.id)
            if identity in first:
                repeats.append(index)
                continue
            first[identity] = index
            day = self.local_days[data.customer](item.time)
            late = bool(months) and (day.year, day.month) in months
            candidates.append(index)
            rows.append((item.source, item.id, data.customer, data.site, data.category, item.time, data.quantity,
                         day, late, now))

        if rows:   # one lock order for concurrent writers, so PostgreSQL never has them wait on each other in a ring
            candidates, rows = map(list, zip(*sorted(zip(candidates, rows), key=lambda pair: pair[1][:2])))
        inserted = self._insert(connection, rows)
        on_time: Increments = {}
        late_usage: Increments = {}
        to_check = repeats   # and the candidates found already stored
        for index, row in zip(candidates, rows):
            if inserted is not None and (row[0], row[1]) not in inserted:
                to_check.append(index)
                continue
            late = row[8]
            key = (row[2], row[3], row[4], row[7])
            increments = late_usage if late else on_time
            cell = increments.get(key)
            if cell is None:
                increments[key] = [row[6], 1]
            else:
                cell[0] += row[6]
                cell[1] += 1
            outcomes[index] = _ACCEPTED_LATE if late else _ACCEPTED
        add_to_rollups(connection, on_time)
        add_to_rollups(connection, late_usage, late=True)
        if to_check:
            self._classify(connection, batch, to_check, issued, now, outcomes)
        return outcomes

    def _insert(self, connection: Connection, rows: list[tuple]) -> set[tuple[str, str]] | None:
        """The identities inserted; None when all were."""
        if not rows:
            return None
        if not self.careful and bulk_insert(connection, EVENTS, EVENT_COLUMNS, rows):
            return None
        statement = dialect_insert(connection, EVENTS).on_conflict_do_nothing(index_elements=["source", "event_id"]).returning(
            EVENTS.c.source, EVENTS.c.event_id
        )
        inserted = {tuple(row) for row in connection.execute(statement, [dict(zip(EVENT_COLUMNS, r)) for r in rows])}
        self.careful = len(inserted) < len(rows)   # repeats come in runs: a re-sent file, an overlapping one
        return inserted

    def _classify(self, connection: Connection, batch: list[Item], indexes: list[int],
                  issued: dict[str, set[tuple[int, int]]], now: dt.datetime, outcomes: list) -> None:
        identities = sorted({(batch[i][1].source, batch[i][1].id) for i in indexes})
        stored = {}
        columns = (EVENTS.c.time, EVENTS.c.customer, EVENTS.c.site, EVENTS.c.category, EVENTS.c.quantity)
        for start in range(0, len(identities), CHUNK):
            query = select(EVENTS.c.source, EVENTS.c.event_id, *columns).where(
                tuple_(EVENTS.c.source, EVENTS.c.event_id).in_(identities[start:start + CHUNK])
            )
            for source, event_id, *content in connection.execute(query):
                stored[(source, event_id)] = content
        conflicts = []
        for index in indexes:
            event = batch[index][1]
            differing = differences(stored[(event.source, event.id)], event)
            if not differing:
                outcomes[index] = _DUPLICATE
                continue
            data = event.data
            day = self.local_days[data.customer](event.time)
            late = (day.year, day.month) in issued[data.customer]
            outcomes[index] = Outcome(CONFLICT, late=late,
                                      detail=f"differs from the stored event in {', '.join(differing)}")
            conflicts.append(dict(source=event.source, event_id=event.id, fingerprint=fingerprint(event),
                                  customer=data.customer, site=data.site, category=data.category, time=event.time,
                                  quantity=data.quantity, day=day, late=late, billed_on=None, received_at=now))
        if conflicts:
            insert = dialect_insert(connection, ConflictingEvent.__table__)
            connection.execute(insert.on_conflict_do_nothing(index_elements=["source", "event_id", "fingerprint"]),
                               conflicts)


def _unknown(customer: str) -> Outcome:
    return Outcome(REJECTED, reason=UNKNOWN_CUSTOMER,
                   detail=f"no contract '{customer}' in the database (save it with `billing contract save`)")
