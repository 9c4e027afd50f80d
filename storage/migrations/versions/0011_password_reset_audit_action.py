"""An admin's password reset (identity/accounts.py: `must_change_password`, kept out of the users' history like
the other sign-in state) and the audit viewer's action filter and sort (audit/log.py: index on action, at).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: Union[str, Sequence[str], None] = "0010"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column("users", sa.Column("must_change_password", sa.Boolean(), nullable=False,
                                     server_default=sa.false()))
    op.create_index("audit_log_action", "audit_log", ["action", "at"])


def downgrade() -> None:
    op.drop_index("audit_log_action", table_name="audit_log")
    with op.batch_alter_table("users") as users:
        users.drop_column("must_change_password")
