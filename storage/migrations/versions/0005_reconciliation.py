"""Reconciliation (review/reconcile.py): the dashboard's figures recorded when a period closes, each
reconciliation run with its findings, and finance's explanations of failed ones (append-only).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

from storage.types import ExactDecimal, PeriodType, UTCDateTime

revision: str = "0005"
down_revision: Union[str, Sequence[str], None] = "0004"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
APPEND_ONLY = "an explanation of a reconciliation cannot be changed or deleted"


def upgrade() -> None:
    op.create_table(
        "dashboard_snapshots",
        sa.Column("id", RowId, nullable=False),
        sa.Column("customer", sa.String(), nullable=False),
        sa.Column("period", PeriodType(), nullable=False),
        sa.Column("taken_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("total", ExactDecimal(), nullable=False),
        sa.Column("invoice_id", RowId, nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("dashboard_snapshots_period", "dashboard_snapshots", ["customer", "period", "taken_at"])
    op.create_table(
        "dashboard_snapshot_sites",
        sa.Column("snapshot_id", RowId, nullable=False),
        sa.Column("site", sa.String(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("charges", ExactDecimal(), nullable=False),
        sa.ForeignKeyConstraint(["snapshot_id"], ["dashboard_snapshots.id"]),
        sa.PrimaryKeyConstraint("snapshot_id", "site"),
    )
    op.create_table(
        "reconciliations",
        sa.Column("id", RowId, nullable=False),
        sa.Column("customer", sa.String(), nullable=False),
        sa.Column("period", PeriodType(), nullable=False),
        sa.Column("invoice_id", RowId, nullable=True),
        sa.Column("ran_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("ran_by", sa.String(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("difference", ExactDecimal(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("reconciliations_period", "reconciliations", ["period", "customer", "ran_at"])
    op.create_table(
        "reconciliation_explanations",
        sa.Column("reconciliation_id", RowId, nullable=False),
        sa.Column("explained_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("explained_by", sa.String(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["reconciliation_id"], ["reconciliations.id"]),
        sa.PrimaryKeyConstraint("reconciliation_id"),
    )
    table = "reconciliation_explanations"
    if op.get_context().dialect.name == "postgresql":
        op.execute(f"""CREATE FUNCTION {table}_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION '{APPEND_ONLY}'; END $$""")
        op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                   f"FOR EACH ROW EXECUTE FUNCTION {table}_append_only()")
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                       f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END")


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP TRIGGER reconciliation_explanations_append_only ON reconciliation_explanations")
        op.execute("DROP FUNCTION reconciliation_explanations_append_only()")
    op.drop_table("reconciliation_explanations")
    op.drop_index("reconciliations_period", table_name="reconciliations")
    op.drop_table("reconciliations")
    op.drop_table("dashboard_snapshot_sites")
    op.drop_index("dashboard_snapshots_period", table_name="dashboard_snapshots")
    op.drop_table("dashboard_snapshots")
