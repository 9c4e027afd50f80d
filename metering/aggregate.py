"""Sum a customer's events per local day, site and category; count what is not counted.

    metered = meter(["events.jsonl"], customer="acme-health", zone=ZoneInfo("Europe/London"))
    metered.usage        # engine.usage.Usage: what the engine rates
    metered.unbilled     # duplicates and conflicts, per period
    metered.summary      # read, accepted, duplicates, conflicts, rejected (by reason), other customers

Nothing is kept per event but its fingerprint in the deduplicator: quantities
are added up as they are read, one running total per (day, site, category).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Callable, Iterable
from zoneinfo import ZoneInfo

from engine.periods import Period
from engine.usage import Unbilled, Usage
from metering.dedup import CONFLICT, DUPLICATE, Deduplicator
from metering.events import EPOCH, Event, EventData, Rejection, read_batches

# Up to 2^34 seconds after 1970 (the year 2514) the float seconds that LocalDays
# truncates are exact to the second, so counting quarter hours from the instant's
# days and seconds gives its very bucket; outside that range LocalDays decides.
_EXACT_DAYS = 2**34 // 86400


class LocalDays:
    """UTC instant → local calendar day, cached per quarter hour (offsets are whole quarter hours)."""

    def __init__(self, zone: ZoneInfo):
        self.zone = zone
        self._cache: dict[int, dt.date] = {}

    def __call__(self, instant: dt.datetime) -> dt.date:
        bucket = int(instant.timestamp() // 900)   # floored: before 1970 too
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


class _Running:
    """A cell's quantities added up in the order read (as engine.usage.Tally adds them), and its event count."""

    __slots__ = ("quantity", "events")

    def __init__(self, quantity: Decimal):
        self.quantity = quantity
        self.events = 1


class _Meter:
    """What one `meter` call has counted so far; `add` is the loop every event goes through."""

    def __init__(self, customer: str, zone: ZoneInfo, until: Period | None):
        self.customer = customer
        self.local_day = LocalDays(zone)
        self.last_day = until.last_day if until is not None else dt.date.max
        self.dedup = Deduplicator()
        self.days: dict[int, dt.date] = {}                                # quarter hours since 1970 → local day
        self.billed: dict[tuple[dt.date, str, str], _Running] = {}        # (day, site, category), in first-seen order
        self.repeats: dict[tuple[Period, str, str, str], _Running] = {}   # (period, reason, site, category)
        self.summary = Summary()

    def add(self, events: list[Event]) -> None:
        """Deduplicate a batch of events and add each to its cell.

        This runs for every event, so it is written out with local names and no
        call per event: the first-read-wins rule of `Deduplicator.classify` with
        the fingerprint of `metering.events.fingerprint`, and the quarter-hour
        cache of `LocalDays`.
        """
        customer, last_day, days, billed = self.customer, self.last_day, self.days, self.billed
        seen = self.dedup.by_source
        accepted = other_customers = 0
        for event in events:
            data = event.data
            instant = event.time - EPOCH
            elapsed_days, seconds = instant.days, instant.seconds
            fingerprint = hash((elapsed_days, seconds, instant.microseconds, data.customer, data.site, data.category,
                                data.quantity.as_integer_ratio()))
            ids = seen.get(event.source)
            if ids is None:
                ids = seen[event.source] = {}
            first = ids.get(event.id)
            if first is None:
                ids[event.id] = fingerprint
                repeat = None
            else:
                repeat = DUPLICATE if first == fingerprint else CONFLICT
            if data.customer != customer:
                other_customers += 1
                continue
            bucket = elapsed_days * 96 + seconds // 900
            day = days.get(bucket)
            if day is None:
                day = self._day(event.time, bucket, elapsed_days)
            if day > last_day:
                accepted += repeat is None
                continue
            if repeat is not None:
                self._unbilled(day, repeat, data)
                continue
            accepted += 1
            key = (day, data.site, data.category)
            running = billed.get(key)
            if running is None:
                billed[key] = _Running(data.quantity)
            else:
                running.quantity += data.quantity
                running.events += 1
        self.summary.read += len(events)
        self.summary.accepted += accepted
        self.summary.other_customers += other_customers

    def _day(self, time: dt.datetime, bucket: int, elapsed_days: int) -> dt.date:
        """A quarter hour not met before: LocalDays says its day, kept for the others where `bucket` is its bucket."""
        day = self.local_day(time)
        if 0 <= elapsed_days < _EXACT_DAYS:
            self.days[bucket] = day
        return day

    def _unbilled(self, day: dt.date, reason: str, data: EventData) -> None:
        key = (Period(day.year, day.month), reason, data.site, data.category)
        running = self.repeats.get(key)
        if running is None:
            self.repeats[key] = _Running(data.quantity)
        else:
            running.quantity += data.quantity
            running.events += 1

    def reject(self, rejection: Rejection) -> None:
        self.summary.read += 1
        self.summary.rejected[rejection.reason] += 1

    def result(self) -> Metered:
        usage, unbilled, summary = Usage(), Unbilled(), self.summary
        for (day, site, category), running in self.billed.items():
            usage.add(day, site, category, running.quantity, running.events)
        for (period, reason, site, category), running in self.repeats.items():
            unbilled.add(period, reason, site, category, running.quantity, running.events)
            if reason == DUPLICATE:
                summary.duplicates += running.events
            else:
                summary.conflicts += running.events
        return Metered(usage, unbilled, summary)


def meter(
    paths: Iterable[str],
    customer: str,
    zone: ZoneInfo,
    on_reject: Callable[[Rejection], None] = lambda rejection: None,
    until: Period | None = None,
) -> Metered:
    """Read every file in order; `until` skips usage of later periods (it cannot affect earlier ones)."""
    metering = _Meter(customer, zone, until)
    for path in paths:
        for _, batch in read_batches(path):
            if isinstance(batch, Rejection):
                metering.reject(batch)
                on_reject(batch)
            else:
                metering.add(batch)
    return metering.result()
