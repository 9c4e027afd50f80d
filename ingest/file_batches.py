"""A file's events as batches ready for the database, made in a worker process while the database works.

    reader = FileReader("may.jsonl")             # forks the worker, which starts reading
    with reader.batches("sqlite", zones) as batches:
        for batch in batches:      # Prepared (ingest/batches.py), as the event API's requests are made
            ...

`billing ingest` spends as much time reading, checking and converting events as
the database spends storing them; on a machine with two cores the two halves
run side by side. The worker (a forked process) reads the file with
`metering.events.read_batches` and hands its events to the batcher every
ingest uses (`ingest.batches.Batcher`), with what only a file needs:

- a Bloom filter of the identities of the file's earlier batches
  (`EarlierIdentities`, of fixed size: it says "maybe", never "no" for one it
  met), so that a row the database may hold from an earlier batch is a suspect;
- batches that grow: the first of FIRST_BATCH_EVENTS, so that the database
  starts early, each next one twice as large up to the batch size;
- the rows' texts handed over through memory both processes see
  (`SharedSlots`); only where they are goes through the pipe. At most `AHEAD`
  batches wait.
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
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain, repeat
from operator import and_, lshift, or_, rshift
from typing import Callable, Iterator

from ingest.batches import Batcher, Prepared
from metering.bulk import Rows
from metering.events import Rejection, read_batches

BATCH_EVENTS = 50_000   # a file's batch (a transaction): kept by column, few commits and rollup writes
AHEAD = 2           # batches made and not yet taken
SLOT_BYTES = 16 << 20   # room for a batch's texts in SharedSlots (50,000 events: some 5 MB, 11 MB for PostgreSQL)
FIRST_BATCH_EVENTS = 5_000   # the first batch's size: the database waits for no more than this
EARLIER_BITS = 1 << 26   # 8 MB: under 2% false suspects up to a million identities, and never a missed one
EARLIER_MASK = EARLIER_BITS - 1
POLL_SECONDS = 1.0  # how often a wait for the worker checks that it is still alive
WATCH_SECONDS = 0.2  # how often the worker checks that the process it works for is still there
UTC = dt.timezone.utc

class EarlierIdentities:
    """A Bloom filter (one hash, EARLIER_BITS bits) of the identities of a file's earlier batches. `met` tests a
    run's identities against the bits as they were before the run, then sets theirs (a row of this run that a
    later one of the run matches is no suspect: identities are unique within a batch); every step a pass in C."""

    def __init__(self):
        self.bits = bytearray(EARLIER_BITS // 8)

    def met(self, identities) -> list[int]:
        """Per identity, nonzero if an earlier one may have been the same."""
        bits = list(map(and_, map(hash, identities), repeat(EARLIER_MASK)))
        places = list(map(rshift, bits, repeat(3)))
        masks = list(map(lshift, repeat(1), map(and_, bits, repeat(7))))
        earlier = self.bits
        marked = list(map(and_, map(earlier.__getitem__, places), masks))
        deque(map(earlier.__setitem__, places, map(or_, map(earlier.__getitem__, places), masks)), maxlen=0)
        return marked


def place(rows: Rows, slots: "SharedSlots", slot: int) -> None:
    """Moves the rows' texts (the joined columns, the `COPY` text) into a slot of memory the other process sees,
    when they fit: then only where they are is pickled."""
    texts = [i for i, column in enumerate(rows.columns) if isinstance(column, str)]
    places = slots.write(slot, [rows.columns[i] for i in texts] + [rows.copy or ""])
    if places is not None:
        for i, where in zip(texts, places):
            rows.columns[i] = where
        rows.copy = places[-1] if rows.copy is not None else None


def fetch(rows: Rows, slots: "SharedSlots") -> None:
    """Reads back the texts `place` moved out (before the slot is written again)."""
    rows.columns = [slots.read(column) if isinstance(column, Place) else column for column in rows.columns]
    if isinstance(rows.copy, Place):
        rows.copy = slots.read(rows.copy)


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


def _make_batches(items: Iterator, backend: str, zones: dict[str, str], batch_size: int,
                  clock: Callable[[], dt.datetime]) -> Iterator[Prepared]:
    """The batches of a file's items (`metering.events.read_batches`): the first of FIRST_BATCH_EVENTS, so that
    the database starts early, each next one twice as large, up to `batch_size`."""
    batcher = Batcher(backend, zones, clock, EarlierIdentities())
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
            place(batch.rows, slots, index % slots.count)
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
            try:
                self.settings.send((backend, zones))
            except BrokenPipeError:   # the worker has stopped already: taking its batches says how
                pass
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
            fetch(batch.rows, self.slots)
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
