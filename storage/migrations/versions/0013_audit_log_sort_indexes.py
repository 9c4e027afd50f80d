"""The audit viewer's sorts (audit/log.py `SORTS`): an index per sortable column with the sequence after it, so a
page of any order, and the page after any entry, is read from an index (bench/list_audit.py). They replace 0011's
(action, at).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05
"""
from typing import Sequence, Union

from alembic import op

revision: str = "0013"
down_revision: Union[str, Sequence[str], None] = "0012"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

SORTED = ("actor", "action", "resource", "outcome")


def upgrade() -> None:
    op.drop_index("audit_log_action", table_name="audit_log")
    for column in SORTED:
        op.create_index(f"audit_log_by_{column}", "audit_log", [column, "sequence"])


def downgrade() -> None:
    for column in SORTED:
        op.drop_index(f"audit_log_by_{column}", table_name="audit_log")
    op.create_index("audit_log_action", "audit_log", ["action", "at"])
