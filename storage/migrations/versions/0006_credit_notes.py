"""Credit notes (lifecycle/credit_notes.py): a credit note against an issued invoice, with its own number, lines
per site, reason, who and when, and its PDF with the SHA-256. Like an issued invoice, a credit note is never
changed or deleted: triggers on both databases refuse it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

from storage.types import ExactDecimal, UTCDateTime

revision: str = "0006"
down_revision: Union[str, Sequence[str], None] = "0005"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

MESSAGE = "a credit note cannot be changed or deleted"
ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "credit_notes",
        sa.Column("id", ROW_ID, nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("invoice_id", ROW_ID, nullable=False),
        sa.Column("customer", sa.String(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("lines", sa.JSON(), nullable=False),
        sa.Column("total", ExactDecimal(), nullable=False),
        sa.Column("issued_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("issued_by", sa.String(), nullable=False),
        sa.Column("pdf", sa.LargeBinary(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["invoice_id"], ["invoices.id"]),
        sa.ForeignKeyConstraint(["customer"], ["contracts.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("number"),
    )
    op.create_index("ix_credit_notes_invoice_id", "credit_notes", ["invoice_id"])
    if op.get_context().dialect.name == "postgresql":
        op.execute(f"""CREATE FUNCTION credit_notes_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION '{MESSAGE}'; END $$""")
        op.execute("CREATE TRIGGER credit_notes_append_only BEFORE UPDATE OR DELETE ON credit_notes "
                   "FOR EACH ROW EXECUTE FUNCTION credit_notes_append_only()")
        op.execute("CREATE TRIGGER credit_notes_no_truncate BEFORE TRUNCATE ON credit_notes "
                   "FOR EACH STATEMENT EXECUTE FUNCTION credit_notes_append_only()")
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER credit_notes_no_{verb.lower()} BEFORE {verb} ON credit_notes "
                       f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END")


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP TRIGGER credit_notes_no_truncate ON credit_notes")
        op.execute("DROP TRIGGER credit_notes_append_only ON credit_notes")
        op.execute("DROP FUNCTION credit_notes_append_only()")
    op.drop_index("ix_credit_notes_invoice_id", table_name="credit_notes")
    op.drop_table("credit_notes")   # SQLite's triggers go with it
