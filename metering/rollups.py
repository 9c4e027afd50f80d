"""Usage per (customer, site, category, local day): adding to it exactly, reading it back as `Usage`.

Ingestion adds each batch's sums in the batch's own transaction, so a rollup
always equals the events stored. The database adds them, exactly: NUMERIC on
PostgreSQL, `decimal_add` on SQLite (metering/bulk.py).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import Table
from sqlalchemy.engine import Connection

from engine.periods import Period
from engine.usage import Tally, Usage
from metering.bulk import Rows, add_sums
from metering.models import LateRollup, Rollup
from storage.encoding import quantity_text

# (customer, site, category, local day) → [quantity, events]
Increments = dict[tuple[str, str, str, dt.date], list]
KEY = ("customer", "site", "category", "day")


_NOT_BILLED = LateRollup.__table__.c.billed_on.is_(None)   # the partial unique index late rollups are unique in


def add_to_rollups(connection: Connection, increments: Increments, *, late: bool = False) -> None:
    """Add to the on-time rollups, or (late=True) to the late usage not yet billed."""
    if not increments:
        return
    target: Table = (LateRollup if late else Rollup).__table__
    customers, sites, categories, days = zip(*increments)
    quantities, events = zip(*increments.values())
    rows = Rows.of_columns(connection.dialect.name, [
        list(customers), list(sites), list(categories), [day.isoformat() for day in days],
        [quantity_text(quantity) for quantity in quantities], list(events)])
    add_sums(connection, target, KEY, rows, where=_NOT_BILLED if late else None)


Cell = tuple[dt.date, str, str, Decimal, int]   # (local day, site, category, quantity, events)

# Read with the driver's own cursor: an invoice reads tens of thousands of rollups, and SQLAlchemy's rows and
# result processors cost more than the query. SQLite hands back its text (day, quantity), converted here.
USAGE_CELLS = ("SELECT day, site, category, quantity, events FROM rollups "
               "WHERE customer = {0} AND day >= {0} AND day <= {0}")


def usage_cells(connection: Connection, customer: str, first: Period, last: Period) -> list[Cell]:
    """On-time usage of the periods first..last."""
    sqlite = connection.dialect.name == "sqlite"
    cursor = connection.connection.driver_connection.cursor()
    try:
        if sqlite:
            cursor.execute(USAGE_CELLS.format("?"), (customer, first.first_day.isoformat(), last.last_day.isoformat()))
        else:
            cursor.execute(USAGE_CELLS.format("%s"), (customer, first.first_day, last.last_day))
        rows = cursor.fetchall()
    finally:
        cursor.close()
    if not sqlite:   # psycopg gives dates and Decimals
        return rows
    days: dict[str, dt.date] = {}
    quantities: dict[str, Decimal] = {}   # Decimals are immutable: equal texts share one

    def as_date(text: str) -> dt.date:
        day = days[text] = dt.date.fromisoformat(text)
        return day

    def as_decimal(text: str) -> Decimal:
        quantity = quantities[text] = Decimal(text)
        return quantity

    return [(days.get(day) or as_date(day), site, category, quantities.get(quantity) or as_decimal(quantity), events)
            for day, site, category, quantity, events in rows]


def as_usage(*cell_lists: list[Cell]) -> Usage:
    """Usage as the engine takes it, summed from lists of cells (what `Usage.add` does, one period per day
    looked up once)."""
    usage = Usage()
    by_day: dict[dt.date, dict] = {}
    for cells in cell_lists:
        for day, site, category, quantity, events in cells:
            period_cells = by_day.get(day)
            if period_cells is None:
                period_cells = by_day[day] = usage.by_period.setdefault(Period(day.year, day.month), {})
            key = (day, site, category)
            tally = period_cells.get(key)
            if tally is None:
                period_cells[key] = Tally(quantity, events)
            else:
                tally.add(quantity, events)
    return usage
