"""What is frozen cannot be replaced either; failed sign-ins are counted per email quickly.

SQLite's `INSERT OR REPLACE` (and `REPLACE`) deletes a row that is in the way
of the new one without firing its DELETE triggers (recursive_triggers is off),
so the triggers of 0003, 0004 and 0006 did not stop it from replacing an issued
invoice, its PDF, a void, a credit note or an audit entry. A BEFORE INSERT
trigger on each refuses an insert whose key a frozen row already holds, whichever
conflict resolution the statement names, and from any client (the sqlite3
shell included). PostgreSQL has no REPLACE; its `ON CONFLICT DO UPDATE` is an
update, refused by the BEFORE UPDATE triggers already there.

The index on audit_log (resource, at) serves identity/signin.py, which counts
the failed passwords of an email over the last minutes.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""
from typing import Sequence, Union

from alembic import op

revision: str = "0007"
down_revision: Union[str, Sequence[str], None] = "0006"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# table → (the condition under which an existing row refuses the new one, the message, as the earlier triggers say)
FROZEN = {
    "invoices": ("status = 'issued' AND (id = NEW.id OR number = NEW.number)",
                 "an issued invoice cannot be changed or deleted"),
    "invoice_pdfs": ("invoice_id = NEW.invoice_id", "the PDF of an issued invoice cannot be changed or deleted"),
    "invoice_voids": ("invoice_id = NEW.invoice_id", "a void cannot be changed or deleted"),
    "credit_notes": ("id = NEW.id OR number = NEW.number", "a credit note cannot be changed or deleted"),
    "audit_log": ("sequence = NEW.sequence", "the audit log is append-only"),
}


def upgrade() -> None:
    op.create_index("audit_log_resource", "audit_log", ["resource", "at"])
    if op.get_context().dialect.name != "sqlite":
        return
    for table, (held, message) in FROZEN.items():
        op.execute(f"CREATE TRIGGER {table}_no_replace BEFORE INSERT ON {table} "
                   f"WHEN EXISTS (SELECT 1 FROM {table} WHERE {held}) "
                   f"BEGIN SELECT RAISE(ABORT, '{message}'); END")


def downgrade() -> None:
    if op.get_context().dialect.name == "sqlite":
        for table in FROZEN:
            op.execute(f"DROP TRIGGER {table}_no_replace")
    op.drop_index("audit_log_resource", table_name="audit_log")
