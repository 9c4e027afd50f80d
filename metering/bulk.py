"""Writing a batch at the speed of the driver's bulk path: new events, and sums added to stored sums.

    left_out = insert_new(connection, EVENTS, columns, rows, ("source", "event_id"))
    # the identities that were stored already (their rows were not inserted); empty when all were new
    add_sums(connection, ROLLUPS, key, rows)      # rows: (*key, quantity, events), added exactly

PostgreSQL: the new rows are `COPY`ed straight into the table, under a
savepoint. When repeats are expected (the previous batch had some), the keys
already stored are looked up first (one index lookup each) and left out of the
`COPY`. Should the `COPY` still meet a stored key (another writer stored it
meanwhile), it is rolled back to the savepoint and the rows go the careful way:
one `INSERT … SELECT … ON CONFLICT DO NOTHING RETURNING` the keys it stored, in
key order, so that concurrent writers lock rows in the same order. Sums go in
one `INSERT … ON CONFLICT DO UPDATE`. Both take the rows as one array parameter
a column (`storage.encoding.array_text`), zipped by `unnest`.

SQLite: one `executemany` of `INSERT … ON CONFLICT`. The writer holds SQLite's
write lock (store/db.py begins with BEGIN IMMEDIATE), so the rows it stored are
exactly those with a rowid above the largest one before it. Sums are added by
`decimal_add`, an SQL function store/db.py gives each SQLite connection, exact
like PostgreSQL's NUMERIC.

Rows are a `Rows`: the values of the table's columns, in the table's order, as
the driver takes them (storage/encoding.py: SQLite's text, PostgreSQL's `COPY`
text), kept by column. The ingest batcher makes them a run at a time
(ingest/batches.py); `Rows.of_columns` makes them of lists of encoded values.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from itertools import repeat
from typing import Iterator

import msgspec
from sqlalchemy import Table, func, literal_column, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError

from storage.encoding import array_text, copy_text
from storage.types import ExactDecimal, UTCDateTime


@dataclass(frozen=True)
class Same:
    """A column with one value for every row (`late` and `received_at` of a batch of new events)."""

    value: object


class Rows:
    """Rows in the driver's values, kept by column: a column is its values joined by newlines (one string, which
    passes between processes at the speed of a copy; kept so when no value holds a newline), a list of values,
    or the `Same` value for all. For PostgreSQL, `copy` is their `COPY` text when it was made beforehand.
    `dropped`: positions of the columns' values that are not rows (left out by `without`).

    Iterating gives the rows as tuples; `column(i)` one column as a list."""

    def __init__(self, backend: str, columns: list, count: int, copy: str | None = None,
                 dropped: frozenset[int] = frozenset()):
        self.backend, self.columns, self.count, self.copy, self.dropped = backend, columns, count, copy, dropped
        self._split: dict[int, list] = {}

    @classmethod
    def of_columns(cls, backend: str, columns: list[list]) -> "Rows":
        return cls(backend, columns, len(columns[0]) if columns else 0)

    def __getstate__(self):
        return self.backend, self.columns, self.count, self.copy, self.dropped

    def __setstate__(self, state):
        self.backend, self.columns, self.count, self.copy, self.dropped = state
        self._split = {}

    def __len__(self) -> int:
        return self.count

    def column(self, index: int) -> list:
        values = self._split.get(index)
        if values is None:
            values = self.columns[index]
            if isinstance(values, Same):
                values = [values.value] * self.count
            else:
                if isinstance(values, str):
                    values = values.split("\n") if self.count + len(self.dropped) else []
                if self.dropped:
                    values = [value for i, value in enumerate(values) if i not in self.dropped]
            self._split[index] = values
        return values

    def __iter__(self) -> Iterator[tuple]:
        return zip(*(repeat(values.value, self.count) if isinstance(values, Same) else self.column(i)
                     for i, values in enumerate(self.columns)))

    def copy_text(self) -> str:
        if self.copy is None:
            self.copy = copy_text([self.column(i) for i in range(len(self.columns))])
        return self.copy

    def without(self, positions: set[int]) -> "Rows":
        """The rows but those at `positions` (their columns are filtered only when read)."""
        if self.dropped:   # positions are the rows', not the columns' values: filter these rows first
            return Rows.of_columns(self.backend, [self.column(i) for i in range(len(self.columns))]).without(positions)
        copy = None
        if self.copy is not None:
            lines = self.copy.split("\n")
            copy = "".join(line + "\n" for i, line in enumerate(lines[:-1]) if i not in positions)
        return Rows(self.backend, self.columns, self.count - len(positions), copy, frozenset(positions))

    def with_value(self, index: int, positions: set[int], value) -> "Rows":
        """The rows with column `index` set to `value` at `positions` (its `COPY` text made again when needed)."""
        values = list(self.column(index))
        for position in positions:
            values[position] = value
        columns = [self.column(i) if self.dropped else column for i, column in enumerate(self.columns)]
        return Rows(self.backend, [*columns[:index], values, *columns[index + 1:]], self.count)


def insert_new(connection: Connection, target: Table, columns: tuple[str, ...], rows: Rows,
               unique: tuple[str, ...], *, direct: bool = True, stored: set[tuple] | None = None) -> set[tuple]:
    """Stores the rows whose `unique` key is not stored yet; returns the keys of those left out (stored before).

    `direct`: try a plain COPY first (PostgreSQL), worth it when repeats are not expected. `stored`: keys of
    these rows the caller found stored: when all the other rows go in, those are the answer, and no other key
    is looked at."""
    if not rows:
        return set()
    if connection.dialect.name == "sqlite":
        return _sqlite_insert_new(connection, target, columns, rows, unique, stored or set())
    positions = [columns.index(name) for name in unique]
    if not direct:
        stored = _stored_keys(connection, target, unique, _key_columns(rows, positions))
    stored = stored or set()
    new = _without(rows, positions, stored) if stored else rows
    if not new:
        return stored
    try:
        with connection.begin_nested():
            _copy(connection, target.name, columns, new)
        return stored
    except IntegrityError:   # stored meanwhile by another writer: take the careful way
        pass
    cursor = connection.connection.driver_connection.cursor()
    try:
        cursor.execute(_postgresql_insert_sql(connection.dialect, target, tuple(columns), tuple(unique)),
                       [array_text(rows.column(i)) for i in range(len(columns))])
        inserted = set(cursor.fetchall())
    finally:
        cursor.close()
    return set(zip(*_key_columns(rows, positions))) - inserted


def add_sums(connection: Connection, target: Table, key: tuple[str, ...], rows: Rows, *, where=None) -> None:
    """Add (*key, quantity, events) rows to `target`'s quantity and events, inserting the keys not there yet.
    `where` names the partial unique index the key is unique in."""
    if not rows:
        return
    columns = (*key, "quantity", "events")
    if connection.dialect.name == "sqlite":
        _executemany(connection, rows, _sqlite_sql(connection.dialect, target, columns, tuple(key), where, add=True))
        return
    cursor = connection.connection.driver_connection.cursor()
    try:
        cursor.execute(_postgresql_add_sql(connection.dialect, target, columns, tuple(key), where),
                       [array_text(rows.column(i)) for i in range(len(columns))])
    finally:
        cursor.close()


def _given(dialect, target: Table, columns: tuple[str, ...]) -> str:
    """`SELECT` of rows given as one array a column (`array_text`: their texts, cast to the columns' types by
    the server), zipped by `unnest`: a batch in one parameter a column, without a temporary table."""
    quote = dialect.identifier_preparer.quote
    arrays = ", ".join(f"CAST(%s AS {target.c[name].type.compile(dialect)}[])" for name in columns)
    names = ", ".join(map(quote, columns))
    return f"SELECT {names} FROM unnest({arrays}) AS given({names})"


@lru_cache(maxsize=32)
def _postgresql_insert_sql(dialect, target: Table, columns: tuple[str, ...], unique: tuple[str, ...]) -> str:
    """Inserts the rows whose key is not stored, in key order (concurrent writers lock keys in the same order),
    returning the keys it inserted."""
    quote = dialect.identifier_preparer.quote
    keys = ", ".join(map(quote, unique))
    return (f"INSERT INTO {quote(target.name)} ({', '.join(map(quote, columns))}) {_given(dialect, target, columns)} "
            f"ORDER BY {keys} ON CONFLICT ({keys}) DO NOTHING RETURNING {keys}")


@lru_cache(maxsize=32)
def _postgresql_add_sql(dialect, target: Table, columns: tuple[str, ...], key: tuple[str, ...], where=None) -> str:
    """Adds the rows' quantity and events to the stored ones, inserting the keys not stored, in key order."""
    quote = dialect.identifier_preparer.quote
    keys, table_name = ", ".join(map(quote, key)), quote(target.name)
    index_where = "" if where is None else \
        f" WHERE {where.compile(dialect=dialect, compile_kwargs={'literal_binds': True, 'include_table': False})}"
    return (f"INSERT INTO {table_name} ({', '.join(map(quote, columns))}) {_given(dialect, target, columns)} "
            f"ORDER BY {keys} ON CONFLICT ({keys}){index_where} DO UPDATE SET "
            f"quantity = {table_name}.quantity + excluded.quantity, events = {table_name}.events + excluded.events")


