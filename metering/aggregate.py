"""Sum a customer's events per local day, site and category; count what is not counted.

    metered = meter(["events.jsonl"], customer="acme-health", zone=ZoneInfo("Europe/London"))
    metered.usage        # engine.usage.Usage: what the engine rates
    metered.unbilled     # duplicates and conflicts, per period
    metered.summary      # read, accepted, duplicates, conflicts, rejected (by reason), other customers
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable
from zoneinfo import ZoneInfo

from engine.periods import Period
from engine.usage import Unbilled, Usage
from metering.dedup import Deduplicator
from metering.events import Rejection, read_events


class LocalDays:
    """UTC instant → local calendar day, cached per quarter hour (offsets are whole quarter hours)."""

    def __init__(self, zone: ZoneInfo):
        self.zone = zone
        self._cache: dict[int, dt.date] = {}

    def __call__(self, instant: dt.datetime) -> dt.date:
        bucket = int(instant.timestamp()) // 900
        day = self._cache.get(bucket)
        if day is None:
            day = self._cache[bucket] = dt.datetime.fromtimestamp(bucket * 900, self.zone).date()
        return day


@dataclass
class Summary:
    read: int = 0
    accepted: int = 0
    duplicates: int = 0
    conflicts: int = 0
    other_customers: int = 0
    rejected: Counter = field(default_factory=Counter)

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())


@dataclass
class Metered:
    usage: Usage
    unbilled: Unbilled
    summary: Summary


def meter(
    paths: Iterable[str],
    customer: str,
    zone: ZoneInfo,
    on_reject: Callable[[Rejection], None] = lambda rejection: None,
    until: Period | None = None,
) -> Metered:
    """Read every file in order; `until` skips usage of later periods (it cannot affect earlier ones)."""
    usage, unbilled, summary = Usage(), Unbilled(), Summary()
    dedup, local_day = Deduplicator(), LocalDays(zone)
    for path in paths:
        for _, item in read_events(path):
            summary.read += 1
            if isinstance(item, Rejection):
                summary.rejected[item.reason] += 1
                on_reject(item)
                continue
            repeat = dedup.classify(item)
            data = item.data
            if data.customer != customer:
                summary.other_customers += 1
                continue
            day = local_day(item.time)
            if until is not None and (day.year, day.month) > (until.year, until.month):
                summary.accepted += repeat is None
                continue
            if repeat is None:
                summary.accepted += 1
                usage.add(day, data.site, data.category, data.quantity)
            else:
                summary.duplicates += repeat == "duplicate"
                summary.conflicts += repeat == "conflict"
                unbilled.add(Period(day.year, day.month), repeat, data.site, data.category, data.quantity)
    return Metered(usage, unbilled, summary)
