"""Creating and migrating the schema with Alembic, configured here rather than in an alembic.ini.

The migrations ship inside the package (store/migrations), so `billing db upgrade`
works from any directory and from an installed wheel.

    upgrade(engine)          # to the newest revision; returns (revision before, revision now)
    require_current(engine)  # before any other command: SchemaOutOfDate unless the schema is current
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

from store.db import DatabaseUnavailable, shown

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class SchemaOutOfDate(DatabaseUnavailable):
    """The database has no billing schema, or an older one."""


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head() -> str:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> tuple[str | None, str]:
    with engine.begin() as connection:
        before = current(connection)
        command.upgrade(alembic_config(connection), "head")
        return before, current(connection)


def require_current(engine: Engine) -> None:
    """An empty SQLite file gets the schema (the embedded database is created on first use)."""
    with engine.connect() as connection:
        revision = current(connection)
    if revision == head():
        return
    if revision is None and engine.url.get_backend_name() == "sqlite":
        upgrade(engine)
        return
    state = "has no billing schema" if revision is None else f"has an older schema (revision {revision})"
    raise SchemaOutOfDate(f"the database {shown(engine.url)} {state}; run `billing db upgrade`")
