"""Events in: each stored once by its identity (source, id), summed into rollups in the same transaction.

    for line, item, outcome in ingest_events(sessions, read_events("may.jsonl")):
        outcome.status        # accepted | duplicate | conflict | rejected
        outcome.late          # accepted, but its period already has an issued invoice

Items are `(tag, Event | Rejection)` pairs, as `metering.events.read_events`
yields them (the tag is the line number there; an HTTP handler passes the index
in its request); each comes back with its outcome, in order. A `Rejection` stays
rejected, and so does an event for a customer without a contract.

Every batch is made by the one batcher (ingest/batches.py: rows in the driver's
values, their sums, what is left to the database) and stored by `_store_batch`.
Items in hand (the event API's, a list) are batched here, in this thread. A
file given as `read_events(path)` (a `metering.events.EventFile`) is read,
checked and batched by a worker process (ingest/file_batches.py) while this one
stores the batch before; its events come back with None for their item, unless
this process had it in hand: a rejection, a repeat met within its batch, an
event of a customer the worker knew no time zone of (an unknown customer's is
rejected with its event).

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
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from itertools import islice, repeat
from operator import is_
from pathlib import Path
from typing import Callable, Hashable, Iterable, Iterator, Sequence

from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import sessionmaker

from engine.money import EXACT
from ingest.batches import Batcher, Prepared
from ingest.file_batches import BATCH_EVENTS as FILE_BATCH_EVENTS
from ingest.file_batches import FileReader
from ledger.models import Contract, Invoice, in_force
from metering.bulk import Rows, insert_new, stored_events
from metering.days import local_days
from metering.dedup import differences, fingerprint
from metering.events import Event, EventData, EventFile, Rejection
from metering.models import ConflictingEvent, UsageEvent
from metering.rollups import Increments, add_to_rollups
from storage.db import dialect_insert
from storage.encoding import FLAG, TIME_TEXT, quantity_text
from telemetry.metrics import counted_batches

BATCH_EVENTS = 20_000   # per transaction: memory stays flat, rollups are added once per batch
RETRIES = 5          # PostgreSQL may pick a batch as a deadlock victim; it is then run again

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


def count_outcomes(outcomes: list[Outcome]) -> Counter:
    """(status, late) → how many. The shared accepted outcomes, nearly all of them, are counted by identity in C
    (comparing dataclasses would call Python for each); the others one by one."""
    accepted, late = (sum(map(is_, outcomes, repeat(shared))) for shared in (_ACCEPTED, _ACCEPTED_LATE))
    counted = Counter({(ACCEPTED, False): accepted, (ACCEPTED, True): late})
    if accepted + late < len(outcomes):
        counted.update((outcome.status, outcome.late) for outcome in outcomes
                       if outcome is not _ACCEPTED and outcome is not _ACCEPTED_LATE)
    return +counted


def ingest_events(
    session_factory: sessionmaker,
    items: Iterable[Item],
    *,
    batch_size: int | None = None,
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(UTC),
) -> Iterator[tuple[Hashable, Event | Rejection, Outcome]]:
    if isinstance(items, EventFile):
        return (item for batch in ingest_file(session_factory, items.path, batch_size=batch_size, clock=clock)
                for item in zip(batch.lines, batch.items, batch.outcomes))
    return Ingestion(clock).ingest_items(session_factory, items, batch_size or BATCH_EVENTS)


@dataclass(frozen=True, slots=True)
class StoredBatch:
    """A batch of a file, committed: each item's line number, the item itself where this process had it in
    hand (a rejection, a repeat met within the batch, an event of a customer the worker did not know) or
    None, and its outcome. A command that only counts outcomes counts them a batch at a time."""

    lines: Sequence[int]
    items: list
    outcomes: list[Outcome]


def ingest_file(session_factory: sessionmaker, path: str | Path, *, batch_size: int | None = None,
                clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(UTC),
                reader: FileReader | None = None) -> Iterator[StoredBatch]:
    """A `.jsonl` or `.csv` file, read by a worker process, as `ingest_events(sessions, read_events(path))`,
    a batch at a time. `reader`: the file's reader, started already (before the database was opened); else
    one is started here, with `batch_size` and `clock`."""
    return Ingestion(clock).ingest_file(session_factory, str(path), batch_size or FILE_BATCH_EVENTS, reader)


class Ingestion:
    """What stays known across batches: the contracts' time zones, and whether the last batch met repeats.

    `ingest_events` makes one for each call; the event API keeps one for the app, so that a request finds what
    the ones before it learnt (a client re-sending its batches: look the keys up first). Only hints are kept,
    so requests in several threads may share it."""

    def __init__(self, clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(UTC)):
        self.clock = clock
        self.zones: dict[str, str] = {}
        self.repeats_seen = False

    @counted_batches(lambda batch: "file" if isinstance(batch, Prepared) else "api")
    def store(self, session_factory: sessionmaker, batch: Sequence[Item] | Prepared) -> list[Outcome]:
        """One transaction: items in hand are batched in it (the contracts' time zones read with their locks)."""
        for attempt in range(RETRIES):
            try:
                with _engine(session_factory).begin() as connection:
                    if isinstance(batch, Prepared):
                        return self._store_batch(connection, batch)
                    customers = {item.data.customer for _, item in batch if type(item) is Event}
                    issued = self._customers(connection, customers)
                    return self._store_batch(connection, self._batch_of(connection, batch, customers), issued)
            except OperationalError as exc:
                if getattr(exc.orig, "sqlstate", None) not in ("40P01", "40001") or attempt == RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    def _batch_of(self, connection: Connection, items: Sequence[Item], customers: set[str]) -> Prepared:
        """Items in hand through the batcher, each at its position: runs of events, and rejections."""
        zones = {customer: self.zones[customer] for customer in customers if customer in self.zones}
        batcher = Batcher(connection.dialect.name, zones, self.clock)
        first, run = 0, []
        for position, (_, item) in enumerate(items):
            if type(item) is Event:
                if not run:
                    first = position
                run.append(item)
                continue
            if run:
                batcher.add_events(first, run)
                run = []
            batcher.reject(position, item)
        if run:
            batcher.add_events(first, run)
        return batcher.take()

    def _customers(self, connection: Connection, names: set[str]) -> dict[str, set[tuple[int, int]]]:
        """Per known customer in `names`, the (year, month) of its issued invoices; locks them against issuing,
        and learns their time zones."""
        contracts = connection.execute(select(Contract.id, Contract.timezone).where(Contract.id.in_(sorted(names)))
                                       .order_by(Contract.id).with_for_update(read=True)).all()
        issued: dict[str, set[tuple[int, int]]] = {}
        for name, zone in contracts:
            self.zones[name] = zone
            issued[name] = set()
        if issued:
            query = select(Invoice.customer, Invoice.period).where(Invoice.customer.in_(sorted(issued)), in_force())
            for name, period in connection.execute(query):
                issued[name].add((period.year, period.month))
        return issued

    def _day(self, event: Event) -> dt.date:
        return local_days(self.zones[event.data.customer])(event.time)

    def _classify(self, connection: Connection, repeats: list[tuple[int, Event]],
                  issued: dict[str, set[tuple[int, int]]], now: dt.datetime, outcomes: list) -> None:
        """Each repeat (index, event) of an identity now stored: a duplicate, or a conflict (kept once)."""
        stored = stored_events(connection, sorted({(event.source, event.id) for _, event in repeats}))
        conflicts = []
        for index, event in repeats:
            first, data = stored[(event.source, event.id)], event.data
            if first == (event.time, data.customer, data.site, data.category, data.quantity):
                outcomes[index] = _DUPLICATE
                continue
            differing = differences(first, event)
            day = self._day(event)
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

    def ingest_items(self, session_factory: sessionmaker, items: Iterable[Item], batch_size: int
                     ) -> Iterator[tuple[Hashable, Event | Rejection, Outcome]]:
        source = iter(items)
        while batch := list(islice(source, batch_size)):
            outcomes = self.store(session_factory, batch)
            for (tag, item), outcome in zip(batch, outcomes):
                yield tag, item, outcome

    def ingest_file(self, session_factory: sessionmaker, path: str, batch_size: int,
                    reader: FileReader | None) -> Iterator[StoredBatch]:
        with session_factory() as session:
            engine = session.get_bind()
            zones = dict(session.execute(select(Contract.id, Contract.timezone)).all())
        backend = engine.dialect.name
        self.zones.update(zones)
        if reader is None:
            if backend == "postgresql":
                # The worker is forked: a pooled connection's socket would live on in it, and with it the session
                # on the server, holding the locks of a killed ingest's last transaction. Closed here, reopened
                # below.
                engine.dispose()
            reader = FileReader(path, batch_size, self.clock)
        with reader.batches(backend, zones) as batches:
            for batch in batches:
                outcomes = self.store(session_factory, batch)
                items: list = [None] * batch.size
                for position, item in batch.rejections:
                    items[position] = item
                for position, item in batch.pending:
                    items[position] = item
                for position, item, _ in batch.repeats:
                    items[position] = item
                yield StoredBatch(batch.lines, items, outcomes)

    def _store_batch(self, connection: Connection, batch: Prepared, issued: dict | None = None) -> list[Outcome]:
        """A batch: its rows as they are when nothing is unusual, else corrected here first. `issued`: of the
        batch's customers, read and locked in this transaction already."""
        backend = connection.dialect.name
        if issued is None:
            issued = self._customers(connection, batch.customers | {event.data.customer for _, event in batch.pending})
        outcomes: list[Outcome] = [_ACCEPTED] * batch.size
        for position, rejection in batch.rejections:
            outcomes[position] = Outcome(REJECTED, reason=rejection.reason, detail=rejection.detail)
        rows, candidates, sums, months = batch.rows, batch.candidates(), batch.sums, batch.months
        repeats = [(position, event) for position, event, pending_only in batch.repeats if not pending_only]
        if batch.pending or len(repeats) < len(batch.repeats):
            rows, candidates, sums, months = self._settle_pending(batch, backend, issued, outcomes, repeats)
        # A suspect (its identity may have come in an earlier batch) is not in the batcher's sums: those not
        # stored are added here. Exact sums do not depend on the order of their terms.
        suspects = [(row, _identity(rows, row), key, quantity) for row, key, quantity in batch.suspects]
        known = set(stored_events(connection, sorted({s[1] for s in suspects}))) if suspects else set()
        sums = _with_suspects(sums, [s for s in suspects if s[1] not in known])
        late_months = {month for month in months if (month[1], month[2]) in issued.get(month[0], ())}
        if late_months:
            rows = _mark_late(backend, rows, candidates, late_months, outcomes)
        left_out = insert_new(connection, EVENTS, EVENT_COLUMNS, rows, ("source", "event_id"),
                              direct=not self.repeats_seen, stored=known)
        self.repeats_seen = left_out != known   # repeats the look-up did not expect: stored before the ingest
        if left_out == known:
            usage = _split_late(sums, late_months)
            stored = [row for row, identity, _, _ in suspects if identity in known]
            repeats += zip([candidates[row] for row in stored], _events_of_rows(rows, stored))
        else:   # the sums of all rows, then those of the rows stored before taken out again
            usage = _split_late(_with_suspects(sums, [s for s in suspects if s[1] in known]), late_months)
            repeats += _stored_before(backend, candidates, rows, left_out, usage)
        add_to_rollups(connection, usage[False])
        add_to_rollups(connection, usage[True], late=True)
        if repeats:
            repeats.sort(key=lambda repeat: repeat[0])
            self._classify(connection, repeats, issued, self.clock(), outcomes)
        return outcomes

    def _settle_pending(self, batch: Prepared, backend: str, issued: dict, outcomes: list,
                        repeats: list[tuple[int, Event]]):
        """What the batcher left to the database: events of customers it knew no time zone of (unknown, or
        saved meanwhile), and the repeats of their identities. Returns the rows, their positions, the sums and
        the months with the events of known customers added; the batch itself is left as it is (a retry reads
        it again)."""
        rows, candidates = list(batch.rows), batch.candidates()
        sums = {key: list(cell) for key, cell in batch.sums.items()}
        taken = {(row[0], row[1]) for row in rows}
        undecided = sorted([(position, event) for position, event in batch.pending]
                           + [(position, event) for position, event, pending_only in batch.repeats if pending_only],
                           key=lambda entry: entry[0])
        time_text, on_time = TIME_TEXT[backend], FLAG[backend][False]
        for position, event in undecided:
            data = event.data
            if data.customer not in issued:
                outcomes[position] = _unknown(data.customer)
                continue
            identity = (event.source, event.id)
            if identity in taken:
                repeats.append((position, event))
                continue
            taken.add(identity)
            day = self._day(event)
            rows.append((event.source, event.id, data.customer, data.site, data.category, time_text(event.time),
                         quantity_text(data.quantity), day.isoformat(), on_time, batch.received))
            candidates.append(position)
            cell = sums.setdefault((data.customer, data.site, data.category, day), [None, 0])
            cell[0] = data.quantity if cell[0] is None else EXACT.add(cell[0], data.quantity)
            cell[1] += 1
        months = {(customer, day.year, day.month) for customer, _, _, day in sums}
        columns = [list(values) for values in zip(*rows)] if rows else [[] for _ in EVENT_COLUMNS]
        return Rows.of_columns(backend, columns), candidates, sums, months


def _engine(session_factory: sessionmaker) -> Engine:
    """The engine the sessions are bound to: ingest writes with Core statements and needs no ORM session."""
    return session_factory.kw["bind"]


def _unknown(customer: str) -> Outcome:
    return Outcome(REJECTED, reason=UNKNOWN_CUSTOMER,
                   detail=f"no contract '{customer}' in the database (save it with `billing contract save`)")


LATE = EVENT_COLUMNS.index("late")


def _mark_late(backend: str, rows: Rows, candidates, late_months: set, outcomes: list) -> Rows:
    """The rows, those of the (customer, month)s that have an issued invoice made late."""
    marked = set()
    for row, (position, customer, day) in enumerate(zip(candidates, rows.column(2), rows.column(7))):
        if (customer, int(day[:4]), int(day[5:7])) in late_months:
            marked.add(row)
            outcomes[position] = _ACCEPTED_LATE
    return rows.with_value(LATE, marked, FLAG[backend][True])


def _split_late(sums: Increments, late_months: set) -> dict[bool, Increments]:
    """Sums into on time (False) and late (True), each a dict of its own (the caller may change them)."""
    usage: dict[bool, Increments] = {False: {}, True: {}}
    for key, cell in sums.items():
        usage[bool(late_months) and (key[0], key[3].year, key[3].month) in late_months][key] = cell
    return usage


def _with_suspects(sums: Increments, suspects: list) -> Increments:
    """The sums with the quantities of these suspects (row, identity, key, quantity) added; the cells given are
    not changed (a batch may be stored again after a deadlock)."""
    if not suspects:
        return sums
    sums = dict(sums)
    for _, _, key, quantity in suspects:
        cell = sums.get(key)
        sums[key] = [quantity, 1] if cell is None else [EXACT.add(cell[0], quantity), cell[1] + 1]
    return sums


def _identity(rows: Rows, row: int) -> tuple[str, str]:
    return rows.column(0)[row], rows.column(1)[row]


def _stored_before(backend: str, candidates, rows: Rows, left_out: set, usage: dict) -> list[tuple[int, Event]]:
    """The rows whose identity was stored before this batch, as (position, event) repeats; their cells in
    `usage` summed again without them (so that each sum keeps the decimal places of what it adds up)."""
    late_value = FLAG[backend][True]
    identities = list(zip(rows.column(0), rows.column(1)))
    stored = [index for index, identity in enumerate(identities) if identity in left_out]
    repeats = list(zip([candidates[index] for index in stored], _events_of_rows(rows, stored)))
    keys = list(zip(map((late_value).__eq__, rows.column(8)), *(rows.column(c) for c in (2, 3, 4, 7))))
    stale = {keys[index] for index in stored}
    for late, customer, site, category, day in stale:
        del usage[late][(customer, site, category, dt.date.fromisoformat(day))]
    for key, identity, quantity in zip(keys, identities, rows.column(6)):
        if key in stale and identity not in left_out:
            late, customer, site, category, day = key
            cell = usage[late].setdefault((customer, site, category, dt.date.fromisoformat(day)), [None, 0])
            quantity = Decimal(quantity)
            cell[0] = quantity if cell[0] is None else EXACT.add(cell[0], quantity)
            cell[1] += 1
    return repeats


def _events_of_rows(rows: Rows, indexes: list[int]) -> list[Event]:
    """The events the rows at `indexes` were made of, as far as a repeat is compared with them (each step a
    pass in C: a re-sent batch has as many as it has rows)."""
    columns = [[values[index] for index in indexes] for values in map(rows.column, range(7))]
    times = list(map(dt.datetime.fromisoformat, columns[5]))
    if times and times[0].tzinfo is None:   # SQLite's UTC text
        times = [time.replace(tzinfo=UTC) for time in times]
    datas = map(EventData, columns[2], columns[3], columns[4], map(Decimal, columns[6]))
    return list(map(Event, repeat("1.0"), columns[1], columns[0], repeat(""), times, datas))