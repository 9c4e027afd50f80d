"""Customer billing profiles (ledger/profiles.py), with sqlalchemy-continuum's history table.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

from storage.types import UTCDateTime

revision: str = "0008"
down_revision: Union[str, Sequence[str], None] = "0007"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

TREATMENTS = "tax_treatment IN ('uk_standard', 'reverse_charge', 'exempt', 'none')"


def _columns(history: bool) -> list[sa.Column]:
    """The profile's columns; in the history copy every column but the key may be null, as continuum makes it."""
    nullable = history
    extra = {"autoincrement": False} if history else {}
    return [
        sa.Column("contract_id", sa.String(), nullable=False, **extra),
        sa.Column("name", sa.Text(), nullable=nullable, **extra),
        sa.Column("address", sa.JSON(), nullable=nullable, **extra),
        sa.Column("tax_id", sa.String(length=32), nullable=nullable, **extra),
        sa.Column("tax_treatment", sa.String(length=16), nullable=nullable, **extra),
        sa.Column("exempt_reason", sa.Text(), nullable=nullable, **extra),
        sa.Column("purchase_order", sa.Text(), nullable=nullable, **extra),
        sa.Column("terms_days", sa.Integer(), nullable=True, **extra),
        sa.Column("revision", sa.Integer(), nullable=nullable, **extra),
        sa.Column("saved_by", sa.String(), nullable=nullable, **extra),
        sa.Column("saved_at", UTCDateTime(timezone=True), nullable=nullable, **extra),
    ]


def upgrade() -> None:
    op.create_table(
        "customer_profiles",
        *_columns(history=False),
        sa.ForeignKeyConstraint(["contract_id"], ["contracts.id"]),
        sa.CheckConstraint(TREATMENTS, name="customer_profiles_treatment"),
        sa.PrimaryKeyConstraint("contract_id"),
    )
    op.create_table(
        "customer_profiles_version",
        *_columns(history=True),
        sa.Column("transaction_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("end_transaction_id", sa.BigInteger(), nullable=True),
        sa.Column("operation_type", sa.SmallInteger(), nullable=False),
        sa.PrimaryKeyConstraint("contract_id", "transaction_id"),
    )
    table = "customer_profiles_version"
    op.create_index(f"ix_{table}_end_transaction_id", table, ["end_transaction_id"])
    op.create_index(f"ix_{table}_operation_type", table, ["operation_type"])
    op.create_index(f"ix_{table}_transaction_id", table, ["transaction_id"])


def downgrade() -> None:
    op.drop_table("customer_profiles_version")
    op.drop_table("customer_profiles")
