"""Alembic's entry point: migrate the database whose connection `storage.schema` hands over.

There is no alembic.ini and no URL of its own: `billing db upgrade` (storage/schema.py
`upgrade`) opens the connection from the environment's settings and passes it in.
"""

from alembic import context

from storage.base import Base


def run(connection) -> None:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True,
                      compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is None:
    raise SystemExit("the migrations run through `billing db upgrade` (storage.schema.upgrade), which opens the database")
run(connection)
