"""Events made ready for the database a batch at a time: the one batcher of the event API and of files.

    batcher = Batcher("postgresql", {"acme-health": "Europe/London"}, clock)
    batcher.add_events(0, events)      # positions 0, 1, …: runs of events, taken a column at a time
    batcher.reject(7, rejection)
    batch = batcher.take()             # Prepared: rows in the driver's values, their sums, what is left to decide

`ingest.pipeline` stores every batch the same way, whether its items came in a
request of the event API (made here, in the request's thread) or from a file
(made by `ingest.file_batches.FileReader` in a worker process, which adds a
Bloom filter of the file's earlier batches). For each batch the batcher makes:

- `rows`: the first event of each identity (source, id) in the batch, of a
  customer whose time zone it was given, as the events table takes it
  (`ingest.pipeline.EVENT_COLUMNS`) in the driver's values
  (storage/encoding.py: SQLite's text; PostgreSQL's `COPY` text), `late`
  false; a `metering.bulk.Rows`, kept by column;
- `sums`: their quantities per (customer, site, category, local day), exact, with counts, but for
- `suspects`: rows whose identity an earlier batch may have had (only a file
  reader's batches have earlier ones): the database looks these few up, and
  only those not stored are added to the sums;
- `months`: the (customer, year, month) of the rows, to check against issued invoices;
- what only the database can decide: `rejections` (bad items), `pending`
  (events of a customer it knew no time zone of: unknown, or saved after the
  batcher was made) and `repeats` (an identity met before in the batch), each
  with its position in the batch.

Whatever the database then finds (an event stored before, late usage, a
contract saved meanwhile) is corrected by `ingest.pipeline`; the batcher only
saves work in the common case.
"""

from __future__ import annotations

import datetime as dt
from array import array
from collections import defaultdict, deque
from dataclasses import dataclass, field
from decimal import Decimal
from functools import reduce
from itertools import compress, count, repeat
from operator import attrgetter, itemgetter, not_
from typing import Callable, Iterator, Sequence

from engine.money import EXACT
from metering.bulk import Rows, Same
from metering.days import local_days
from metering.events import Event, Rejection
from storage.encoding import (COPY_SPECIAL, FLAG, TIME_TEXT, copy_text, instant_text, quantity_text,
                              quantity_texts, utc_texts)

TEXT_COLUMNS = 8   # source, event_id, customer, site, category, time, quantity, day; then late, received_at


class RunTexts:
    """A batch's rows as they are made, a run at a time: each run's values of a column are joined by newlines
    at once, while they are still in the processor's cache, and freed with their events, where strings kept
    until the batch is taken would be read and freed again from main memory (a fifth of the worker's time).
    A run with a newline in a value keeps that column's values as a list. For PostgreSQL, each run's rows are
    written as `COPY` text at once too. `late` is false and `received_at` the same for all rows."""

    def __init__(self, backend: str, received: str):
        self.backend, self.received = backend, received
        self.parts: list[list[str | list[str]]] = [[] for _ in range(TEXT_COLUMNS)]
        self.loose = False   # some run of some column kept as a list
        self.copy_parts: list[str] = []
        self.count = 0

    def add(self, columns: Sequence[Sequence[str]]) -> None:
        """A run of rows, given as its first `TEXT_COLUMNS` columns (lists of equal length)."""
        size = len(columns[0])
        if not size:
            return
        clean = True
        for parts, values in zip(self.parts, columns):
            text = "\n".join(values)
            if text.count("\n") == size - 1:
                parts.append(text)
                clean = clean and (self.backend != "postgresql" or not any(c in text for c in COPY_SPECIAL))
            else:
                parts.append(list(values))
                self.loose, clean = True, False
        if self.backend == "postgresql":
            if clean:
                rows = zip(*columns, repeat(FLAG["postgresql"][False]), repeat(self.received))
                self.copy_parts.append("\n".join(map("\t".join, rows)))
            else:
                self.copy_parts.append(copy_text([*columns, [FLAG["postgresql"][False]] * size,
                                                  [self.received] * size])[:-1])
        self.count += size

    def rows(self) -> Rows:
        columns: list[str | list[str]] = []
        for parts in self.parts:
            if self.loose and any(isinstance(part, list) for part in parts):
                values: list[str] = []
                for part in parts:
                    values.extend(part.split("\n") if isinstance(part, str) else part)
                columns.append(values)
            else:
                columns.append("\n".join(parts))
        copy = None
        if self.backend == "postgresql":
            copy = "\n".join(self.copy_parts) + "\n" if self.count else ""
        return Rows(self.backend, [*columns, Same(FLAG[self.backend][False]), Same(self.received)], self.count, copy)


