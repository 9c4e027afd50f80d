"""Aggregated usage: what metering hands to the engine.

Usage is summed per local day, site and category, so that the engine can tell
usage inside a site's active window from usage outside it without ever seeing
an event. The same shape comes from a file (metering/) or from database rollups.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from engine.periods import Period


@dataclass
class Tally:
    quantity: Decimal = Decimal(0)
    events: int = 0

    def add(self, quantity: Decimal, events: int = 1) -> None:
        self.quantity += quantity
        self.events += events


UsageKey = tuple[dt.date, str, str]  # (local day, site, category)


@dataclass
class Usage:
    """Usage per period, then per (local day, site, category)."""

    by_period: dict[Period, dict[UsageKey, Tally]] = field(default_factory=dict)

    def add(self, day: dt.date, site: str, category: str, quantity: Decimal, events: int = 1) -> None:
        cells = self.by_period.setdefault(Period(day.year, day.month), {})
        tally = cells.get((day, site, category))
        if tally is None:
            cells[(day, site, category)] = Tally(quantity, events)
        else:
            tally.add(quantity, events)

    def period(self, period: Period) -> dict[UsageKey, Tally]:
        return self.by_period.get(period, {})


UnbilledKey = tuple[str, str, str]  # (reason, site, category)


@dataclass
class Unbilled:
    """Events not billed, per period, grouped by (reason, site, category)."""

    by_period: dict[Period, dict[UnbilledKey, Tally]] = field(default_factory=dict)

    def add(self, period: Period, reason: str, site: str, category: str, quantity: Decimal, events: int = 1) -> None:
        cells = self.by_period.setdefault(period, {})
        tally = cells.get((reason, site, category))
        if tally is None:
            cells[(reason, site, category)] = Tally(quantity, events)
        else:
            tally.add(quantity, events)

    def period(self, period: Period) -> dict[UnbilledKey, Tally]:
        return self.by_period.get(period, {})
