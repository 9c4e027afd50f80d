"""The system of record: contracts and their versions, usage events, rollups, invoices.

    contracts ─< contract_versions          (versioned by sqlalchemy-continuum)
    events     one row per (source, id), the first one stored
    rollups    on-time usage per (customer, site, category, local day)
    late_rollups  usage that arrived after its period was issued, until an invoice bills it
    conflicts  one row per distinct conflicting repeat of a stored event
    invoices   issued (and, later, draft/approved/void) invoices with what they counted

Quantities and amounts are exact decimals (store/types.py), instants are UTC,
local days are dates in the contract's time zone, periods are `YYYY-MM`.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, configure_mappers, mapped_column, relationship
from sqlalchemy_continuum import make_versioned

from engine.periods import Period
from store.types import ExactDecimal, PeriodType, UTCDateTime

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


class Contract(Base):
    """A customer's contract; what every version must keep (id, start, time zone, currency)."""

    __tablename__ = "contracts"
    __versioned__ = {}

    id: Mapped[str] = mapped_column(primary_key=True)
    customer: Mapped[str]                      # the display name, as the latest version writes it
    timezone: Mapped[str]
    starts: Mapped[dt.date]
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[dt.datetime]

    versions: Mapped[list[ContractVersion]] = relationship(
        back_populates="contract", order_by="ContractVersion.effective"
    )


class ContractVersion(Base):
    """The contract text in effect from `effective` on; saving again for the same period replaces it."""

    __tablename__ = "contract_versions"
    __versioned__ = {}
    __table_args__ = (UniqueConstraint("contract_id", "effective", name="contract_versions_period"),)

    id: Mapped[int] = mapped_column(RowId, primary_key=True)
    contract_id: Mapped[str] = mapped_column(ForeignKey("contracts.id"))
    effective: Mapped[Period]
    text: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    author: Mapped[str]
    saved_at: Mapped[dt.datetime]
    comment: Mapped[str] = mapped_column(Text, default="")

    contract: Mapped[Contract] = relationship(back_populates="versions")


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


INVOICE_STATUSES = ("draft", "approved", "issued", "void")


class Invoice(Base):
    """One period's invoice of a contract. An issued one is frozen: its document and what its caps counted."""

    __tablename__ = "invoices"
    __table_args__ = (
        CheckConstraint(f"status IN {INVOICE_STATUSES}", name="invoices_status"),
        Index(
            "invoices_one_live", "customer", "period", unique=True,
            postgresql_where=text("status <> 'void'"), sqlite_where=text("status <> 'void'"),
        ),
    )

    id: Mapped[int] = mapped_column(RowId, primary_key=True)
    customer: Mapped[str] = mapped_column(ForeignKey("contracts.id"))
    period: Mapped[Period]
    status: Mapped[str] = mapped_column(String(10))
    document: Mapped[dict] = mapped_column(JSON)
    contract_sha: Mapped[str] = mapped_column(String(64))
    cap_counts_before: Mapped[list] = mapped_column(JSON)   # [[site, scope, "decimal"], …] at the period's start
    cap_counts: Mapped[list] = mapped_column(JSON)          # … and after it
    usage_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime]
    issued_at: Mapped[dt.datetime | None]


configure_mappers()
