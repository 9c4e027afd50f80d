"""The system of record: contracts and their versions, usage events, rollups, invoices.

    contracts ─< contract_versions          (versioned by sqlalchemy-continuum)
    events     one row per (source, id), the first one stored
    rollups    on-time usage per (customer, site, category, local day)
    late_rollups  usage that arrived after its period was issued, until an invoice bills it
    conflicts  one row per distinct conflicting repeat of a stored event
    invoices   draft, approved and issued invoices with what they counted (issued ones frozen)
    invoice_pdfs, invoice_voids, invoice_counters  the issued PDF, voids, numbering (store/lifecycle.py)
    credit_notes  credit notes against issued invoices, with their PDFs (store/credit_notes.py)
    dashboard_snapshots ─< dashboard_snapshot_sites, reconciliations ─ reconciliation_explanations
               what the dashboard showed at close, each reconciliation run, explanations (store/reconcile.py)

Quantities and amounts are exact decimals (store/types.py), instants are UTC,
local days are dates in the contract's time zone, periods are `YYYY-MM`.
"""

from __future__ import annotations

import datetime as dt
import sys
from decimal import Decimal

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    event,
    exists,
    inspect,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, configure_mappers, mapped_column, relationship

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
        # One draft or approved invoice per customer and period. An issued one is never changed, so a voided
        # one keeps status 'issued' (invoice_voids says it is void); store/lifecycle.py allows one in force.
        Index(
            "invoices_one_open", "customer", "period", unique=True,
            postgresql_where=text("status IN ('draft', 'approved')"),
            sqlite_where=text("status IN ('draft', 'approved')"),
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
    # The lifecycle (store/lifecycle.py): who approved and issued it, its number, the voided invoice it replaces.
    approved_at: Mapped[dt.datetime | None]
    approved_by: Mapped[str | None]
    issued_by: Mapped[str | None]
    number: Mapped[str | None] = mapped_column(String(32), unique=True)
    replaces_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id"))


class InvoicePdf(Base):
    """The PDF an invoice was issued with, and its SHA-256; never changed or deleted."""

    __tablename__ = "invoice_pdfs"

    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), primary_key=True)
    pdf: Mapped[bytes] = mapped_column(LargeBinary)
    sha256: Mapped[str] = mapped_column(String(64))


class InvoiceVoid(Base):
    """An issued invoice's void: who, when, why. The invoice row itself is not touched."""

    __tablename__ = "invoice_voids"

    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), primary_key=True)
    voided_at: Mapped[dt.datetime]
    voided_by: Mapped[str]
    reason: Mapped[str] = mapped_column(Text)


class InvoiceCounter(Base):
    """The last invoice number issued per environment and year; locked by the issuing transaction."""

    __tablename__ = "invoice_counters"

    environment: Mapped[str] = mapped_column(primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last: Mapped[int] = mapped_column(BigInteger)


class DashboardSnapshot(Base):
    """What the dashboard showed for a customer's period when the period was closed (store/reconcile.py)."""

    __tablename__ = "dashboard_snapshots"
    __table_args__ = (Index("dashboard_snapshots_period", "customer", "period", "taken_at"),)

    id: Mapped[int] = mapped_column(RowId, primary_key=True)
    customer: Mapped[str]
    period: Mapped[Period]
    taken_at: Mapped[dt.datetime]
    currency: Mapped[str] = mapped_column(String(3))
    total: Mapped[Decimal]
    invoice_id: Mapped[int | None]             # the draft closed with it (no foreign key: a draft may be deleted)

    sites: Mapped[list[DashboardSnapshotSite]] = relationship(order_by="DashboardSnapshotSite.position")


class DashboardSnapshotSite(Base):
    """One site's charges in a dashboard snapshot."""

    __tablename__ = "dashboard_snapshot_sites"

    snapshot_id: Mapped[int] = mapped_column(ForeignKey("dashboard_snapshots.id"), primary_key=True)
    site: Mapped[str] = mapped_column(primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str]
    charges: Mapped[Decimal]


class Reconciliation(Base):
    """One run of the reconciliation of a customer's period: its findings as JSON, whether it passed."""

    __tablename__ = "reconciliations"
    __table_args__ = (Index("reconciliations_period", "period", "customer", "ran_at"),)

    id: Mapped[int] = mapped_column(RowId, primary_key=True)
    customer: Mapped[str]
    period: Mapped[Period]
    invoice_id: Mapped[int | None]             # the invoice compared (no foreign key: a draft may be deleted)
    ran_at: Mapped[dt.datetime]
    ran_by: Mapped[str]
    passed: Mapped[bool]
    difference: Mapped[Decimal]                # the money differences found, in absolute value, summed
    fingerprint: Mapped[str] = mapped_column(String(64))   # of the discrepancies: what an explanation covers
    report: Mapped[dict] = mapped_column(JSON)


class ReconciliationExplanation(Base):
    """A finance user's explanation of a failed reconciliation: lifts its refusal to approve and issue."""

    __tablename__ = "reconciliation_explanations"

    reconciliation_id: Mapped[int] = mapped_column(ForeignKey("reconciliations.id"), primary_key=True)
    explained_at: Mapped[dt.datetime]
    explained_by: Mapped[str]
    text: Mapped[str] = mapped_column(Text)


def in_force():
    """The condition of an issued invoice that was not voided: what caps, lateness and numbering count."""
    return (Invoice.status == "issued") & ~exists().where(InvoiceVoid.invoice_id == Invoice.id)


class FrozenRecord(Exception):
    """An issued invoice, its PDF and a void are never updated or deleted."""


@event.listens_for(Invoice, "before_update")
@event.listens_for(Invoice, "before_delete")
def _issued_invoice_is_frozen(mapper, connection, target: Invoice) -> None:
    history = inspect(target).attrs.status.history
    if (history.deleted[0] if history.deleted else target.status) == "issued":
        raise FrozenRecord(f"invoice {target.number or target.id} of '{target.customer}' for {target.period} "
                           "is issued: it cannot be changed or deleted (void it and issue a new one)")


@event.listens_for(InvoicePdf, "before_update")
@event.listens_for(InvoicePdf, "before_delete")
@event.listens_for(InvoiceVoid, "before_update")
@event.listens_for(InvoiceVoid, "before_delete")
@event.listens_for(ReconciliationExplanation, "before_update")
@event.listens_for(ReconciliationExplanation, "before_delete")
def _append_only(mapper, connection, target) -> None:
    raise FrozenRecord(f"{mapper.local_table.name} is append-only: a row cannot be changed or deleted")


class CreditNote(Base):
    """A credit note against an issued invoice (store/credit_notes.py): its own number, the amount credited per
    site, why, who, when, and its PDF with the SHA-256; never changed or deleted (migration 0006, and the ORM)."""

    __tablename__ = "credit_notes"

    id: Mapped[int] = mapped_column(RowId, primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), index=True)
    customer: Mapped[str] = mapped_column(ForeignKey("contracts.id"))
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str] = mapped_column(Text)
    lines: Mapped[list] = mapped_column(JSON)             # [{"site", "name", "amount": "decimal"}], in site order
    total: Mapped[Decimal]
    issued_at: Mapped[dt.datetime]
    issued_by: Mapped[str]
    pdf: Mapped[bytes] = mapped_column(LargeBinary)
    sha256: Mapped[str] = mapped_column(String(64))


for _verb in ("before_update", "before_delete"):
    event.listen(CreditNote, _verb, _append_only)


configure_mappers()
