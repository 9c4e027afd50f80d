"""A file's events as batches ready for the database, made in a worker process while the database works.

    reader = FileReader("may.jsonl")             # forks the worker, which starts reading
    with reader.batches("sqlite", zones) as batches:
        for batch in batches:      # Prepared: rows in the driver's own values, their sums, what is left to decide
            ...

`billing ingest` spends as much time reading, checking and converting events as
the database spends storing them; on a machine with two cores the two halves
run side by side. The worker (a forked process) reads the file with
`metering.events.read_batches`, takes its events a run at a time (`_Batcher`:
a column at a time, in passes that loop in C), and for each batch of items
makes:

- `rows`: the first event of each identity (source, id) in the batch, of a
  customer whose time zone it was given, as the events table takes it
  (`ingest.pipeline.EVENT_COLUMNS`) in the driver's values (SQLite: its text;
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
usage, a contract saved meanwhile) is corrected by `ingest.pipeline`; the worker
only saves work in the common case. At most `AHEAD` batches wait.
"""

from __future__ import annotations

import datetime as dt
import gc
import mmap
import multiprocessing
import os
import queue
import signal
import threading
import time
from array import array
from collections import defaultdict, deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from functools import reduce
from itertools import chain, compress, count, repeat
from operator import and_, attrgetter, gt, is_not, itemgetter, lshift, not_, or_, rshift
from typing import Callable, Iterable, Iterator, Sequence
from zoneinfo import ZoneInfo

import msgspec

from engine.money import EXACT, decimal_text
from metering.aggregate import LocalDays
from metering.events import Event, Rejection, read_batches

BATCH_EVENTS = 50_000   # a file's batch (a transaction): kept by column, few commits and rollup writes
AHEAD = 2           # batches made and not yet taken
SLOT_BYTES = 16 << 20   # room for a batch's texts in SharedSlots (50,000 events: some 5 MB, 11 MB for PostgreSQL)
FIRST_BATCH_EVENTS = 5_000   # the first batch's size: the database waits for no more than this
EARLIER_BITS = 1 << 26   # 8 MB: under 2% false suspects up to a million identities, and never a missed one
EARLIER_MASK = EARLIER_BITS - 1
POLL_SECONDS = 1.0  # how often a wait for the worker checks that it is still alive
WATCH_SECONDS = 0.2  # how often the worker checks that the process it works for is still there
UTC = dt.timezone.utc


class ColumnRows:
    """Rows (`ingest.pipeline.EVENT_COLUMNS`) kept by column, each column's texts joined by newlines: one string a
    column passes between processes at the speed of a copy, where a list of tuples is pickled object by object
    (a column with a newline in a value is kept as a list). Made by `RunTexts`, a run of rows at a time.

    `late` is false and `received_at` the same for all. Iterating gives the rows as tuples; `copy_text()` is
    their text for PostgreSQL's `COPY`, made by the worker.
    """

    TEXT_COLUMNS = 8   # source, event_id, customer, site, category, time, quantity, day

    def __init__(self, backend: str, columns: list[str | list[str]], count: int, received: str,
                 copy_text: str | None = None):
        self.backend, self.columns, self.count, self.received = backend, columns, count, received
        self.late = False if backend == "postgresql" else 0
        self._copy_text = copy_text
        self._split: dict[int, list[str]] = {}

    @classmethod
    def of_values(cls, backend: str, columns: list[list[str]], received: str) -> "ColumnRows":
        texts = RunTexts(backend, received)
        texts.add(columns)
        return texts.rows()

    def place(self, slots: "SharedSlots", slot: int) -> None:
        """Moves the texts (the joined columns, the `COPY` text) into a slot of memory the other process sees,
        when they fit: then only where they are is pickled."""
        texts = [i for i, column in enumerate(self.columns) if isinstance(column, str)]
        places = slots.write(slot, [self.columns[i] for i in texts] + [self._copy_text or ""])
        if places is not None:
            for i, place in zip(texts, places):
                self.columns[i] = place
            self._copy_text = places[-1] if self._copy_text is not None else None

    def fetch(self, slots: "SharedSlots") -> None:
        """Reads back the texts `place` moved out (before the slot is written again)."""
        self.columns = [slots.read(column) if isinstance(column, Place) else column for column in self.columns]
        if isinstance(self._copy_text, Place):
            self._copy_text = slots.read(self._copy_text)

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
        return ColumnRows.of_values(self.backend, columns, self.received)