def _stored_keys(connection: Connection, target: Table, unique: tuple[str, ...], values: list[list]) -> set[tuple]:
    """Which of these keys (given column by column) `target` holds already, by one index lookup each (PostgreSQL)."""
    quote = connection.dialect.identifier_preparer.quote
    names = [quote(name) for name in unique]
    arrays = ", ".join(f"CAST(%s AS {target.c[name].type.compile(connection.dialect)}[])" for name in unique)
    on = " AND ".join(f"t.{name} = k.{name}" for name in names)
    cursor = connection.connection.driver_connection.cursor()
    try:
        cursor.execute(f"SELECT {', '.join(f't.{name}' for name in names)} FROM {quote(target.name)} AS t "
                       f"JOIN unnest({arrays}) AS k({', '.join(names)}) ON {on}", [array_text(v) for v in values])
        return set(cursor.fetchall())
    finally:
        cursor.close()


def _sqlite_insert_new(connection: Connection, target: Table, columns, rows: Rows, unique,
                       stored: set[tuple]) -> set[tuple]:
    last = connection.execute(select(func.max(target.c.id))).scalar() or 0
    sql = _sqlite_sql(connection.dialect, target, tuple(columns), tuple(unique))
    inserted = _executemany(connection, rows, sql)
    if inserted == len(rows) - len(stored):
        return set(stored)
    query = select(*(target.c[name] for name in unique)).where(target.c.id > last)
    cursor = connection.connection.driver_connection.execute(str(query.compile(dialect=connection.dialect)), (last,))
    positions = [columns.index(name) for name in unique]
    return set(zip(*_key_columns(rows, positions))) - set(cursor.fetchall())


