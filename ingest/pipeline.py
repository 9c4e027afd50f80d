"""Events in: each stored once by its identity (source, id), summed into rollups in the same transaction.

    for line, item, outcome in ingest_events(sessions, read_events("may.jsonl")):
        outcome.status        # accepted | duplicate | conflict | rejected
        outcome.late          # accepted, but its period already has an issued invoice

Items are `(tag, Event | Rejection)` pairs, as `metering.events.read_events`
yields them (the tag is the line number there; an HTTP handler passes the index
in its request); each comes back with its outcome, in order. A `Rejection` stays
rejected, and so does an event for a customer without a contract.

A file given as `read_events(path)` (a `metering.events.EventFile`) is read,
checked and turned into rows by a worker process (store/file_batches.py) while
this one stores the batch before; an event comes back with None for its item,
unless this process had it in hand: a rejection, a repeat met within its batch,
an event of a customer the worker knew no time zone of (an unknown customer's is
rejected with its event). Other items are stored as they come.

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
import queue
import threading
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Context, Decimal
from itertools import islice, repeat
from operator import is_
from pathlib import Path
from typing import Callable, Hashable, Iterable, Iterator, Sequence
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from engine.money import EXACT
from ingest.file_batches import BATCH_EVENTS as FILE_BATCH_EVENTS
from ingest.file_batches import TIME_TEXT, FileReader, Prepared, quantity_text
from ledger.models import Contract, Invoice, in_force
from metering.aggregate import LocalDays
from metering.bulk import insert_new, stored_events
from metering.events import Event, EventData, EventFile, Rejection
from metering.models import ConflictingEvent, UsageEvent
from metering.rollups import Increments, add_to_rollups
from storage.db import dialect_insert
from storage.types import decimal_text

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
    return _Ingestion(clock).ingest_items(session_factory, items, batch_size or BATCH_EVENTS)


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
    return _Ingestion(clock).ingest_file(session_factory, str(path), batch_size or FILE_BATCH_EVENTS, reader)


@contextmanager
def _read_ahead(items: Iterable[Item], batch_size: int) -> Iterator[Iterator[list[Item]]]:
    """The items in batches, the next one read (parsed) in a thread while the database works on this one.

    At most two batches wait; an error in reading is raised where the batch would have come.
    """
    ready: queue.Queue = queue.Queue(maxsize=2)
    stop = threading.Event()

    def read() -> None:
        try:
            source = iter(items)
            while not stop.is_set() and (batch := list(islice(source, batch_size))):
                ready.put(batch)
            ready.put(None)
        except BaseException as exc:  # handed to the consumer, who raises it
            ready.put(exc)

    def batches() -> Iterator[list[Item]]:
        while (batch := ready.get()) is not None:
            if isinstance(batch, BaseException):
                raise batch
            yield batch

    reader = threading.Thread(target=read, name="ingest-reader", daemon=True)
    reader.start()
    try:
        yield batches()
    finally:
        stop.set()
        while reader.is_alive():   # let a reader blocked on a full queue finish
            try:
                ready.get_nowait()
            except queue.Empty:
                reader.join(0.01)


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
    """What stays known across batches: the contracts' time zones, and whether the last batch met repeats."""

    def __init__(self, clock: Callable[[], dt.datetime]):
        self.clock = clock
        self.local_days: dict[str, LocalDays] = {}
        self.repeats_seen = False

    def store(self, session_factory: sessionmaker, batch: list[Item] | Prepared) -> list[Outcome]:
        for attempt in range(RETRIES):
            try:
                with session_factory.begin() as session:
                    if isinstance(batch, Prepared):
                        return self._store_prepared(session, batch)
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
        query = select(Invoice.customer, Invoice.period).where(Invoice.customer.in_(known), in_force())
        for name, period in session.execute(query):
            issued[name].add((period.year, period.month))
        return issued

    def _store(self, session: Session, batch: list[Item]) -> list[Outcome]:
        connection = session.connection()
        now = self.clock()
        issued = self._customers(session, {item.data.customer for _, item in batch if type(item) is Event})
        outcomes: list[Outcome | None] = [None] * len(batch)
        seen: set[tuple[str, str]] = set()
        candidates, rows, repeats = [], [], []
        usage: dict[bool, Increments] = {False: {}, True: {}}   # on time, late
        add, local_days = EXACT.add, self.local_days
        for index, (_, item) in enumerate(batch):
            if type(item) is not Event:
                outcomes[index] = Outcome(REJECTED, reason=item.reason, detail=item.detail)
                continue
            data = item.data
            customer = data.customer
            months = issued.get(customer)
            if months is None:
                outcomes[index] = _unknown(customer)
                continue
            identity = (item.source, item.id)
            if identity in seen:
                repeats.append(index)
                continue
            seen.add(identity)
            day = local_days[customer](item.time)
            late = bool(months) and (day.year, day.month) in months
            quantity = data.quantity
            candidates.append(index)
            rows.append((item.source, item.id, customer, data.site, data.category, item.time, quantity, day, late, now))
            key = (customer, data.site, data.category, day)
            cell = usage[late].get(key)
            if cell is None:
                usage[late][key] = [quantity, 1]
            else:
                cell[0] = add(cell[0], quantity)
                cell[1] += 1
            outcomes[index] = _ACCEPTED_LATE if late else _ACCEPTED

        left_out = insert_new(connection, EVENTS, EVENT_COLUMNS, rows, ("source", "event_id"),
                              direct=not self.repeats_seen)
        self.repeats_seen = bool(left_out)   # repeats come in runs: a re-sent file, an overlapping one
        if left_out:   # stored before: repeats, not usage
            repeats += _without_stored(candidates, rows, left_out, usage, outcomes)
        add_to_rollups(connection, usage[False])
        add_to_rollups(connection, usage[True], late=True)
        if repeats:
            self._classify(connection, [(index, batch[index][1]) for index in repeats], issued, now, outcomes)
        return outcomes

    def _classify(self, connection: Connection, repeats: list[tuple[int, Event]],
                  issued: dict[str, set[tuple[int, int]]], now: dt.datetime, outcomes: list) -> None:
        """Each repeat (index, event) of an identity now stored: a duplicate, or a conflict (kept once)."""
        stored = stored_events(connection, sorted({(event.source, event.id) for _, event in repeats}))
        conflicts = []
        for index, event in repeats:
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

    def ingest_items(self, session_factory: sessionmaker, items: Iterable[Item], batch_size: int
                     ) -> Iterator[tuple[Hashable, Event | Rejection, Outcome]]:
        with _read_ahead(items, batch_size) as batches:
            for batch in batches:
                outcomes = self.store(session_factory, batch)
                for (tag, item), outcome in zip(batch, outcomes):
                    yield tag, item, outcome

    def ingest_file(self, session_factory: sessionmaker, path: str, batch_size: int,
                    reader: FileReader | None) -> Iterator[StoredBatch]:
        with session_factory() as session:
            engine = session.get_bind()
            zones = dict(session.execute(select(Contract.id, Contract.timezone)).all())
        backend = engine.dialect.name
        for name, zone in zones.items():
            self.local_days.setdefault(name, LocalDays(ZoneInfo(zone)))
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

    def _store_prepared(self, session: Session, batch: Prepared) -> list[Outcome]:
        """A worker's batch: its rows as they are when nothing is unusual, else corrected here first."""
        connection = session.connection()
        backend = connection.dialect.name
        pending_customers = {event.data.customer for _, event in batch.pending}
        issued = self._customers(session, batch.customers | pending_customers)
        outcomes: list[Outcome] = [_ACCEPTED] * batch.size
        for position, rejection in batch.rejections:
            outcomes[position] = Outcome(REJECTED, reason=rejection.reason, detail=rejection.detail)
        rows, candidates, sums, months = batch.rows, batch.candidates(), batch.sums, batch.months
        repeats = [(position, event) for position, event, pending_only in batch.repeats if not pending_only]
        if batch.pending or len(repeats) < len(batch.repeats):
            rows, candidates, sums, months = self._settle_pending(batch, backend, issued, outcomes, repeats)
        # A suspect (its identity may have come in an earlier batch) is not in the worker's sums: those not
        # stored are added here. Exact sums do not depend on the order of their terms.
        suspects = [(row, _identity(rows, row), key, quantity) for row, key, quantity in batch.suspects]
        known = set(stored_events(connection, sorted({s[1] for s in suspects}))) if suspects else set()
        sums = _with_suspects(sums, [s for s in suspects if s[1] not in known])
        late_months = {month for month in months if (month[1], month[2]) in issued.get(month[0], ())}
        if late_months:
            rows = _mark_late(backend, rows, candidates, late_months, outcomes)
        left_out = insert_new(connection, EVENTS, EVENT_COLUMNS, rows, ("source", "event_id"),
                              direct=not self.repeats_seen, prepared=True, stored=known)
        self.repeats_seen = left_out != known   # repeats the look-up did not expect: stored before the ingest
        if left_out == known:
            usage = _split_late(sums, late_months)
            repeats += [(candidates[row], _event_of_row(_row(rows, row))) for row, identity, _, _ in suspects
                        if identity in known]
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
        """What the worker left to the database: events of customers it knew no time zone of (unknown, or
        saved meanwhile), and the repeats of their identities. Returns the rows (as tuples), their positions,
        the sums and the months with the events of known customers added; the batch itself is left as it is
        (a retry reads it again)."""
        rows, candidates = list(batch.rows), batch.candidates()
        sums = {key: list(cell) for key, cell in batch.sums.items()}
        taken = {(row[0], row[1]) for row in rows}
        undecided = sorted([(position, event) for position, event in batch.pending]
                           + [(position, event) for position, event, pending_only in batch.repeats if pending_only],
                           key=lambda entry: entry[0])
        time_text, on_time = TIME_TEXT[backend], LATE_VALUE[backend][False]
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
            day = self.local_days[data.customer](event.time)
            rows.append((event.source, event.id, data.customer, data.site, data.category, time_text(event.time),
                         quantity_text(data.quantity), day.isoformat(), on_time, batch.received))
            candidates.append(position)
            cell = sums.setdefault((data.customer, data.site, data.category, day), [None, 0])
            cell[0] = data.quantity if cell[0] is None else EXACT.add(cell[0], data.quantity)
            cell[1] += 1
        months = {(customer, day.year, day.month) for customer, _, _, day in sums}
        return rows, candidates, sums, months


