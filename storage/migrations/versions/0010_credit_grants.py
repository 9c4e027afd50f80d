"""Credit grants and what issued invoices drew from them (ledger/grants.py).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

from storage.types import ExactDecimal, PeriodType, UTCDateTime

revision: str = "0010"
down_revision: Union[str, Sequence[str], None] = "0009"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "credit_grants",
        sa.Column("id", RowId, autoincrement=True, nullable=False),
        sa.Column("customer", sa.String(), nullable=False),
        sa.Column("amount", ExactDecimal(), nullable=False),
        sa.Column("from_period", PeriodType(), nullable=False),
        sa.Column("expires", sa.Date(), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("granted_by", sa.String(), nullable=False),
        sa.Column("granted_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_by", sa.String(), nullable=True),
        sa.Column("revoke_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["customer"], ["contracts.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_credit_grants_customer", "credit_grants", ["customer"])
    op.create_table(
        "grant_draws",
        sa.Column("grant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("invoice_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("amount", ExactDecimal(), nullable=False),
        sa.ForeignKeyConstraint(["grant_id"], ["credit_grants.id"]),
        sa.ForeignKeyConstraint(["invoice_id"], ["invoices.id"]),
        sa.PrimaryKeyConstraint("grant_id", "invoice_id"),
    )


def downgrade() -> None:
    op.drop_table("grant_draws")
    op.drop_index("ix_credit_grants_customer", "credit_grants")
    op.drop_table("credit_grants")
