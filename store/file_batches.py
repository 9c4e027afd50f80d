"""A file's events as batches ready for the database, made in a worker process while the database works.

    with prepared_batches("may.jsonl", "sqlite", zones, 20_000) as batches:
        for batch in batches:      # Prepared: rows in the driver's own values, their sums, what is left to decide
            ...

`billing ingest` spends as much time reading, checking and converting events as
the database spends storing them; on a machine with two cores the two halves
run side by side. The worker (a forked process) reads the file with
`metering.events.read_batches`, and for each batch of items makes:

- `rows`: the first event of each identity (source, id) in the batch, of a
  customer whose time zone it was given, as the events table takes it
  (`store.ingest.EVENT_COLUMNS`) in the driver's values (SQLite: its text;
  PostgreSQL: `COPY` text), `late` false; kept by column (`ColumnRows`), so
  that a batch passes to the other process as a few strings;
- `sums`: their quantities per (customer, site, category, local day), exact, with counts, but for
- `suspects`: rows whose identity an earlier batch of the file may have had (a
  Bloom filter of fixed size says "maybe"; it never misses one): the database
  looks these few up, and only those not stored are added to the sums;
- `months`: the (customer, year, month) of the rows, to check against issued invoices;
- what only the database can decide: `rejections` (bad lines), `pending`
  (events of a customer it knew no time zone of: unknown, or saved after the
  ingest began) and `repeats` (an identity met before in the batch), each with
  its position in the batch.

Whatever the database then finds (an event stored before the ingest began, late
usage, a contract saved meanwhile) is corrected by `store.ingest`; the worker
only saves work in the common case. At most `AHEAD` batches wait.
"""

from __future__ import annotations

import datetime as dt
import gc
import multiprocessing
import os
import queue
import signal
import threading
import time
from array import array
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import repeat
from typing import Callable, Iterator, Sequence
from zoneinfo import ZoneInfo

from metering.aggregate import LocalDays
from metering.events import Event, Rejection, read_batches
from store.types import EXACT

AHEAD = 2           # batches made and not yet taken
EARLIER_BITS = 1 << 26   # 8 MB: under 2% false suspects up to a million identities, and never a missed one
EARLIER_MASK = EARLIER_BITS - 1
POLL_SECONDS = 1.0  # how often a wait for the worker checks that it is still alive
WATCH_SECONDS = 0.2  # how often the worker checks that the process it works for is still there
UTC = dt.timezone.utc


class ColumnRows:
    """Rows (`store.ingest.EVENT_COLUMNS`) kept by column, each column's texts joined by newlines: one string a
    column passes between processes at the speed of a copy, where a list of tuples is pickled object by object.

    `late` is false and `received_at` the same for all. Iterating gives the rows as tuples; `copy_text()` is
    their text for PostgreSQL's `COPY`, made by the worker.
    """

    TEXT_COLUMNS = 8   # source, event_id, customer, site, category, time, quantity, day

    def __init__(self, backend: str, columns: list[Sequence[str]], received: str):
        self.backend, self.count, self.received = backend, len(columns[0]), received
        self.late = False if backend == "postgresql" else 0
        self.columns: list[str | Sequence[str]] = []
        clean = True
        for values in columns:
            joined = "\n".join(values)
            if joined.count("\n") == len(values) - 1:
                self.columns.append(joined)
                clean = clean and not any(c in joined for c in "\t\r\\")
            else:   # a value with a newline in it: kept as a list (pickled one by one)
                self.columns.append(values)
                clean = False
        self._split: dict[int, list[str]] = {}
        self._copy_text = None
        if backend == "postgresql":
            lines = "\n".join(map("\t".join, zip(*columns, repeat("f"), repeat(received))))
            self._copy_text = (lines + "\n" if self.count else "") if clean else _escaped_copy_text(self)

    def __getstate__(self):
        return self.backend, self.count, self.received, self.late, self.columns, self._copy_text

    def __setstate__(self, state):
        self.backend, self.count, self.received, self.late, self.columns, self._copy_text = state
        self._split = {}

    def __len__(self) -> int:
        return self.count

    def column(self, index: int) -> list[str]:
        values = self._split.get(index)
        if values is None:
            values = self.columns[index]
            values = (values.split("\n") if self.count else []) if isinstance(values, str) else list(values)
            self._split[index] = values
        return values

    def __iter__(self) -> Iterator[tuple]:
        return zip(*(self.column(i) for i in range(self.TEXT_COLUMNS)), repeat(self.late), repeat(self.received))

    def copy_text(self) -> str:
        return self._copy_text if self._copy_text is not None else _escaped_copy_text(self)

    def without(self, positions: set[int]) -> "ColumnRows | CopyText":
        """The rows but those at `positions` (for PostgreSQL: only their `COPY` text)."""
        if self.backend == "postgresql":
            lines = self.copy_text().split("\n")
            kept = [line for i, line in enumerate(lines[:-1]) if i not in positions]
            return CopyText("".join(line + "\n" for line in kept), len(kept))
        columns = [[value for i, value in enumerate(self.column(c)) if i not in positions]
                   for c in range(self.TEXT_COLUMNS)]
        return ColumnRows(self.backend, columns, self.received)


