"""The batcher's batches (ingest/batches.py, as a file's worker makes them) against a model written event by event.

`billing ingest` and the event API turn events into rows, sums and what is left
to the database with one batcher that takes runs of events a column at a time
(a file's worker adds a Bloom filter of its earlier batches). Here
random events (repeated identities, unknown customers, offsets, fractions of a
second, instants before 1970, quantities with exponents) go through it in random
runs and batches, and every part of every batch is compared with what a plain
loop over the events, written from the rules in the module's docstring, makes.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter, defaultdict
from decimal import Decimal
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.money import EXACT
from ingest.batches import Batcher
from ingest.file_batches import EarlierIdentities
from ingest.pipeline import _ACCEPTED, _ACCEPTED_LATE, Outcome, count_outcomes
from metering.days import LocalDays
from metering.events import Event, EventData
from storage.encoding import utc_texts
from storage.types import decimal_text

UTC = dt.timezone.utc
ZONES = {"a": "Europe/London", "b": "Asia/Kathmandu", "c": "America/St_Johns"}   # +0/+1, +5:45, -3:30/-2:30
NOW = dt.datetime(2026, 12, 5, 8, 30, 15, 123456, tzinfo=UTC)

offsets = st.sampled_from([UTC, dt.timezone(dt.timedelta(hours=2)), dt.timezone(dt.timedelta(hours=-9, minutes=-30)),
                           dt.timezone(dt.timedelta(hours=5, minutes=45))])
instants = st.one_of(
    st.datetimes(dt.datetime(2025, 12, 30), dt.datetime(2026, 3, 2)),   # many on few minutes and days
    st.datetimes(dt.datetime(1960, 1, 1), dt.datetime(2100, 1, 1)),
    st.sampled_from([dt.datetime(1969, 12, 31, 23, 59, 59, 500000), dt.datetime(1970, 1, 1),
                     dt.datetime(2026, 3, 29, 0, 59, 59, 999999), dt.datetime(2026, 10, 25, 1, 0)]),
)
times = st.builds(lambda instant, fraction, zone: instant.replace(microsecond=instant.microsecond * fraction,
                                                                    tzinfo=UTC).astimezone(zone),
                  instants, st.sampled_from([0, 1, 1]), offsets)
quantities = st.one_of(st.sampled_from(["1", "1.50", "0.1", "1E+1", "2.5E-3", "-0", "0", "1000000"]).map(Decimal),
                       st.decimals(0, 10**6, places=3))
events = st.builds(
    lambda source, number, customer, site, category, time, quantity: Event(
        "1.0", f"e{number}", source, "t", time, EventData(customer, site, category, quantity)),
    st.sampled_from(["s1", "s2"]), st.integers(0, 30), st.sampled_from(["a", "a", "b", "c", "nobody"]),
    st.sampled_from(["x", "y", "x\ny", "x\ty", "x\\y\r"]), st.sampled_from(["p", "q"]), times, quantities,
)


def batches_of(backend: str, items: list[Event], runs: list[int], batch_size: int) -> list:
    """The events through the batcher in runs of the given lengths, as ingest.file_batches._make_batches does."""
    batcher = Batcher(backend, ZONES, lambda: NOW, EarlierIdentities())
    made, first, sizes = [], 1, iter(runs)
    while first <= len(items):
        run = items[first - 1:first - 1 + min(next(sizes, 7), batch_size - batcher.batch.size)]
        batcher.add_events(first, run)
        first += len(run)
        if batcher.batch.size >= batch_size:
            made.append(batcher.take())
    if batcher.batch.size:
        made.append(batcher.take())
    return made


def model(items: list[Event], batch_size: int) -> list[dict]:
    """Per batch: rows (SQLite text), pending and repeat positions, and every row's quantity summed per key."""
    days = {customer: LocalDays(ZoneInfo(zone)) for customer, zone in ZONES.items()}
    made = []
    for start in range(0, len(items), batch_size):
        rows, pending, repeats, sums = [], [], [], defaultdict(lambda: [None, 0])
        seen, pending_seen = set(), set()
        for position, event in enumerate(items[start:start + batch_size]):
            data, identity = event.data, (event.source, event.id)
            if data.customer not in ZONES:
                pending.append(position)
                pending_seen.add(identity)
            elif identity in seen or identity in pending_seen:
                repeats.append((position, identity not in seen))
            else:
                seen.add(identity)
                day = days[data.customer](event.time)
                utc = event.time.astimezone(UTC).replace(tzinfo=None)
                rows.append((event.source, event.id, data.customer, data.site, data.category,
                             utc.isoformat(" ", "microseconds"), decimal_text(data.quantity), day.isoformat()))
                cell = sums[data.customer, data.site, data.category, day]
                cell[0] = data.quantity if cell[0] is None else EXACT.add(cell[0], data.quantity)
                cell[1] += 1
        made.append({"rows": rows, "pending": pending, "repeats": repeats, "sums": dict(sums)})
    return made


def all_sums(batch) -> dict:
    """The worker's sums with its suspects' quantities added back: every row's quantity, per key."""
    sums = {key: list(cell) for key, cell in batch.sums.items()}
    for _, key, quantity in batch.suspects:
        cell = sums.setdefault(key, [None, 0])
        cell[0] = quantity if cell[0] is None else EXACT.add(cell[0], quantity)
        cell[1] += 1
    return sums


def exactly(sums: dict) -> dict:
    """Sums compared with their exponents: 1.50 is not 1.5 here (a rollup keeps the places it adds up)."""
    return {key: (str(quantity), events) for key, (quantity, events) in sums.items()}


