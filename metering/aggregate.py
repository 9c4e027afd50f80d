"""Sum a customer's events per local day, site and category; count what is not counted.

    metered = meter(["events.jsonl"], customer="acme-health", zone=ZoneInfo("Europe/London"))
    metered.usage        # engine.usage.Usage: what the engine rates
    metered.unbilled     # duplicates and conflicts, per period
    metered.summary      # read, accepted, duplicates, conflicts, rejected (by reason), other customers

Nothing is kept per event but a hash of its content (`metering.dedup.content_hash`):
quantities are added up as they are read, one running total per (day, site, category).
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
from metering.days import QUARTER_HOUR_SECONDS, QUARTER_HOURS_A_DAY, LocalDays, local_days
from metering.dedup import CONFLICT, DUPLICATE
from metering.events import EPOCH, Event, EventData, Rejection, read_batches


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
        self.local_days = local_days(zone.key) if zone.key else LocalDays(zone)
        self.last_day = until.last_day if until is not None else dt.date.max
        self.first_seen: dict[str, dict[str, int]] = {}                   # source → id → content_hash of the first
        self.billed: dict[tuple[dt.date, str, str], _Running] = {}        # (day, site, category), in first-seen order
        self.repeats: dict[tuple[Period, str, str, str], _Running] = {}   # (period, reason, site, category)
        self.summary = Summary()

    def add(self, events: list[Event]) -> None:
        """Deduplicate a batch of events and add each to its cell.

        This runs for every event, so it is written out with local names: the
        first read wins (metering/dedup.py), and the day is looked up in the
        zone's quarter-hour cache (metering/days.py) without a call.
        """
        customer, last_day, billed = self.customer, self.last_day, self.billed
        days, seen = self.local_days.by_quarter_hour, self.first_seen
        accepted = other_customers = 0
        for event in events:
            data = event.data
            instant = event.time - EPOCH
            # content_hash(instant, data), written out: a call per event costs a tenth of the file mode's time
            # (tests/test_file_batches.py checks the two agree)
            content = hash((instant.days, instant.seconds, instant.microseconds, data.customer, data.site,
                            data.category, data.quantity.as_integer_ratio()))
            ids = seen.get(event.source)
            if ids is None:
                ids = seen[event.source] = {}
            first = ids.get(event.id)
            if first is None:
                ids[event.id] = content
                repeat = None
            else:
                repeat = DUPLICATE if first == content else CONFLICT
            if data.customer != customer:
                other_customers += 1
                continue
            bucket = instant.days * QUARTER_HOURS_A_DAY + instant.seconds // QUARTER_HOUR_SECONDS
            day = days.get(bucket)
            if day is None:
                day = self.local_days.of_quarter_hour(bucket)
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
