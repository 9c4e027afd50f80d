"""Credit notes carry tax (lifecycle/credit_notes.py, interfaces §4 Corrections): the tax credited with the net,
at the credited invoice's treatment, rate and tax point; null for a credit note of an invoice without a tax
section (and for every credit note made before this revision, which credited no tax). The total stays what is
credited in all: the lines (the net) plus this tax.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("credit_notes", sa.Column("tax", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("credit_notes") as batch:
        batch.drop_column("tax")