@settings(max_examples=300, deadline=None)
@given(st.lists(events, max_size=60), st.lists(st.integers(1, 9), max_size=30), st.integers(1, 25))
def test_the_batches_are_what_an_event_by_event_loop_makes(items, runs, batch_size):
    made = batches_of("sqlite", items, runs, batch_size)
    expected = model(items, batch_size)
    assert len(made) == len(expected)
    earlier: set[tuple[str, str]] = set()
    for batch, wanted, start in zip(made, expected, range(0, len(items), batch_size)):
        assert list(batch.lines) == list(range(start + 1, start + 1 + batch.size))
        assert list(batch.rows) == [(*row, 0, NOW.replace(tzinfo=None).isoformat(" ", "microseconds"))
                                    for row in wanted["rows"]]
        assert [position for position, _ in batch.pending] == wanted["pending"]
        assert [(position, pending_only) for position, _, pending_only in batch.repeats] == wanted["repeats"]
        assert exactly(all_sums(batch)) == exactly(wanted["sums"])
        # A suspect is only kept out of the sums; every row of an identity an earlier batch had is one.
        suspects = {row for row, _, _ in batch.suspects}
        identities = list(zip(batch.rows.column(0), batch.rows.column(1)))
        assert {row for row, identity in enumerate(identities) if identity in earlier} <= suspects
        assert batch.months == {(customer, day.year, day.month) for customer, _, _, day in wanted["sums"]}
        earlier |= set(identities)


@settings(max_examples=100, deadline=None)
@given(st.lists(events, max_size=40), st.lists(st.integers(1, 9), max_size=30), st.integers(1, 25))
def test_postgresql_rows_hold_the_same_instants(items, runs, batch_size):
    for mine, theirs in zip(batches_of("postgresql", items, runs, batch_size), batches_of("sqlite", items, runs,
                                                                                           batch_size)):
        assert [dt.datetime.fromisoformat(text) for text in mine.rows.column(5)] == \
               [dt.datetime.fromisoformat(text).replace(tzinfo=UTC) for text in theirs.rows.column(5)]
        copied = [[copy_value(field) for field in line.split("\t")] for line in mine.rows.copy_text().split("\n")[:-1]]
        assert [fields[:5] + fields[6:8] for fields in copied] == [list(row[:5] + row[6:8]) for row in theirs.rows]
        assert [fields[8:] for fields in copied] == [["f", mine.received]] * len(copied)


def copy_value(field: str) -> str:
    """A field of PostgreSQL's COPY text format, unescaped."""
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "r": "\r", "t": "\t"}.get(m[1], m[1]), field)


@given(st.lists(times, max_size=20))
def test_utc_texts_are_the_text_sqlite_stores(values):
    assert utc_texts("sqlite", values) == [time.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
                                           for time in values]


def test_a_day_before_1970_is_the_day_of_its_instant():
    """Instants before 1970 count back from the epoch: half a second before it is still December 31st."""
    days = LocalDays(ZoneInfo("UTC"))
    assert days(dt.datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC)) == dt.date(1969, 12, 31)
    assert days(dt.datetime(1970, 1, 1, tzinfo=UTC)) == dt.date(1970, 1, 1)


@given(st.lists(st.sampled_from([("accepted", False), ("accepted", True), ("duplicate", False), ("conflict", True),
                                 ("rejected", False)]), max_size=40), st.booleans())
def test_outcomes_are_counted_as_one_by_one(drawn, shared):
    """`billing ingest` counts a batch's outcomes at once; the same counts as a loop over them."""
    outcomes = [(_ACCEPTED_LATE if late else _ACCEPTED) if shared and status == "accepted"
                else Outcome(status, late=late) for status, late in drawn]
    assert count_outcomes(outcomes) == Counter(drawn)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.sampled_from(["s1", "s2"]), st.sampled_from(["a", "b"]),
                          st.decimals(min_value=0, max_value=1000, places=3, allow_nan=False),
                          st.integers(0, 86_400 * 60 - 1), st.integers(0, 999_999)), min_size=1, max_size=40))
def test_the_file_modes_written_out_content_hash_is_content_hash(rows):
    """metering/aggregate.py writes metering.dedup.content_hash out in its loop: what it keeps for each identity is
    content_hash of the first event read, and a repeat is a duplicate exactly when content_hash says so."""
    from metering.aggregate import _Meter
    from metering.dedup import content_hash
    from metering.events import EPOCH

    start = dt.datetime(2026, 5, 1, tzinfo=dt.timezone.utc)
    events = [Event(specversion="1.0", id=f"e{n}", source="src", type="usage",
                    time=start + dt.timedelta(seconds=seconds, microseconds=micro),
                    data=EventData(customer="c", site=site, category=category, quantity=quantity))
              for n, site, category, quantity, seconds, micro in rows]
    meter = _Meter("c", ZoneInfo("Europe/London"), None)
    meter.add(events)
    first: dict[str, Event] = {}
    for event in events:
        first.setdefault(event.id, event)
    assert meter.first_seen["src"] == {id: content_hash(e.time - EPOCH, e.data) for id, e in first.items()}
    duplicates = sum(1 for n, e in enumerate(events) if events.index(first[e.id]) != n
                     and content_hash(e.time - EPOCH, e.data) == content_hash(first[e.id].time - EPOCH,
                                                                              first[e.id].data))
    repeats = sum(r.events for (_, reason, _, _), r in meter.repeats.items() if reason == "duplicate")
    assert repeats == duplicates