@dataclass(frozen=True)
class Place:
    """Where a text is in `SharedSlots`: its UTF-8 bytes from `offset`."""

    offset: int
    size: int


class SharedSlots:
    """Memory that the worker and the ingesting process both see (an anonymous shared mapping, made before the
    fork), in `count` slots: the worker writes batch i's texts into slot i % count and pickles only their
    `Place`s; the ingesting process reads them out as it takes the batch. That spares both processes pickling
    some 5 MB a batch and pushing it through a pipe 64 KB at a time (a tenth of the ingesting process's time
    that is not the database's).

    A slot is written again only once the batch it held has been read out: when the worker writes batch i, it
    has put batch i − 1, so (the queue holds at most AHEAD) batch i − 1 − AHEAD has been taken, and every batch
    before it read out; the batches that may still be read, i − 1 − AHEAD to i − 1, are in other slots."""

    def __init__(self, count: int = AHEAD + 2, size: int | None = None):
        self.count, self.size = count, size or SLOT_BYTES
        self.memory = mmap.mmap(-1, count * self.size)

    def write(self, slot: int, texts: list[str]) -> list[Place] | None:
        """The texts written into the slot, or None (nothing written) if they do not fit."""
        blobs = [text.encode() for text in texts]
        if sum(map(len, blobs)) > self.size:
            return None
        at, places = slot * self.size, []
        for blob in blobs:
            self.memory[at:at + len(blob)] = blob
            places.append(Place(at, len(blob)))
            at += len(blob)
        return places

    def read(self, place: Place) -> str:
        with memoryview(self.memory) as view:
            return str(view[place.offset:place.offset + place.size], "utf-8")

    def close(self) -> None:
        self.memory.close()


class RunTexts:
    """A batch's rows as they are made, a run at a time: each run's values of a column are joined by newlines
    at once, while they are still in the processor's cache, and freed with their events, where strings kept
    until the batch is taken would be read and freed again from main memory (a fifth of the worker's time).
    A run with a newline in a value keeps that column's values as a list. For PostgreSQL, each run's rows are
    written as `COPY` text at once too."""

    def __init__(self, backend: str, received: str):
        self.backend, self.received = backend, received
        self.parts: list[list[str | list[str]]] = [[] for _ in range(ColumnRows.TEXT_COLUMNS)]
        self.loose = False   # some run of some column kept as a list
        self.copy_parts: list[str] = []
        self.count = 0

    def add(self, columns: Sequence[Sequence[str]]) -> None:
        """A run of rows, given as its columns (`ColumnRows.TEXT_COLUMNS` lists of equal length)."""
        size = len(columns[0])
        if not size:
            return
        clean = True
        for parts, values in zip(self.parts, columns):
            text = "\n".join(values)
            if text.count("\n") == size - 1:
                parts.append(text)
                clean = clean and (self.backend != "postgresql" or not any(c in text for c in "\t\r\\"))
            else:
                parts.append(list(values))
                self.loose, clean = True, False
        if self.backend == "postgresql":
            rows = zip(*columns, repeat("f"), repeat(self.received))
            self.copy_parts.append("\n".join(map("\t".join, rows)) if clean else _escaped_copy_text(rows)[:-1])
        self.count += size

    def rows(self) -> ColumnRows:
        columns: list[str | list[str]] = []
        for parts in self.parts:
            if self.loose and any(isinstance(part, list) for part in parts):
                values: list[str] = []
                for part in parts:
                    values.extend(part.split("\n") if isinstance(part, str) else part)
                columns.append(values)
            else:
                columns.append("\n".join(parts))
        copy_text = None
        if self.backend == "postgresql":
            copy_text = "\n".join(self.copy_parts) + "\n" if self.count else ""
        return ColumnRows(self.backend, columns, self.count, self.received, copy_text)


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


