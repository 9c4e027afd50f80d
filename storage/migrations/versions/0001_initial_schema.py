"""The initial schema: contracts and their versions (with continuum's history tables), events,
rollups, late rollups, conflicts and invoices.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

from storage.types import ExactDecimal, PeriodType, UTCDateTime

revision: str = "0001"
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _history_columns() -> list[sa.Column]:
    """What sqlalchemy-continuum adds to each versioned table's copy."""
    return [
        sa.Column("transaction_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("end_transaction_id", sa.BigInteger(), nullable=True),
        sa.Column("operation_type", sa.SmallInteger(), nullable=False),
    ]


def _history_indexes(table: str) -> None:
    op.create_index(f"ix_{table}_end_transaction_id", table, ["end_transaction_id"])
    op.create_index(f"ix_{table}_operation_type", table, ["operation_type"])
    op.create_index(f"ix_{table}_pk_transaction_id", table, ["id", sa.literal_column("transaction_id DESC")])
    op.create_index(f"ix_{table}_pk_validity", table, ["id", "transaction_id", "end_transaction_id"])
    op.create_index(f"ix_{table}_transaction_id", table, ["transaction_id"])


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":   # continuum numbers its transactions from this sequence
        op.execute(sa.schema.CreateSequence(sa.Sequence("transaction_id_seq")))
    op.create_table(
        "transaction",
        sa.Column("id", sa.BigInteger(), sa.Sequence("transaction_id_seq"), autoincrement=True, nullable=False),
        sa.Column("remote_addr", sa.String(length=50), nullable=True),
        sa.Column("issued_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "contracts",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("customer", sa.String(), nullable=False),
        sa.Column("timezone", sa.String(), nullable=False),
        sa.Column("starts", sa.Date(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "contracts_version",
        sa.Column("id", sa.String(), autoincrement=False, nullable=False),
        sa.Column("customer", sa.String(), autoincrement=False, nullable=True),
        sa.Column("timezone", sa.String(), autoincrement=False, nullable=True),
        sa.Column("starts", sa.Date(), autoincrement=False, nullable=True),
        sa.Column("currency", sa.String(length=3), autoincrement=False, nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), autoincrement=False, nullable=True),
        *_history_columns(),
        sa.PrimaryKeyConstraint("id", "transaction_id"),
    )
    _history_indexes("contracts_version")
    op.create_table(
        "contract_versions",
        sa.Column("id", RowId, nullable=False),
        sa.Column("contract_id", sa.String(), nullable=False),
        sa.Column("effective", PeriodType(length=7), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("author", sa.String(), nullable=False),
        sa.Column("saved_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["contract_id"], ["contracts.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("contract_id", "effective", name="contract_versions_period"),
    )
    op.create_table(
        "contract_versions_version",
        sa.Column("id", RowId, autoincrement=False, nullable=False),
        sa.Column("contract_id", sa.String(), autoincrement=False, nullable=True),
        sa.Column("effective", PeriodType(length=7), autoincrement=False, nullable=True),
        sa.Column("text", sa.Text(), autoincrement=False, nullable=True),
        sa.Column("sha256", sa.String(length=64), autoincrement=False, nullable=True),
        sa.Column("author", sa.String(), autoincrement=False, nullable=True),
        sa.Column("saved_at", UTCDateTime(timezone=True), autoincrement=False, nullable=True),
        sa.Column("comment", sa.Text(), autoincrement=False, nullable=True),
        *_history_columns(),
        sa.PrimaryKeyConstraint("id", "transaction_id"),
    )
    _history_indexes("contract_versions_version")
    op.create_table(
        "events",
        sa.Column("id", RowId, nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("event_id", sa.String(), nullable=False),
        sa.Column("customer", sa.String(), nullable=False),
        sa.Column("site", sa.String(), nullable=False),
        sa.Column("category", sa.String(), nullable=False),
        sa.Column("time", UTCDateTime(timezone=True), nullable=False),
        sa.Column("quantity", ExactDecimal(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("late", sa.Boolean(), nullable=False),
        sa.Column("received_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source", "event_id", name="events_identity"),
    )
    op.create_table(
        "rollups",
        sa.Column("customer", sa.String(), nullable=False),
        sa.Column("site", sa.String(), nullable=False),
        sa.Column("category", sa.String(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("quantity", ExactDecimal(), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("customer", "site", "category", "day"),
    )
    op.create_table(
        "late_rollups",
        sa.Column("id", RowId, nullable=False),
        sa.Column("customer", sa.String(), nullable=False),
        sa.Column("site", sa.String(), nullable=False),
        sa.Column("category", sa.String(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("quantity", ExactDecimal(), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("billed_on", PeriodType(length=7), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "late_rollups_pending", "late_rollups", ["customer", "site", "category", "day"], unique=True,
        postgresql_where=sa.text("billed_on IS NULL"), sqlite_where=sa.text("billed_on IS NULL"),
    )
    op.create_table(
        "conflicts",
        sa.Column("id", RowId, nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("event_id", sa.String(), nullable=False),
        sa.Column("fingerprint", sa.String(length=32), nullable=False),
        sa.Column("customer", sa.String(), nullable=False),
        sa.Column("site", sa.String(), nullable=False),
        sa.Column("category", sa.String(), nullable=False),
        sa.Column("time", UTCDateTime(timezone=True), nullable=False),
        sa.Column("quantity", ExactDecimal(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("late", sa.Boolean(), nullable=False),
        sa.Column("billed_on", PeriodType(length=7), nullable=True),
        sa.Column("received_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source", "event_id", "fingerprint", name="conflicts_identity"),
    )
    op.create_table(
        "invoices",
        sa.Column("id", RowId, nullable=False),
        sa.Column("customer", sa.String(), nullable=False),
        sa.Column("period", PeriodType(length=7), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("contract_sha", sa.String(length=64), nullable=False),
        sa.Column("cap_counts_before", sa.JSON(), nullable=False),
        sa.Column("cap_counts", sa.JSON(), nullable=False),
        sa.Column("usage_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("issued_at", UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('draft', 'approved', 'issued', 'void')", name="invoices_status"),
        sa.ForeignKeyConstraint(["customer"], ["contracts.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "invoices_one_live", "invoices", ["customer", "period"], unique=True,
        postgresql_where=sa.text("status <> 'void'"), sqlite_where=sa.text("status <> 'void'"),
    )


def downgrade() -> None:
    for table in ("invoices", "conflicts", "late_rollups", "rollups", "events", "contract_versions_version",
                  "contract_versions", "contracts_version", "contracts", "transaction"):
        op.drop_table(table)
    if op.get_context().dialect.name == "postgresql":
        op.execute(sa.schema.DropSequence(sa.Sequence("transaction_id_seq")))
