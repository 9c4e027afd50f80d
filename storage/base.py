"""The one declarative base every package's tables share, and the guards of records that never change.

Each package declares its own tables beside the code that writes them (metering/models.py,
ledger/models.py, lifecycle/models.py, review/models.py, identity/, audit/); all of them
derive from `Base`, so one schema and one set of migrations (storage/migrations) hold them.
Quantities and amounts are exact decimals (storage/types.py), instants are UTC,
local days are dates in the contract's time zone, periods are `YYYY-MM`.
"""

from __future__ import annotations

import datetime as dt
import sys
from decimal import Decimal

from sqlalchemy import BigInteger, Date, Integer, String, event
from sqlalchemy.orm import DeclarativeBase

if "flask" in sys.modules:
    from sqlalchemy_continuum import make_versioned
else:
    # sqlalchemy-continuum imports Flask for a plugin this project does not use (no user class, no plugins).
    # Importing Flask takes longer than computing an invoice from rollups, and every database command
    # would pay for it, so continuum is imported as if Flask were absent; Flask stays importable after.
    sys.modules["flask"] = None
    try:
        from sqlalchemy_continuum import make_versioned
    finally:
        del sys.modules["flask"]

from engine.periods import Period
from storage.types import ExactDecimal, PeriodType, UTCDateTime

make_versioned(user_cls=None)

# A 64-bit key on PostgreSQL, the rowid on SQLite (which only autoincrements INTEGER PRIMARY KEY).
RowId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    type_annotation_map = {
        Decimal: ExactDecimal(),
        dt.datetime: UTCDateTime(),
        dt.date: Date(),
        Period: PeriodType(),
        str: String(),
    }


class FrozenRecord(Exception):
    """An issued invoice, its PDF and a void are never updated or deleted."""


def append_only(mapper, connection, target) -> None:
    raise FrozenRecord(f"{mapper.local_table.name} is append-only: a row cannot be changed or deleted")


def make_append_only(*classes) -> None:
    """Refuse, in the ORM, every update and delete of these tables' rows (the migrations add triggers)."""
    for cls in classes:
        for verb in ("before_update", "before_delete"):
            event.listen(cls, verb, append_only)
