"""Alembic's entry point: migrate the database `storage.schema` hands over (or BILLING_DATABASE_URL)."""

from alembic import context

from storage import db
from storage.base import Base


def run(connection) -> None:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True,
                      compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    run(connection)
else:
    with db.connect().begin() as connection:
        run(connection)