def _escaped_copy_text(rows: Iterable[tuple]) -> str:
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
    """An instant in UTC as PostgreSQL parses it, written as `utc_texts` writes it."""
    return _encode(time.astimezone(UTC))[1:-1].decode()


TIME_TEXT = {"sqlite": sqlite_time, "postgresql": postgresql_time}
_encode = msgspec.json.encode


def utc_texts(backend: str, times: list[dt.datetime]) -> list[str]:
    """The instants as the database takes them, all at once: msgspec writes a list of UTC datetimes as RFC 3339
    text ("2026-05-03T10:15:00Z", or "…:00.250000Z") in one call, a few per cent of what `isoformat` costs, and
    SQLite's form ("2026-05-03 10:15:00.000000", as `sqlite_time`) is a few replacements of that text.

    A time with another offset is moved to UTC first (msgspec would write its offset, or drop one of seconds)."""
    if not times:
        return []
    zones = list(map(_ZONE_OF, times))
    if zones.count(UTC) < len(times):
        times = list(times)
        for position in compress(range(len(times)), map(is_not, zones, repeat(UTC))):
            times[position] = times[position].astimezone(UTC)
    body = _encode(times)[2:-2].decode()   # without '["' and '"]'
    if backend != "sqlite":
        return body.split('","')
    fractions = body.count(".")
    if fractions == len(times):
        return body.replace("Z", "").replace("T", " ").split('","')
    texts = body.replace("Z", ".000000").replace("T", " ").split('","')
    if fractions:   # those with a fraction of a second now have two: the first is theirs
        for position in compress(range(len(texts)), map(gt, map(len, texts), repeat(26))):
            texts[position] = texts[position][:26]
    return texts


_ZONE_OF = attrgetter("tzinfo")


def quantity_text(quantity: Decimal) -> str:
    """A NUMERIC's digits, as storage.types.decimal_text writes them."""
    text = str(quantity)
    return text if "E" not in text and text[0] != "-" else decimal_text(quantity)


def quantity_texts(quantities: list[Decimal]) -> list[str]:
    """`quantity_text` of each, in one pass where none has an exponent or a sign (the common case)."""
    texts = list(map(str, quantities))
    joined = "".join(texts)
    if "E" in joined or "-" in joined:
        return list(map(quantity_text, quantities))
    return texts


def received_text(backend: str, now: dt.datetime) -> str:
    now = now.astimezone(UTC)
    return now.replace(tzinfo=None).isoformat(" ", "microseconds") if backend == "sqlite" else now.isoformat()


class _MinuteDays(dict):
    """"YYYY-MM-DD HH:MM" in UTC → a customer's local day of that minute, as ISO text; made by the customer's
    `LocalDays` when first asked for, so it is the day file mode finds."""

    def __init__(self, days: LocalDays):
        super().__init__()
        self.days = days

    def __missing__(self, minute: str) -> str:
        day = self[minute] = self.days(dt.datetime.fromisoformat(minute.replace(" ", "T") + ":00+00:00")).isoformat()
        return day


_SOURCE, _ID, _TIME, _DATA = (attrgetter(name) for name in ("source", "id", "time", "data"))
_CUSTOMER, _SITE, _CATEGORY, _QUANTITY = (attrgetter(name) for name in ("customer", "site", "category", "quantity"))
_MINUTE = itemgetter(slice(0, 16))   # "YYYY-MM-DD HH:MM" of either backend's UTC text
_day_of = _MinuteDays.__getitem__