@dataclass
class CopyText:
    """Rows as `COPY` text only."""

    text: str
    count: int

    def copy_text(self) -> str:
        return self.text

    def __len__(self) -> int:
        return self.count


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})


def _escaped_copy_text(rows: ColumnRows) -> str:
    return "".join("\t".join(value.translate(_COPY_ESCAPES) if isinstance(value, str) else ("t" if value else "f")
                             for value in row) + "\n" for row in rows)


@dataclass
class Prepared:
    size: int                                     # items in the batch (events and rejections)
    lines: array                                  # each item's line number
    received: str                                 # the rows' received_at
    rows: ColumnRows | None = None
    sums: dict = field(default_factory=dict)      # (customer, site, category, day) → [quantity, events], but
    #                                               the suspects'
    suspects: list[tuple[int, tuple, Decimal]] = field(default_factory=list)   # (row, sums key, quantity) of
    #                                               the rows whose identity an earlier batch may have had
    months: set = field(default_factory=set)      # (customer, year, month) of the rows
    customers: set = field(default_factory=set)   # of the rows
    rejections: list[tuple[int, Rejection]] = field(default_factory=list)
    pending: list[tuple[int, Event]] = field(default_factory=list)
    repeats: list[tuple[int, Event, bool]] = field(default_factory=list)   # True: the identity is only a pending one's

    def candidates(self) -> list[int]:
        """Each row's position in the batch: the positions that are not a rejection, pending or a repeat."""
        others = {position for position, _ in self.rejections} | {position for position, _ in self.pending} \
            | {position for position, _, _ in self.repeats}
        return [position for position in range(self.size) if position not in others] if others \
            else list(range(self.size))


def sqlite_time(time: dt.datetime) -> str:
    """An instant as SQLite stores it (store/types.py UTCDateTime)."""
    if time.tzinfo is not UTC:
        time = time.astimezone(UTC)
    return time.isoformat(" ", "microseconds")[:-6]   # without "+00:00"


def postgresql_time(time: dt.datetime) -> str:
    """An instant with its offset, as PostgreSQL parses it."""
    return time.isoformat()


class _Minutes(dict):
    """Minutes since 1970 → the UTC text of the minute, made when first asked for: the worker writes an
    instant as that and its seconds, for a fraction of what `isoformat` costs."""

    def __missing__(self, minute: int) -> str:
        text = self[minute] = dt.datetime.fromtimestamp(minute * 60, UTC).isoformat(" ")[:17]
        return text


SECONDS = [f"{second:02d}." for second in range(60)]


TIME_TEXT = {"sqlite": sqlite_time, "postgresql": postgresql_time}


