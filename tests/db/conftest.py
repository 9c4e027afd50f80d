"""Fixtures for the database layer: every test runs on SQLite, and on PostgreSQL too when
BILLING_TEST_POSTGRES_URL is set (for example postgresql+psycopg://postgres@127.0.0.1:5432/test).

For PostgreSQL the session creates a database of its own and drops it at the end;
each test gets a fresh schema in it (through the URL's search_path), so tests
never see each other's rows. A URL that is set but cannot be reached fails the
tests: a CI that meant to test PostgreSQL must not pass without it.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from billing.cli import main
from storage import db, schema

POSTGRES_URL = os.environ.get("BILLING_TEST_POSTGRES_URL")
BACKENDS = ["sqlite", "postgresql"] if POSTGRES_URL else ["sqlite"]
EXAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "examples"


@pytest.fixture(scope="session")
def postgres_database():
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    name = f"billing_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except DBAPIError as exc:
        pytest.fail(f"BILLING_TEST_POSTGRES_URL is set but PostgreSQL cannot be used: {exc.orig}", pytrace=False)
    yield make_url(POSTGRES_URL).set(database=name)
    with admin.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path, monkeypatch) -> str:
    """A fresh, empty database; BILLING_DATABASE_URL names it for the commands under test."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'billing.db'}"
        monkeypatch.setenv("BILLING_DATABASE_URL", url)
        yield url
        return
    base = request.getfixturevalue("postgres_database")
    name = f"t_{uuid.uuid4().hex[:12]}"
    engine = create_engine(base)
    with engine.begin() as connection:
        connection.exec_driver_sql(f'CREATE SCHEMA "{name}"')
    url = base.update_query_dict({"options": f"-csearch_path={name}"}).render_as_string(hide_password=False)
    monkeypatch.setenv("BILLING_DATABASE_URL", url)
    yield url
    with engine.begin() as connection:
        connection.exec_driver_sql(f'DROP SCHEMA "{name}" CASCADE')
    engine.dispose()


@pytest.fixture
def engine(db_url):
    engine = db.connect(db_url)
    schema.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine):
    return db.session_factory(engine)


@pytest.fixture
def cli(db_url, capsys, tmp_path, monkeypatch):
    """Runs `billing ARGS…` in this process, in tmp_path: (exit status, stdout, stderr)."""
    monkeypatch.chdir(tmp_path)

    def run(*args) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            status = main([str(a) for a in args])
        except SystemExit as exc:   # argparse's own exit on a usage error
            status = exc.code
        out, err = capsys.readouterr()
        return status, out, err

    return run


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path