class _Batcher:
    """Turns the file's items into `Prepared` batches, column by column.

    `add_events` splits a chunk's events into runs of usual ones, each taken a column at a time by passes
    that loop in C (attribute getters, msgspec writing the times, one dict lookup per event for the local
    day, `operator` maps for the Bloom filter and the sums), and the unusual ones (an identity met before in
    the batch, a customer without a known time zone), which `_add_each` decides one by one into the same
    columns."""

    def __init__(self, backend: str, zones: dict[str, str], clock: Callable[[], dt.datetime]):
        self.backend, self.clock = backend, clock
        self.days = {customer: LocalDays(ZoneInfo(zone)) for customer, zone in zones.items()}
        self.minute_days = {customer: _MinuteDays(days) for customer, days in self.days.items()}
        self.dates: dict[str, dt.date] = {}   # a day's ISO text → the date
        self.earlier = bytearray(EARLIER_BITS // 8)   # a Bloom filter (one hash) of the identities of earlier batches
        self.start()

    def start(self) -> None:
        self.received = received_text(self.backend, self.clock())
        self.batch = Prepared(0, array("l"), self.received)
        self.texts = RunTexts(self.backend, self.received)
        self.quantities: defaultdict[tuple, list[Decimal]] = defaultdict(list)   # sums key → its rows' quantities
        self.seen: set[tuple[str, str]] = set()
        self.pending_seen: set[tuple[str, str]] = set()

    def reject(self, line: int, rejection: Rejection) -> None:
        batch = self.batch
        batch.rejections.append((batch.size, rejection))
        batch.lines.append(line)
        batch.size += 1

    def add_events(self, first: int, events: list[Event]) -> None:
        """The events, in runs of usual ones taken a column at a time, and each unusual one on its own."""
        sources, ids = list(map(_SOURCE, events)), list(map(_ID, events))
        identities = list(zip(sources, ids))
        datas = list(map(_DATA, events))
        customers = list(map(_CUSTOMER, datas))
        start = 0
        for stop in [*self._unusual(identities, customers), len(events)]:
            if start < stop:
                self._add_run(first + start, events[start:stop], sources[start:stop], ids[start:stop],
                              identities[start:stop], datas[start:stop], customers[start:stop])
            if stop < len(events):
                self._add_each(first + stop, events[stop:stop + 1])
            start = stop + 1

    def _unusual(self, identities: list[tuple[str, str]], customers: list[str]) -> list[int]:
        """Positions of the events to decide one by one: an identity met before in the batch (or twice here),
        or a customer without a known time zone."""
        fresh = set(identities)
        odd = fresh & self.seen
        if self.pending_seen:
            odd |= fresh & self.pending_seen
        if len(fresh) < len(identities):   # its first one a row, the others repeats: all decided one by one
            met: set[tuple[str, str]] = set()
            odd |= {identity for identity in identities if identity in met or met.add(identity)}
        unknown = set(customers) - self.days.keys()
        if not odd and not unknown:
            return []
        return [position for position, (identity, customer) in enumerate(zip(identities, customers))
                if identity in odd or customer in unknown]

    def _add_run(self, first: int, events: list[Event], sources: list[str], ids: list[str],
                 identities: list[tuple[str, str]], datas: list, customers: list[str]) -> None:
        """Events that are all rows: of known customers, each identity new to the batch."""
        self.seen.update(identities)
        batch = self.batch
        batch.lines.extend(range(first, first + len(events)))
        batch.size += len(events)
        sites, categories, quantities = list(map(_SITE, datas)), list(map(_CATEGORY, datas)), list(map(_QUANTITY, datas))
        times = utc_texts(self.backend, list(map(_TIME, events)))
        minutes = map(_MINUTE, times)
        if customers.count(customers[0]) == len(customers):   # most runs are one customer's
            days = list(map(self.minute_days[customers[0]].__getitem__, minutes))
        else:
            days = list(map(_day_of, map(self.minute_days.__getitem__, customers), minutes))
        row = self.texts.count
        self.texts.add((sources, ids, customers, sites, categories, times, quantity_texts(quantities), days))
        self._sum(row, zip(customers, sites, categories, days), quantities, map(hash, identities))

    def _sum(self, row: int, keys, quantities: list[Decimal], hashes) -> None:
        """Files each row's quantity under its key, to be summed when the batch is taken, unless a Bloom filter
        of the identities of earlier batches says the row's may be one of them: such a row is a suspect, for
        the database to decide. Every step is a pass in C over the run: the filter's bits are tested as they
        were before the run, then set (a row of this run that a later one of the run matches is no suspect:
        identities are unique within a batch)."""
        bits = list(map(and_, hashes, repeat(EARLIER_MASK)))
        places = list(map(rshift, bits, repeat(3)))
        masks = list(map(lshift, repeat(1), map(and_, bits, repeat(7))))
        earlier = self.earlier
        marked = list(map(and_, map(earlier.__getitem__, places), masks))
        deque(map(earlier.__setitem__, places, map(or_, map(earlier.__getitem__, places), masks)), maxlen=0)
        keys = list(keys)
        if any(marked):   # maybe an earlier batch's identity
            self.batch.suspects.extend(compress(zip(count(row), keys, quantities), marked))
            clear = list(map(not_, marked))
            keys, quantities = compress(keys, clear), compress(quantities, clear)
        deque(map(list.append, map(self.quantities.__getitem__, keys), quantities), maxlen=0)

    def _add_each(self, first: int, events: list[Event]) -> None:
        """The same as `add_events`, an event at a time, deciding for each: a repeat of an identity met in the
        batch, an event of a customer without a known time zone (pending), or a row."""
        batch = self.batch
        position = batch.size
        batch.lines.extend(range(first, first + len(events)))
        batch.size += len(events)
        seen, pending_seen, time_text = self.seen, self.pending_seen, TIME_TEXT[self.backend]
        for event in events:
            data = event.data
            identity = (event.source, event.id)
            if data.customer not in self.days:   # the database decides: unknown customer, or a contract saved meanwhile
                batch.pending.append((position, event))
                pending_seen.add(identity)
            elif identity in seen or identity in pending_seen:
                batch.repeats.append((position, event, identity not in seen))
            else:
                seen.add(identity)
                written = time_text(event.time)
                day = self.minute_days[data.customer][written[:16]]
                row = self.texts.count
                self.texts.add([[value] for value in (event.source, event.id, data.customer, data.site,
                                                      data.category, written, quantity_text(data.quantity), day)])
                self._sum(row, [(data.customer, data.site, data.category, day)], [data.quantity], [hash(identity)])
            position += 1

    def take(self) -> Prepared:
        batch = self.batch
        batch.rows = self.texts.rows()
        batch.sums = {self._dated(key): [reduce(EXACT.add, quantities), len(quantities)]
                      for key, quantities in self.quantities.items()}
        batch.suspects = [(row, self._dated(key), quantity) for row, key, quantity in batch.suspects]
        batch.months = {(customer, day.year, day.month)
                        for customer, _, _, day in [*batch.sums, *(key for _, key, _ in batch.suspects)]}
        batch.customers = {customer for customer, _, _ in batch.months}
        self.start()
        return batch

    def _dated(self, key: tuple[str, str, str, str]) -> tuple[str, str, str, dt.date]:
        """A sums key with its day as a date (rows keep the day's text)."""
        customer, site, category, day = key
        date = self.dates.get(day)
        if date is None:
            date = self.dates[day] = dt.date.fromisoformat(day)
        return customer, site, category, date


def _make_batches(items: Iterator, backend: str, zones: dict[str, str], batch_size: int,
                  clock: Callable[[], dt.datetime]) -> Iterator[Prepared]:
    """The batches of a file's items (`metering.events.read_batches`): the first of FIRST_BATCH_EVENTS, so that the database starts early, each next one
    twice as large, up to `batch_size`."""
    batcher = _Batcher(backend, zones, clock)
    size = min(FIRST_BATCH_EVENTS, batch_size)
    for first, item in items:
        if isinstance(item, Rejection):
            batcher.reject(first, item)
        else:
            while item:
                room = size - batcher.batch.size
                if room < len(item):
                    batcher.add_events(first, item[:room])
                    first, item = first + room, item[room:]
                else:
                    batcher.add_events(first, item)
                    item = []
                if batcher.batch.size >= size:
                    yield batcher.take()
                    size = min(2 * size, batch_size)
        if batcher.batch.size >= size:
            yield batcher.take()
            size = min(2 * size, batch_size)
    if batcher.batch.size:
        yield batcher.take()


def _exit_with(parent: int) -> None:
    """Ends the worker when the process it works for is gone (killed: nothing would ever take its batches)."""
    while os.getppid() == parent:
        time.sleep(WATCH_SECONDS)
    os._exit(0)


def _work(path: str, batch_size: int, clock, settings, ready, slots: SharedSlots, parent: int) -> None:
    """The worker: reads and decodes ahead until `settings` brings the backend and the time zones, then makes
    every batch, then None; or puts the exception that stopped it. Ctrl-C is the parent's to handle.

    Nothing it makes refers back to itself, so the cyclic garbage collector, which would otherwise walk the
    batch's tuples again and again, is turned off (some 15% of its time)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    gc.disable()
    threading.Thread(target=_exit_with, args=(parent,), name="ingest-reader-watch", daemon=True).start()
    try:
        items, ahead, events = read_batches(path), [], 0
        while events < batch_size and not settings.poll():
            item = next(items, None)
            if item is None:
                break
            ahead.append(item)
            events += 1 if isinstance(item[1], Rejection) else len(item[1])
        backend, zones = settings.recv()
        for index, batch in enumerate(_make_batches(chain(ahead, items), backend, zones, batch_size, clock)):
            batch.rows.place(slots, index % slots.count)
            ready.put(batch)
        ready.put(None)
    except BaseException as exc:  # handed to the parent, which raises it where the batch would have come
        ready.put(exc)


class FileReader:
    """A file read into `Prepared` batches by a worker process, started before the database is open:

        reader = FileReader("may.jsonl", 50_000)     # the worker reads and decodes ahead
        ...                                          # meanwhile: import the database layer, connect
        with reader.batches("sqlite", zones) as batches:
            for batch in batches:
                ...

    `billing ingest` starts one first thing, so that reading the file overlaps opening the database. Until
    `batches` tells it the backend and the contracts' time zones, the worker decodes up to a batch of events.
    Where fork is not available, the batches are made in this process. `close` stops a worker not used.
    """

    def __init__(self, path: str | os.PathLike, batch_size: int = BATCH_EVENTS,
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(UTC)):
        self.path, self.batch_size, self.clock = str(path), batch_size, clock
        self.worker = None
        if "fork" not in multiprocessing.get_all_start_methods():
            return
        context = multiprocessing.get_context("fork")
        self.ready = context.Queue(maxsize=AHEAD)
        self.slots = SharedSlots()
        receive, self.settings = context.Pipe(duplex=False)
        self.worker = context.Process(
            target=_work, args=(self.path, batch_size, clock, receive, self.ready, self.slots, os.getpid()),
            name="ingest-reader", daemon=True)
        self.worker.start()
        receive.close()

    @contextmanager
    def batches(self, backend: str, zones: dict[str, str]) -> Iterator[Iterator[Prepared]]:
        """The file's batches. Raises OSError (the file cannot be read) where the first batch would have come.

        A worker started after the database was opened inherits its open files: the caller closes its
        database connections first (a PostgreSQL session stays open while any process holds its socket)."""
        if self.worker is None:
            yield _make_batches(read_batches(self.path), backend, zones, self.batch_size, self.clock)
            return
        try:
            self.settings.send((backend, zones))
            yield self._taken()
        finally:
            self.close()

    def _taken(self) -> Iterator[Prepared]:
        while True:
            try:
                batch = self.ready.get(timeout=POLL_SECONDS)
            except queue.Empty:
                if not self.worker.is_alive():
                    raise RuntimeError(f"the process reading {self.path} stopped (exit status "
                                       f"{self.worker.exitcode})") from None
                continue
            if batch is None:
                return
            if isinstance(batch, BaseException):
                raise batch
            batch.rows.fetch(self.slots)
            yield batch

    def close(self) -> None:
        if self.worker is None:
            return
        if self.worker.is_alive():
            self.worker.terminate()
        self.worker.join()
        self.ready.close()
        self.settings.close()
        self.slots.close()
        self.worker = None


@contextmanager
def prepared_batches(path: str, backend: str, zones: dict[str, str], batch_size: int,
                     clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(UTC)) -> Iterator[Iterator[Prepared]]:
    """A `FileReader`'s batches, the worker started now."""
    reader = FileReader(path, batch_size, clock)
    try:
        with reader.batches(backend, zones) as batches:
            yield batches
    finally:
        reader.close()
