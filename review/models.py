"""What review keeps: the dashboard's figures at each close and every reconciliation run.

    dashboard_snapshots ─< dashboard_snapshot_sites   what the dashboard showed at close
    reconciliations ─ reconciliation_explanations     each run, and finance's explanations
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from engine.periods import Period
from storage.base import Base, RowId, make_append_only


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


make_append_only(ReconciliationExplanation)
