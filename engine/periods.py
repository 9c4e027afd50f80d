"""Billing periods (calendar months in the contract's time zone) and contract years."""

from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

_PERIOD = re.compile(r"^(\d{4})-(\d{2})$")
# The months a period may be: a contract year around one must still be a date (9999-12 ends in year 10000).
FIRST_YEAR, LAST_YEAR = 1900, 2999


@dataclass(frozen=True, order=True)
class Period:
    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> "Period":
        """`YYYY-MM`; raises ValueError with a reason a user can act on."""
        match = _PERIOD.match(text or "")
        if not match or not 1 <= int(match.group(2)) <= 12:
            raise ValueError(f"period {text!r} is not a month written YYYY-MM (for example 2026-05)")
        if not FIRST_YEAR <= int(match.group(1)) <= LAST_YEAR:
            raise ValueError(f"period {text!r} is not a month between {FIRST_YEAR}-01 and {LAST_YEAR}-12")
        return cls(int(match.group(1)), int(match.group(2)))

    @classmethod
    def of(cls, day: dt.date) -> "Period":
        return cls(day.year, day.month)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def days(self) -> int:
        return calendar.monthrange(self.year, self.month)[1]

    @property
    def first_day(self) -> dt.date:
        return dt.date(self.year, self.month, 1)

    @property
    def last_day(self) -> dt.date:
        return dt.date(self.year, self.month, self.days)

    def shift(self, months: int) -> "Period":
        index = self.year * 12 + self.month - 1 + months
        return Period(index // 12, index % 12 + 1)

    def start(self, zone: ZoneInfo) -> dt.datetime:
        """The first instant of the period, local time."""
        return dt.datetime(self.year, self.month, 1, tzinfo=zone)

    def end(self, zone: ZoneInfo) -> dt.datetime:
        """The first instant after the period (the period is half-open)."""
        return self.shift(1).start(zone)


def contract_year_start(starts: dt.date, period: Period) -> Period:
    """The first period of the contract year that `period` falls in (years restart every anniversary)."""
    first = Period.of(starts)
    months = (period.year - first.year) * 12 + period.month - first.month
    return first.shift(months - months % 12)


def periods_between(first: Period, last: Period) -> list[Period]:
    out, current = [], first
    while current <= last:
        out.append(current)
        current = current.shift(1)
    return out