@dataclass
class Prepared:
    size: int                                     # items in the batch (events and rejections)
    lines: array                                  # each item's line number (its index in a request)
    received: str                                 # the rows' received_at
    rows: Rows | None = None
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


_SOURCE, _ID, _TIME, _DATA = (attrgetter(name) for name in ("source", "id", "time", "data"))
_CUSTOMER, _SITE, _CATEGORY, _QUANTITY = (attrgetter(name) for name in ("customer", "site", "category", "quantity"))
_DAY = itemgetter(3)
_MINUTE = itemgetter(slice(0, 16))   # "YYYY-MM-DD HH:MM" of either backend's UTC text
_day_of = dict.__getitem__   # a zone's `by_utc_minute` fills what it misses


class Batcher:
    """Turns events and rejections into `Prepared` batches, column by column.

    `add_events` splits a chunk's events into runs of usual ones, each taken a column at a time by passes
    that loop in C (attribute getters, msgspec writing the times, one dict lookup per event for the local
    day, `operator` maps for the Bloom filter and the sums), and the unusual ones (an identity met before in
    the batch, a customer without a known time zone), which `_add_each` decides one by one into the same
    columns.

    `earlier`: what a file reader knows of the identities of the file's earlier batches (a Bloom filter,
    ingest/file_batches.py); a row it may have met is a suspect, left out of the sums for the database to
    decide. Without it (the event API: a request is one batch), no row is."""

    def __init__(self, backend: str, zones: dict[str, str], clock: Callable[[], dt.datetime], earlier=None):
        self.backend, self.clock, self.earlier = backend, clock, earlier
        self.minute_days = {customer: local_days(zone).by_utc_minute for customer, zone in zones.items()}
        self.dates = _Dates()
        self.start()

    def start(self) -> None:
        self.received = instant_text(self.backend, self.clock())
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
        unknown = set(customers) - self.minute_days.keys()
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
        sites, categories = list(map(_SITE, datas)), list(map(_CATEGORY, datas))
        quantities = list(map(_QUANTITY, datas))
        times = utc_texts(self.backend, list(map(_TIME, events)))
        minutes = map(_MINUTE, times)
        if customers.count(customers[0]) == len(customers):   # most runs are one customer's
            days = list(map(self.minute_days[customers[0]].__getitem__, minutes))
        else:
            days = list(map(_day_of, map(self.minute_days.__getitem__, customers), minutes))
        row = self.texts.count
        self.texts.add((sources, ids, customers, sites, categories, times, quantity_texts(quantities), days))
        self._sum(row, zip(customers, sites, categories, days), quantities, identities)

    def _sum(self, row: int, keys, quantities: list[Decimal], identities) -> None:
        """Files each row's quantity under its key, to be summed when the batch is taken, unless `earlier` says
        the row's identity may be one of an earlier batch: such a row is a suspect, for the database to decide."""
        keys = list(keys)
        marked = self.earlier.met(identities) if self.earlier is not None else None
        if marked is not None and any(marked):   # maybe an earlier batch's identity
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
            if data.customer not in self.minute_days:   # the database decides: unknown, or a contract saved meanwhile
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
                self._sum(row, [(data.customer, data.site, data.category, day)], [data.quantity], [identity])
            position += 1

    def take(self) -> Prepared:
        """The batch made so far; the next one starts. Each step over the sums is a pass in C."""
        batch = self.batch
        batch.rows = self.texts.rows()
        keys, cells = list(self.quantities), list(self.quantities.values())
        batch.sums = dict(zip(self._dated(keys), map(list, zip(map(reduce, repeat(EXACT.add), cells),
                                                               map(len, cells)))))
        if batch.suspects:
            rows, suspect_keys, quantities = zip(*batch.suspects)
            batch.suspects = list(zip(rows, self._dated(suspect_keys), quantities))
        days = {(key[0], key[3]) for key in [*batch.sums, *(suspect[1] for suspect in batch.suspects)]}
        batch.months = {(customer, day.year, day.month) for customer, day in days}
        batch.customers = {customer for customer, _, _ in batch.months}
        self.start()
        return batch

    def _dated(self, keys: Sequence[tuple[str, str, str, str]]) -> Iterator[tuple[str, str, str, dt.date]]:
        """Sums keys with their days as dates (rows keep the day's text)."""
        return zip(*(map(itemgetter(i), keys) for i in range(3)), map(self.dates.__getitem__, map(_DAY, keys)))


class _Dates(dict):
    """A day's ISO text → the date."""

    def __missing__(self, day: str) -> dt.date:
        date = self[day] = dt.date.fromisoformat(day)
        return date
