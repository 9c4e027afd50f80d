"""Usage per (customer, site, category, local day): adding to it exactly, reading it back as `Usage`.

Ingestion adds each batch's sums in the batch's own transaction, so a rollup
always equals the events stored. The database adds them, exactly: NUMERIC on
PostgreSQL, `decimal_add` on SQLite (store/bulk.py).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import String, Table, select, type_coerce
from sqlalchemy.engine import Connection

from engine.periods import Period
from engine.usage import Usage
from store.bulk import add_sums
from store.models import LateRollup, Rollup

# (customer, site, category, local day) → [quantity, events]
Increments = dict[tuple[str, str, str, dt.date], list]
KEY = ("customer", "site", "category", "day")


def add_to_rollups(connection: Connection, increments: Increments, *, late: bool = False) -> None:
    """Add to the on-time rollups, or (late=True) to the late usage not yet billed."""
    target: Table = (LateRollup if late else Rollup).__table__
    add_sums(connection, target, KEY, [(*key, quantity, events) for key, (quantity, events) in increments.items()],
             where=target.c.billed_on.is_(None) if late else None)


Cell = tuple[dt.date, str, str, Decimal, int]   # (local day, site, category, quantity, events)


def usage_cells(connection: Connection, customer: str, first: Period, last: Period) -> list[Cell]:
    """On-time usage of the periods first..last."""
    table = Rollup.__table__
    day = type_coerce(table.c.day, String)   # SQLite's ISO text as it is, read once per distinct day
    query = select(day, table.c.site, table.c.category, table.c.quantity, table.c.events).where(
        table.c.customer == customer, table.c.day >= first.first_day, table.c.day <= last.last_day
    )
    days: dict = {}

    def as_date(value) -> dt.date:
        found = days.get(value)
        if found is None:
            found = days[value] = value if isinstance(value, dt.date) else dt.date.fromisoformat(value)
        return found

    return [(as_date(day), site, category, quantity, events)
            for day, site, category, quantity, events in connection.execute(query)]


def as_usage(*cell_lists: list[Cell]) -> Usage:
    """Usage as the engine takes it, summed from lists of cells."""
    usage = Usage()
    for cells in cell_lists:
        for day, site, category, quantity, events in cells:
            usage.add(day, site, category, quantity, events)
    return usage
