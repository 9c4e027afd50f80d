"""storage/encoding.py against the column types of storage/types.py: what the bulk writer writes reads back
through the ORM as the same exact value, on SQLite and PostgreSQL, and on SQLite is the very text the column
types write themselves."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.dialects import sqlite

from ingest.pipeline import EVENT_COLUMNS
from metering.bulk import Rows, insert_new
from metering.models import Rollup, UsageEvent
from metering.rollups import add_to_rollups
from storage.encoding import FLAG, array_text, copy_text, instant_text, quantity_text, utc_texts
from storage.types import ExactDecimal, UTCDateTime

UTC = dt.timezone.utc
QUANTITIES = ["1", "1.50", "0.10", "1E+1", "2.5E-3", "-0", "0", "0E-7", "123456789012345678901234.5",
              "0.000000000000000000000000000001"]
TIMES = [dt.datetime(2026, 5, 3, 10, 15, tzinfo=UTC),
         dt.datetime(2026, 5, 3, 11, 15, 0, 250000, tzinfo=dt.timezone(dt.timedelta(hours=1))),
         dt.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
         dt.datetime(1900, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=-9, minutes=-30))),
         dt.datetime(9998, 12, 31, 23, 59, 59, 1, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=45)))]
TEXTS = ["plain", "tab\there", "new\nline", "cr\rhere", "back\\slash", 'quote"d', "{braces},", "ünïcødé", "NULL",
         "\\N"]

instants = st.datetimes(dt.datetime(1900, 1, 1), dt.datetime(9998, 12, 31)).map(lambda t: t.replace(tzinfo=UTC))
offsets = st.sampled_from([UTC, dt.timezone(dt.timedelta(hours=2)), dt.timezone(dt.timedelta(hours=-3, minutes=-30))])
decimals = st.decimals(allow_nan=False, allow_infinity=False, min_value=0, max_value=10**23, places=None)


@given(st.lists(st.builds(lambda t, zone: t.astimezone(zone), instants, offsets), max_size=20))
def test_sqlite_instants_are_the_text_utcdatetime_writes(times):
    written = [UTCDateTime().process_bind_param(time, sqlite.dialect()) for time in times]
    assert utc_texts("sqlite", times) == written
    assert [instant_text("sqlite", time) for time in times] == written


@given(st.lists(decimals, max_size=20))
def test_sqlite_quantities_are_the_text_exactdecimal_writes(quantities):
    assert [quantity_text(q) for q in quantities] == [ExactDecimal().process_bind_param(q, sqlite.dialect())
                                                      for q in quantities]


@given(st.lists(st.builds(lambda t, zone: t.astimezone(zone), instants, offsets), min_size=1, max_size=20))
def test_postgresql_instant_texts_are_the_same_instants(times):
    assert [dt.datetime.fromisoformat(text) for text in utc_texts("postgresql", times)] == times


def test_copy_and_array_texts_escape_only_where_needed():
    assert copy_text([["a", "b"], [1, 2]]) == "a\t1\nb\t2\n"
    assert copy_text([["x\ty", "a\\b"], ["n\nl", "c\rr"]]) == "x\\ty\tn\\nl\na\\\\b\tc\\rr\n"
    assert copy_text([[], []]) == ""
    assert array_text(["a", 'b"c', "d\\e"]) == '{"a","b\\"c","d\\\\e"}'
    assert array_text([1, 2]) == "{1,2}" and array_text([]) == "{}"


def _rows(backend: str, received: dt.datetime) -> tuple[list[tuple], Rows]:
    """Events with every awkward value, as Python values and as the bulk writer's rows."""
    values = []
    for n, (quantity, time, text) in enumerate(zip(QUANTITIES, TIMES * 2, TEXTS)):
        values.append((f"src{text}", f"id-{n}", "tiny", text, text[::-1], time, Decimal(quantity),
                       dt.date(1969 + n * 100 % 8000, 12, 31), n % 2 == 1, received))
    columns = [list(column) for column in zip(*values)]
    encoded = [*columns[:5], utc_texts(backend, columns[5]), [quantity_text(q) for q in columns[6]],
               [day.isoformat() for day in columns[7]], [FLAG[backend][late] for late in columns[8]],
               [instant_text(backend, received)] * len(values)]
    return values, Rows.of_columns(backend, encoded)


def test_the_bulk_writer_writes_what_the_orm_reads_back(engine, sessions):
    backend = engine.dialect.name
    received = dt.datetime(2026, 12, 5, 8, 30, 15, 123456, tzinfo=UTC)
    values, rows = _rows(backend, received)
    with engine.begin() as connection:
        assert insert_new(connection, UsageEvent.__table__, EVENT_COLUMNS, rows, ("source", "event_id")) == set()
        add_to_rollups(connection, {("tiny", text, "cat", dt.date(2026, 5, 3)): [Decimal(q), 1]
                                    for q, text in zip(QUANTITIES, TEXTS)})
    with sessions() as session:
        stored = session.scalars(select(UsageEvent).order_by(UsageEvent.id)).all()
        rollups = {rollup.site: rollup.quantity for rollup in session.scalars(select(Rollup))}
    assert [(e.source, e.event_id, e.customer, e.site, e.category, e.time, e.quantity, e.day, e.late, e.received_at)
            for e in stored] == values
    assert [quantity_text(e.quantity) for e in stored] == [quantity_text(Decimal(q)) for q in QUANTITIES]   # scale
    assert {site: quantity_text(quantity) for site, quantity in rollups.items()} == \
        {text: quantity_text(Decimal(q)) for q, text in zip(QUANTITIES, TEXTS)}


def test_repeats_left_out_by_the_careful_path_are_reported(engine):
    """Rows of which some are stored: the direct COPY fails (PostgreSQL) or the insert skips them (SQLite);
    either way exactly the stored keys come back, and the others are stored."""
    backend = engine.dialect.name
    received = dt.datetime(2026, 12, 5, tzinfo=UTC)
    _, rows = _rows(backend, received)
    half = rows.without(set(range(0, len(rows), 2)))
    with engine.begin() as connection:
        insert_new(connection, UsageEvent.__table__, EVENT_COLUMNS, half, ("source", "event_id"))
    with engine.begin() as connection:
        left_out = insert_new(connection, UsageEvent.__table__, EVENT_COLUMNS, rows, ("source", "event_id"))
    assert left_out == set(zip(half.column(0), half.column(1)))
    with engine.connect() as connection:
        assert len(connection.execute(select(UsageEvent.__table__.c.id)).all()) == len(rows)
