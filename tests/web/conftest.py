"""Fixtures for the event API: the app on a fresh database (SQLite, and PostgreSQL when
BILLING_TEST_POSTGRES_URL is set, through tests/db's `db_url`), a customer and its API key."""

from __future__ import annotations

import pytest
from db.conftest import db_url, postgres_database  # noqa: F401  (tests/db/conftest.py: one database per test)
from db.support import TINY

from admin_app import create_app
from dsl.compile import compile_source
from identity.apikeys import create_api_key
from ledger.contracts import save_contract
from storage.db import connect, session_factory
from storage.schema import upgrade

API_SOURCE = "platform/test"


@pytest.fixture
def api_sessions(db_url):
    engine = connect(db_url)
    upgrade(engine)
    with session_factory(engine).begin() as session:
        save_contract(session, compile_source(TINY.encode(), "tiny.pricing"), author="test")
    yield session_factory(engine)
    engine.dispose()


@pytest.fixture
def api_key(api_sessions) -> str:
    """A live key for customer `tiny`, source `platform/test`."""
    with api_sessions.begin() as session:
        return create_api_key(session, "tiny", API_SOURCE).key


@pytest.fixture
def api_app(db_url, api_sessions, monkeypatch):
    monkeypatch.setenv("BILLING_SECRET_KEY", "test-only")
    app = create_app({"TESTING": True, "BILLING_ENV": "test", "DATABASE_URL": db_url})
    yield app
    app.extensions["billing.engine"].dispose()


@pytest.fixture
def api_client(api_app):
    return api_app.test_client()
