"""GBP rates recorded by finance (ledger/fx.py, `billing fx set`): what a non-GBP invoice with UK VAT states
its VAT in GBP at.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

from storage.types import ExactDecimal, UTCDateTime

revision: str = "0009"
down_revision: Union[str, Sequence[str], None] = "0008"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "fx_rates",
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("on", sa.Date(), nullable=False),
        sa.Column("gbp", ExactDecimal(), nullable=False),
        sa.Column("recorded_by", sa.String(), nullable=False),
        sa.Column("recorded_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("currency", "on"),
    )


def downgrade() -> None:
    op.drop_table("fx_rates")