def _key_columns(rows: Rows, positions: list[int]) -> list[list]:
    """The rows' values at `positions`, column by column."""
    return [rows.column(p) for p in positions]


def _without(rows: Rows, positions: list[int], keys: set[tuple]) -> Rows:
    """The rows whose key (the values at `positions`) is not one of `keys`."""
    return rows.without({i for i, key in enumerate(zip(*_key_columns(rows, positions))) if key in keys})


STORED_EVENTS = {
    "sqlite": "SELECT e.source, e.event_id, e.time, e.customer, e.site, e.category, e.quantity "
              "FROM json_each(?) AS j JOIN events AS e "
              "ON e.source = json_extract(j.value, '$[0]') AND e.event_id = json_extract(j.value, '$[1]')",
    "postgresql": "SELECT e.source, e.event_id, e.time, e.customer, e.site, e.category, e.quantity "
                  "FROM unnest(CAST(%s AS VARCHAR[]), CAST(%s AS VARCHAR[])) AS j(source, event_id) "
                  "JOIN events AS e ON e.source = j.source AND e.event_id = j.event_id",
}


def stored_events(connection: Connection, identities: list[tuple[str, str]]) -> dict[tuple[str, str], tuple]:
    """The stored (time, customer, site, category, quantity) of those identities (source, id) that are stored.

    Read with the driver's own cursor (a re-sent batch looks up every event); SQLite's texts are read back by
    the columns' own types."""
    if not identities:
        return {}
    dialect = connection.dialect
    cursor = connection.connection.driver_connection.cursor()
    try:
        if dialect.name == "sqlite":
            cursor.execute(STORED_EVENTS["sqlite"], (msgspec.json.encode(identities).decode(),))
        else:
            cursor.execute(STORED_EVENTS["postgresql"], [array_text([s for s, _ in identities]),
                                                         array_text([i for _, i in identities])])
        rows = cursor.fetchall()
    finally:
        cursor.close()
    if dialect.name == "sqlite":
        time, quantity = UTCDateTime().process_result_value, ExactDecimal().process_result_value
        return {(source, event_id): (time(at, dialect), customer, site, category, quantity(amount, dialect))
                for source, event_id, at, customer, site, category, amount in rows}
    return {(source, event_id): tuple(content) for source, event_id, *content in rows}


@lru_cache(maxsize=32)
def _sqlite_sql(dialect, target: Table, columns: tuple[str, ...], conflict: tuple[str, ...], where=None,
                add: bool = False) -> str:
    """An INSERT of `columns` into `target` (SQLite) that, on a conflict on `conflict`, does nothing, or (`add`)
    adds quantity and events to the stored row; compiled once for each."""
    insert = sqlite.insert(target)
    if add:
        statement = insert.on_conflict_do_update(
            index_elements=list(conflict), index_where=where,
            set_={"quantity": func.decimal_add(target.c.quantity, literal_column("excluded.quantity")),
                  "events": target.c.events + literal_column("excluded.events")},
        )
    else:
        statement = insert.on_conflict_do_nothing(index_elements=list(conflict))
    compiled = statement.compile(dialect=dialect, column_keys=list(columns))
    if compiled.positiontup != list(columns):
        raise ValueError(f"give the columns in the table's order: {compiled.positiontup}")
    return str(compiled)


def _executemany(connection: Connection, rows: Rows, sql: str) -> int:
    """Runs `sql` for every row with the driver's own cursor (the values are its own already); rows changed."""
    cursor = connection.connection.driver_connection.cursor()
    try:
        cursor.executemany(sql, iter(rows))
        return cursor.rowcount
    finally:
        cursor.close()


def _copy(connection: Connection, name: str, columns, rows: Rows) -> None:
    cursor = connection.connection.driver_connection.cursor()
    names = ", ".join(connection.dialect.identifier_preparer.quote(c) for c in columns)
    try:
        with cursor.copy(f"COPY {connection.dialect.identifier_preparer.quote(name)} ({names}) FROM STDIN") as copy:
            copy.write(rows.copy_text())
    except connection.dialect.dbapi.Error as exc:   # as SQLAlchemy would have raised it: IntegrityError, …
        raise DBAPIError.instance("COPY", None, exc, connection.dialect.dbapi.Error) from exc
    finally:
        cursor.close()