def _without_stored(candidates, rows, left_out_identities, usage, outcomes) -> list[int]:
    """Takes the rows not inserted out of the usage (summing their cells again, so that each sum keeps the
    decimal places of what it adds up) and returns their indexes."""
    stale, left_out = set(), []
    for index, row in zip(candidates, rows):
        if (row[0], row[1]) in left_out_identities:
            left_out.append(index)
            stale.add((row[8], (row[2], row[3], row[4], row[7])))
    for late, key in stale:
        del usage[late][key]
    for index, row in zip(candidates, rows):
        key = (row[2], row[3], row[4], row[7])
        if (row[8], key) in stale and (row[0], row[1]) not in left_out_identities:
            cell = usage[row[8]].setdefault(key, [None, 0])
            cell[0] = row[6] if cell[0] is None else EXACT.add(cell[0], row[6])
            cell[1] += 1
    for index in left_out:
        outcomes[index] = None
    return left_out


def _unknown(customer: str) -> Outcome:
    return Outcome(REJECTED, reason=UNKNOWN_CUSTOMER,
                   detail=f"no contract '{customer}' in the database (save it with `billing contract save`)")


LATE_VALUE = {"sqlite": (0, 1), "postgresql": (False, True)}   # `late` in the driver's values


def _mark_late(backend: str, rows, candidates, late_months: set, outcomes: list) -> list[tuple]:
    """The rows (as tuples), those of the (customer, month)s that have an issued invoice made late."""
    late_value, marked = LATE_VALUE[backend][True], []
    for position, row in zip(candidates, rows):
        if (row[2], int(row[7][:4]), int(row[7][5:7])) in late_months:
            row = (*row[:8], late_value, *row[9:])
            outcomes[position] = _ACCEPTED_LATE
        marked.append(row)
    return marked


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


