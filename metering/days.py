"""The local calendar day of an instant in a contract's time zone, cached once per zone for the whole process.

    days = local_days("Europe/London")
    days(dt.datetime(2026, 5, 31, 23, 30, tzinfo=UTC))      # date(2026, 6, 1)
    days.by_utc_minute["2026-05-31 23:30"]                  # "2026-06-01" (the ingest batcher's lookup)

Offsets are whole quarter hours, so every instant of a quarter hour (counted from
1970 in UTC) has the same local day: one cache per zone holds the day of each
quarter hour met. File mode (metering/aggregate.py) looks quarter hours up
itself, in its loop over events; the ingest batcher looks its rows' UTC texts
up by minute (`by_utc_minute`, filled from the same cache). A zone's days never
change, so the cache lives as long as the process: every ingest and every
request of the event API finds the days the ones before it worked out.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

UTC = dt.timezone.utc
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
QUARTER_HOURS_A_DAY, QUARTER_HOUR_SECONDS = 96, 900


class LocalDays:
    """A zone's local days, cached per quarter hour of UTC (`by_quarter_hour`: quarter hours since 1970 → date)."""

    def __init__(self, zone: ZoneInfo):
        self.zone = zone
        self.by_quarter_hour: dict[int, dt.date] = {}
        self.by_utc_minute = _MinuteDays(self)

    def __call__(self, instant: dt.datetime) -> dt.date:
        since = instant - EPOCH   # whole days and seconds: exact, and floored before 1970
        bucket = since.days * QUARTER_HOURS_A_DAY + since.seconds // QUARTER_HOUR_SECONDS
        day = self.by_quarter_hour.get(bucket)
        return day if day is not None else self.of_quarter_hour(bucket)

    def of_quarter_hour(self, bucket: int) -> dt.date:
        """The day of a quarter hour not met before, kept for the next ones."""
        day = self.by_quarter_hour[bucket] = (
            EPOCH + dt.timedelta(seconds=bucket * QUARTER_HOUR_SECONDS)).astimezone(self.zone).date()
        return day


class _MinuteDays(dict):
    """"YYYY-MM-DD HH:MM" in UTC (the start of either database's instant text) → the local day's ISO text,
    found through the zone's quarter-hour cache when first asked for."""

    def __init__(self, days: LocalDays):
        super().__init__()
        self.days = days

    def __missing__(self, minute: str) -> str:
        day = self[minute] = self.days(dt.datetime.fromisoformat(minute + ":00+00:00")).isoformat()
        return day


_ZONES: dict[str, LocalDays] = {}


def local_days(zone: str) -> LocalDays:
    """The days of an IANA time zone ("Europe/London"), the same `LocalDays` for every caller."""
    days = _ZONES.get(zone)
    if days is None:
        days = _ZONES.setdefault(zone, LocalDays(ZoneInfo(zone)))
    return days
