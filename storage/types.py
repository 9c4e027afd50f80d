"""Column types that keep the engine's values exact in every database.

- `ExactDecimal`: `NUMERIC` on PostgreSQL; on SQLite, which has no exact decimal
  type (SQLAlchemy's `Numeric` goes through a float there), the decimal's own
  digits as text. Either way a `Decimal` goes in and the same `Decimal` comes out.
- `UTCDateTime`: an instant, stored in UTC (`timestamptz` on PostgreSQL, UTC text
  on SQLite) and read back as an aware datetime in UTC. A naive datetime is refused.
- `PeriodType`: a billing period (`engine.periods.Period`) as `YYYY-MM` text,
  which sorts in time order.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import DateTime, Numeric, String
from sqlalchemy.types import TypeDecorator

from engine.money import decimal_text  # noqa: F401  (imported from here by the ledger and review)
from engine.periods import Period
from storage.encoding import quantity_text, sqlite_time   # the texts kept on SQLite, as the bulk writer writes them

UTC = dt.timezone.utc


class ExactDecimal(TypeDecorator):
    impl = Numeric
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String())
        return dialect.type_descriptor(Numeric(asdecimal=True))

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if not isinstance(value, Decimal):
            raise TypeError(f"an exact decimal column takes a Decimal, not {type(value).__name__}")
        return quantity_text(value) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None or isinstance(value, Decimal):
            return value
        return Decimal(value)


class UTCDateTime(TypeDecorator):
    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "sqlite":   # the text SQLAlchemy's DateTime writes there, made here in one step
            return dialect.type_descriptor(String())
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if dialect.name == "sqlite":
            return sqlite_time(value)
        if value.tzinfo is None:
            raise ValueError(f"a timestamp must carry its offset: {value.isoformat()}")
        return value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if isinstance(value, str):
            value = dt.datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class PeriodType(TypeDecorator):
    impl = String(7)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else str(value)

    def process_result_value(self, value, dialect):
        return None if value is None else Period.parse(value)
