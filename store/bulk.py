"""Loading a batch of new rows at the speed of the driver's own bulk path, or not at all.

    if not bulk_insert(connection, events_table, columns, rows):
        ...  # some row's unique key was already stored: nothing was inserted; insert row by row

PostgreSQL gets a `COPY`, SQLite one `executemany`, each under a savepoint: a
unique violation rolls the batch back to the savepoint and returns False, and the
caller inserts the batch the careful way (`INSERT … ON CONFLICT DO NOTHING
RETURNING`). Rows are tuples in `columns` order, with the values the table's
column types take; SQLite gets them through those types' own bind processors.
"""

from __future__ import annotations

from sqlalchemy import Table, insert
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError


def bulk_insert(connection: Connection, table: Table, columns: tuple[str, ...], rows: list[tuple]) -> bool:
    dialect = connection.dialect.name
    if dialect not in ("postgresql", "sqlite"):
        return False
    try:
        with connection.begin_nested():
            if dialect == "postgresql":
                _copy(connection, table, columns, rows)
            else:
                _executemany(connection, table, columns, rows)
    except IntegrityError:
        return False
    return True


def _copy(connection: Connection, table: Table, columns: tuple[str, ...], rows: list[tuple]) -> None:
    cursor = connection.connection.driver_connection.cursor()
    names = ", ".join(connection.dialect.identifier_preparer.quote(name) for name in columns)
    try:
        with cursor.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    except connection.dialect.dbapi.Error as exc:   # as SQLAlchemy would have raised it: IntegrityError, …
        raise DBAPIError.instance("COPY", None, exc, connection.dialect.dbapi.Error) from exc
    finally:
        cursor.close()


def _executemany(connection: Connection, table: Table, columns: tuple[str, ...], rows: list[tuple]) -> None:
    dialect = connection.dialect
    compiled = insert(table).compile(dialect=dialect, column_keys=list(columns))
    if compiled.positiontup != list(columns):
        raise ValueError(f"give the columns in the table's order: {compiled.positiontup}")
    processors = [table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in columns]
    if any(processors):
        by_column = [list(map(p, values)) if p else values for p, values in zip(processors, zip(*rows))]
        rows = list(zip(*by_column))
    connection.exec_driver_sql(str(compiled), rows)