def quantity_text(quantity: Decimal) -> str:
    """A NUMERIC's digits, as store.types.decimal_text writes them."""
    text = str(quantity)
    return text if "E" not in text and text[0] != "-" else _decimal_text(quantity)


def received_text(backend: str, now: dt.datetime) -> str:
    now = now.astimezone(UTC)
    return now.replace(tzinfo=None).isoformat(" ", "microseconds") if backend == "sqlite" else now.isoformat()


def _decimal_text(value: Decimal) -> str:
    text = f"{value:f}"
    return text if value else text.lstrip("-")


class _Batcher:
    """Turns the file's items into `Prepared` batches; `add_events` is the loop every event goes through."""

    def __init__(self, backend: str, zones: dict[str, str], clock: Callable[[], dt.datetime]):
        self.backend, self.time_text, self.clock = backend, TIME_TEXT[backend], clock
        self.days = {customer: LocalDays(ZoneInfo(zone)) for customer, zone in zones.items()}
        self.quarters: dict[str, dict[int, tuple[dt.date, str]]] = {customer: {} for customer in zones}
        self.minutes = _Minutes()   # minutes since 1970 → "YYYY-MM-DD HH:MM:" in UTC
        self.earlier = bytearray(EARLIER_BITS // 8)   # a Bloom filter (one hash) of the identities of earlier batches
        self.start()

    def start(self) -> None:
        self.received = received_text(self.backend, self.clock())
        self.batch = Prepared(0, array("l"), self.received)
        self.rows: list[tuple[str, ...]] = []
        self.seen: set[tuple[str, str]] = set()
        self.pending_seen: set[tuple[str, str]] = set()

    def reject(self, line: int, rejection: Rejection) -> None:
        batch = self.batch
        batch.rejections.append((batch.size, rejection))
        batch.lines.append(line)
        batch.size += 1

    def add_events(self, first: int, events: list[Event]) -> None:
        """Every event goes through this loop, written out with local names: the quarter-hour cache of
        `LocalDays` per customer, `sqlite_time` for UTC times and `quantity_text` for plain decimals inline."""
        batch = self.batch
        position = batch.size
        batch.lines.extend(range(first, first + len(events)))
        batch.size += len(events)
        sums, seen, pending_seen = batch.sums, self.seen, self.pending_seen
        quarters, time_text, add, minutes = self.quarters, self.time_text, EXACT.add, self.minutes
        zone = "" if self.backend == "sqlite" else "+00:00"
        earlier, suspects, rows = self.earlier, batch.suspects, self.rows
        for event in events:
            data = event.data
            customer = data.customer
            days = quarters.get(customer)
            identity = (event.source, event.id)
            if days is None:   # the database decides: unknown customer, or a contract saved meanwhile
                batch.pending.append((position, event))
                pending_seen.add(identity)
            elif identity in seen or (pending_seen and identity in pending_seen):
                batch.repeats.append((position, event, identity not in seen))
            else:
                seen.add(identity)
                time = event.time
                second = int(time.timestamp())
                bucket = second // 900
                day = days.get(bucket)
                if day is None:
                    day = self._day(customer, time, bucket)
                if second >= 0:
                    micro = time.microsecond
                    written = (minutes[second // 60] + SECONDS[second % 60]
                               + (f"{micro:06d}" if micro else "000000") + zone)
                else:
                    written = time_text(time)
                quantity = data.quantity
                amount = str(quantity)
                if "E" in amount or amount[0] == "-":
                    amount = quantity_text(quantity)
                site, category = data.site, data.category
                rows.append((identity[0], identity[1], customer, site, category, written, amount, day[1]))
                key = (customer, site, category, day[0])
                bit = hash(identity) & EARLIER_MASK
                byte, mask = bit >> 3, 1 << (bit & 7)
                marks = earlier[byte]
                if marks & mask:   # maybe an earlier batch's identity (or a later one's of this batch: harmless)
                    suspects.append((len(rows) - 1, key, quantity))
                else:
                    earlier[byte] = marks | mask
                    cell = sums.get(key)
                    if cell is None:
                        sums[key] = [quantity, 1]
                    else:
                        cell[0] = add(cell[0], quantity)
                        cell[1] += 1
            position += 1

    def _day(self, customer: str, time: dt.datetime, bucket: int) -> tuple[dt.date, str]:
        day = self.days[customer](time)
        found = self.quarters[customer][bucket] = (day, day.isoformat())
        return found

    def take(self) -> Prepared:
        batch = self.batch
        columns = list(zip(*self.rows)) or [() for _ in range(ColumnRows.TEXT_COLUMNS)]
        batch.rows = ColumnRows(self.backend, columns, self.received)
        batch.months = {(customer, day.year, day.month)
                        for customer, _, _, day in [*batch.sums, *(key for _, key, _ in batch.suspects)]}
        batch.customers = {customer for customer, _, _ in batch.months}
        self.start()
        return batch


def _make_batches(path: str, backend: str, zones: dict[str, str], batch_size: int,
                  clock: Callable[[], dt.datetime]) -> Iterator[Prepared]:
    batcher = _Batcher(backend, zones, clock)
    for first, item in read_batches(path):
        if isinstance(item, Rejection):
            batcher.reject(first, item)
        else:
            while item:
                room = batch_size - batcher.batch.size
                batcher.add_events(first, item[:room])
                first, item = first + room, item[room:]
                if batcher.batch.size >= batch_size:
                    yield batcher.take()
        if batcher.batch.size >= batch_size:
            yield batcher.take()
    if batcher.batch.size:
        yield batcher.take()


def _exit_with(parent: int) -> None:
    """Ends the worker when the process it works for is gone (killed: nothing would ever take its batches)."""
    while os.getppid() == parent:
        time.sleep(WATCH_SECONDS)
    os._exit(0)


def _work(path: str, backend: str, zones: dict[str, str], batch_size: int, clock, ready, parent: int) -> None:
    """The worker: every batch, then None; or the exception that stopped it. Ctrl-C is the parent's to handle.

    Nothing it makes refers back to itself, so the cyclic garbage collector, which would otherwise walk the
    batch's tuples again and again, is turned off (some 15% of its time)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    gc.disable()
    threading.Thread(target=_exit_with, args=(parent,), name="ingest-reader-watch", daemon=True).start()
    try:
        for batch in _make_batches(path, backend, zones, batch_size, clock):
            ready.put(batch)
        ready.put(None)
    except BaseException as exc:  # handed to the parent, which raises it where the batch would have come
        ready.put(exc)


@contextmanager
def prepared_batches(path: str, backend: str, zones: dict[str, str], batch_size: int,
                     clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(UTC)) -> Iterator[Iterator[Prepared]]:
    """The file's batches, made by a forked worker process (in this process where fork is not available).
    Raises OSError (the file cannot be read) where the first batch would have come.

    The worker inherits this process's open files: the caller closes its database connections first (a
    PostgreSQL session stays open while any process holds its socket; see `store.ingest`)."""
    if "fork" not in multiprocessing.get_all_start_methods():
        yield _make_batches(path, backend, zones, batch_size, clock)
        return
    context = multiprocessing.get_context("fork")
    ready = context.Queue(maxsize=AHEAD)
    worker = context.Process(target=_work, args=(path, backend, zones, batch_size, clock, ready, os.getpid()),
                             name="ingest-reader", daemon=True)
    worker.start()

    def batches() -> Iterator[Prepared]:
        while True:
            try:
                batch = ready.get(timeout=POLL_SECONDS)
            except queue.Empty:
                if not worker.is_alive():
                    raise RuntimeError(f"the process reading {path} stopped (exit status {worker.exitcode})")
                continue
            if batch is None:
                return
            if isinstance(batch, BaseException):
                raise batch
            yield batch

    try:
        yield batches()
    finally:
        if worker.is_alive():
            worker.terminate()
        worker.join()
        ready.close()
