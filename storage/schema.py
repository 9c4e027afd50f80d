"""Creating and migrating the schema with Alembic, configured here rather than in an alembic.ini.

The migrations ship inside the package (storage/migrations), so `billing db upgrade`
works from any directory and from an installed wheel.

    upgrade(engine)          # to the newest revision; returns (revision before, revision now)
    require_current(engine)  # before any other command: SchemaOutOfDate unless the schema is current

Every command checks the schema, so that check does not import Alembic (which
takes longer to import than the rest of a command's work): it reads the
revision numbers from the migration files itself. Only `upgrade` runs Alembic.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

from storage.db import DatabaseUnavailable, shown

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_REVISION_LINE = re.compile(r"^(revision|down_revision)\b[^=\n]*=\s*(.+?)\s*$", re.MULTILINE)


class SchemaOutOfDate(DatabaseUnavailable):
    """The database has no billing schema, or an older one."""


def alembic_config(connection: Connection | None = None):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head() -> str:
    """The newest revision: the one no other migration names as its `down_revision`."""
    revisions, parents = set(), set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        fields = dict(_REVISION_LINE.findall(path.read_text(encoding="utf-8")))
        revisions.add(ast.literal_eval(fields["revision"]))
        down = ast.literal_eval(fields["down_revision"])
        parents.update(down if isinstance(down, (tuple, list)) else [down] if down else [])
    heads = revisions - parents
    if len(heads) != 1:
        raise RuntimeError(f"the migrations in {MIGRATIONS} have {len(heads)} heads ({sorted(heads)}); merge them")
    return heads.pop()


def current(connection: Connection) -> str | None:
    if not inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def upgrade(engine: Engine) -> tuple[str | None, str]:
    from alembic import command

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