def _identity(rows, row: int) -> tuple[str, str]:
    if hasattr(rows, "column"):
        return rows.column(0)[row], rows.column(1)[row]
    return rows[row][0], rows[row][1]


def _row(rows, row: int) -> tuple:
    if hasattr(rows, "column"):
        return tuple(rows.column(c)[row] for c in range(8))
    return rows[row]


def _stored_before(backend: str, candidates, rows, left_out: set, usage: dict) -> list[tuple[int, Event]]:
    """The rows whose identity was stored before this batch, as (position, event) repeats; their cells in
    `usage` summed again without them (so that each sum keeps the decimal places of what it adds up)."""
    late_value = LATE_VALUE[backend][True]
    stale, repeats = set(), []
    for position, row in zip(candidates, rows):
        if (row[0], row[1]) in left_out:
            repeats.append((position, _event_of_row(row)))
            stale.add((row[8] == late_value, row[2], row[3], row[4], row[7]))
    for late, customer, site, category, day in stale:
        del usage[late][(customer, site, category, dt.date.fromisoformat(day))]
    for row in rows:
        key = (row[8] == late_value, row[2], row[3], row[4], row[7])
        if key in stale and (row[0], row[1]) not in left_out:
            late, customer, site, category, day = key
            cell = usage[late].setdefault((customer, site, category, dt.date.fromisoformat(day)), [None, 0])
            quantity = Decimal(row[6])
            cell[0] = quantity if cell[0] is None else EXACT.add(cell[0], quantity)
            cell[1] += 1
    return repeats


def _event_of_row(row: tuple) -> Event:
    """The event a row was made of, as far as a repeat is compared with it."""
    time = dt.datetime.fromisoformat(row[5])
    if time.tzinfo is None:   # SQLite's UTC text
        time = time.replace(tzinfo=UTC)
    return Event("1.0", row[1], row[0], "", time, EventData(row[2], row[3], row[4], Decimal(row[6])))
