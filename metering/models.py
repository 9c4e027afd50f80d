"""The record of what happened: usage events as first stored, and their sums per local day.

    events        one row per (source, id), the first one stored
    rollups       on-time usage per (customer, site, category, local day)
    late_rollups  usage that arrived after its period was issued, until an invoice bills it
    conflicts     one row per distinct conflicting repeat of a stored event
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from engine.periods import Period
from storage.base import Base, RowId


class UsageEvent(Base):
    """An event as first stored; its identity (source, id) is unique."""

    __tablename__ = "events"
    __table_args__ = (UniqueConstraint("source", "event_id", name="events_identity"),)

    id: Mapped[int] = mapped_column(RowId, primary_key=True)
    source: Mapped[str]
    event_id: Mapped[str]
    customer: Mapped[str]
    site: Mapped[str]
    category: Mapped[str]
    time: Mapped[dt.datetime]
    quantity: Mapped[Decimal]
    day: Mapped[dt.date]                       # local day in the contract's time zone
    late: Mapped[bool]                         # its period had an issued invoice when it arrived
    received_at: Mapped[dt.datetime]


class Rollup(Base):
    """On-time usage per local day: what invoices are computed from."""

    __tablename__ = "rollups"

    customer: Mapped[str] = mapped_column(primary_key=True)
    site: Mapped[str] = mapped_column(primary_key=True)
    category: Mapped[str] = mapped_column(primary_key=True)
    day: Mapped[dt.date] = mapped_column(primary_key=True)
    quantity: Mapped[Decimal]
    events: Mapped[int]


class LateRollup(Base):
    """Late usage per local day; `billed_on` is the issued invoice that billed it (None: not yet)."""

    __tablename__ = "late_rollups"
    __table_args__ = (
        Index(
            "late_rollups_pending", "customer", "site", "category", "day", unique=True,
            postgresql_where=text("billed_on IS NULL"), sqlite_where=text("billed_on IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(RowId, primary_key=True)
    customer: Mapped[str]
    site: Mapped[str]
    category: Mapped[str]
    day: Mapped[dt.date]
    quantity: Mapped[Decimal]
    events: Mapped[int]
    billed_on: Mapped[Period | None]


class ConflictingEvent(Base):
    """A repeat of a stored event with other content: reported once, never counted."""

    __tablename__ = "conflicts"
    __table_args__ = (UniqueConstraint("source", "event_id", "fingerprint", name="conflicts_identity"),)

    id: Mapped[int] = mapped_column(RowId, primary_key=True)
    source: Mapped[str]
    event_id: Mapped[str]
    fingerprint: Mapped[str] = mapped_column(String(32))
    customer: Mapped[str]
    site: Mapped[str]
    category: Mapped[str]
    time: Mapped[dt.datetime]
    quantity: Mapped[Decimal]
    day: Mapped[dt.date]
    late: Mapped[bool]
    billed_on: Mapped[Period | None]           # for a late one: the invoice that reported it
    received_at: Mapped[dt.datetime]
