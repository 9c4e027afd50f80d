"""The invoice lifecycle (lifecycle/transitions.py): numbers, approval and issue by whom, the issued PDF, voids
recorded beside the invoice, numbering counters; the database refuses to change an issued invoice.

An issued invoice row, its PDF and a void are never updated or deleted: triggers
on both databases refuse it, whatever the code path. A voided invoice keeps its
row as issued, so the one-live-invoice index becomes one open (draft or
approved) invoice per customer and period.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

from storage.types import UTCDateTime

revision: str = "0004"
down_revision: Union[str, Sequence[str], None] = "0003"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

FROZEN_INVOICE = "an issued invoice cannot be changed or deleted"
APPEND_ONLY = {"invoice_pdfs": "the PDF of an issued invoice cannot be changed or deleted",
               "invoice_voids": "a void cannot be changed or deleted"}
OPEN = "status IN ('draft', 'approved')"


def upgrade() -> None:
    with op.batch_alter_table("invoices") as batch:
        batch.add_column(sa.Column("approved_at", UTCDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("approved_by", sa.String(), nullable=True))
        batch.add_column(sa.Column("issued_by", sa.String(), nullable=True))
        batch.add_column(sa.Column("number", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("replaces_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                                   nullable=True))
        batch.create_unique_constraint("invoices_number", ["number"])
        batch.create_foreign_key("invoices_replaces", "invoices", ["replaces_id"], ["id"])
    op.drop_index("invoices_one_live", table_name="invoices")
    op.create_index("invoices_one_open", "invoices", ["customer", "period"], unique=True,
                    postgresql_where=sa.text(OPEN), sqlite_where=sa.text(OPEN))
    op.create_table(
        "invoice_pdfs",
        sa.Column("invoice_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("pdf", sa.LargeBinary(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["invoice_id"], ["invoices.id"]),
        sa.PrimaryKeyConstraint("invoice_id"),
    )
    op.create_table(
        "invoice_voids",
        sa.Column("invoice_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("voided_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("voided_by", sa.String(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["invoice_id"], ["invoices.id"]),
        sa.PrimaryKeyConstraint("invoice_id"),
    )
    op.create_table(
        "invoice_counters",
        sa.Column("environment", sa.String(), nullable=False),
        sa.Column("year", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("environment", "year"),
    )
    if op.get_context().dialect.name == "postgresql":
        op.execute(f"""CREATE FUNCTION invoices_issued_frozen() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN IF OLD.status = 'issued' THEN RAISE EXCEPTION '{FROZEN_INVOICE}'; END IF;
            IF TG_OP = 'DELETE' THEN RETURN OLD; END IF; RETURN NEW; END $$""")
        op.execute("CREATE TRIGGER invoices_issued_frozen BEFORE UPDATE OR DELETE ON invoices "
                   "FOR EACH ROW EXECUTE FUNCTION invoices_issued_frozen()")
        for table, message in APPEND_ONLY.items():
            op.execute(f"""CREATE FUNCTION {table}_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN RAISE EXCEPTION '{message}'; END $$""")
            op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                       f"FOR EACH ROW EXECUTE FUNCTION {table}_append_only()")
        for table in ("invoices", *APPEND_ONLY):
            function = "invoices_issued_frozen" if table == "invoices" else f"{table}_append_only"
            op.execute(f"CREATE FUNCTION {table}_no_truncate() RETURNS trigger LANGUAGE plpgsql AS $$ "
                       f"BEGIN RAISE EXCEPTION '{table} cannot be truncated'; END $$")
            op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                       f"FOR EACH STATEMENT EXECUTE FUNCTION {table}_no_truncate()")
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER invoices_issued_no_{verb.lower()} BEFORE {verb} ON invoices "
                       f"WHEN OLD.status = 'issued' BEGIN SELECT RAISE(ABORT, '{FROZEN_INVOICE}'); END")
            for table, message in APPEND_ONLY.items():
                op.execute(f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                           f"BEGIN SELECT RAISE(ABORT, '{message}'); END")


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        for table in ("invoices", *APPEND_ONLY):
            op.execute(f"DROP TRIGGER {table}_no_truncate ON {table}")
            op.execute(f"DROP FUNCTION {table}_no_truncate()")
        op.execute("DROP TRIGGER invoices_issued_frozen ON invoices")
        op.execute("DROP FUNCTION invoices_issued_frozen()")
    else:
        for verb in ("update", "delete"):
            op.execute(f"DROP TRIGGER invoices_issued_no_{verb}")
    for table in ("invoice_counters", "invoice_voids", "invoice_pdfs"):
        op.drop_table(table)   # their own triggers go with them
    op.drop_index("invoices_one_open", table_name="invoices")
    op.create_index("invoices_one_live", "invoices", ["customer", "period"], unique=True,
                    postgresql_where=sa.text("status <> 'void'"), sqlite_where=sa.text("status <> 'void'"))
    with op.batch_alter_table("invoices") as batch:
        batch.drop_constraint("invoices_replaces", type_="foreignkey")
        batch.drop_constraint("invoices_number", type_="unique")
        for column in ("replaces_id", "number", "issued_by", "approved_by", "approved_at"):
            batch.drop_column(column)
