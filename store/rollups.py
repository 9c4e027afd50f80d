"""Usage per (customer, site, category, local day): adding to it exactly, reading it back as `Usage`.

Ingestion adds each batch's sums in the batch's own transaction, so a rollup
always equals the events stored. PostgreSQL adds NUMERICs in the upsert itself;
SQLite has no exact decimal arithmetic, so there the stored sums are read and
added in Python (the writer holds SQLite's write lock, so nothing changes them
in between).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import Table, select, tuple_
from sqlalchemy.engine import Connection

from engine.periods import Period
from engine.usage import Usage
from store.db import dialect_insert
from store.models import LateRollup, Rollup

# (customer, site, category, local day) → [quantity, events]
Increments = dict[tuple[str, str, str, dt.date], list]
KEY = ("customer", "site", "category", "day")
CHUNK = 200


def add_to_rollups(connection: Connection, increments: Increments, *, late: bool = False) -> None:
    """Add to the on-time rollups, or (late=True) to the late usage not yet billed."""
    if not increments:
        return
    table: Table = (LateRollup if late else Rollup).__table__
    pending = table.c.billed_on.is_(None) if late else None
    keys = sorted(increments)   # one lock order for every writer
    insert = dialect_insert(connection, table)
    if connection.dialect.name == "postgresql":
        statement = insert.on_conflict_do_update(
            index_elements=KEY, index_where=pending,
            set_={"quantity": table.c.quantity + insert.excluded.quantity,
                  "events": table.c.events + insert.excluded.events},
        )
        rows = [dict(zip(KEY, key), quantity=increments[key][0], events=increments[key][1]) for key in keys]
    else:
        stored = _stored(connection, table, keys, pending)
        statement = insert.on_conflict_do_update(
            index_elements=KEY, index_where=pending,
            set_={"quantity": insert.excluded.quantity, "events": insert.excluded.events},
        )
        rows = []
        for key in keys:
            quantity, events = increments[key]
            before = stored.get(key)
            if before is not None:
                quantity, events = before[0] + quantity, before[1] + events
            rows.append(dict(zip(KEY, key), quantity=quantity, events=events))
    connection.execute(statement, rows)


def _stored(connection: Connection, table: Table, keys: list, pending) -> Increments:
    columns = tuple_(*(table.c[name] for name in KEY))
    found: Increments = {}
    for start in range(0, len(keys), CHUNK):
        query = select(*(table.c[name] for name in KEY), table.c.quantity, table.c.events).where(
            columns.in_(keys[start:start + CHUNK])
        )
        if pending is not None:
            query = query.where(pending)
        for customer, site, category, day, quantity, events in connection.execute(query):
            found[(customer, site, category, day)] = [quantity, events]
    return found


Cell = tuple[dt.date, str, str, Decimal, int]   # (local day, site, category, quantity, events)


def usage_cells(connection: Connection, customer: str, first: Period, last: Period) -> list[Cell]:
    """On-time usage of the periods first..last."""
    table = Rollup.__table__
    query = select(table.c.day, table.c.site, table.c.category, table.c.quantity, table.c.events).where(
        table.c.customer == customer, table.c.day >= first.first_day, table.c.day <= last.last_day
    )
    return [tuple(row) for row in connection.execute(query)]


def as_usage(*cell_lists: list[Cell]) -> Usage:
    """Usage as the engine takes it, summed from lists of cells."""
    usage = Usage()
    for cells in cell_lists:
        for day, site, category, quantity, events in cells:
            usage.add(day, site, category, quantity, events)
    return usage
