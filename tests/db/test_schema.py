"""`billing db upgrade`, the database that cannot be reached, and mistakes at the command line."""

from __future__ import annotations

import json
import multiprocessing

import pytest

from storage import schema

from .conftest import EXAMPLES


def test_upgrade_creates_then_finds_the_schema_current(cli):
    status, out, _ = cli("db", "upgrade")
    assert status == 0 and f"created the schema (revision {schema.head()})" in out
    status, out, _ = cli("db", "upgrade")
    assert status == 0 and f"the schema is current (revision {schema.head()})" in out


def test_a_database_without_the_schema_says_what_to_run(cli, db_url):
    if db_url.startswith("sqlite"):   # the embedded database is created on first use
        assert cli("contract", "save", EXAMPLES / "acme-health" / "contract.pricing")[0] == 0
        return
    status, out, err = cli("contract", "save", EXAMPLES / "acme-health" / "contract.pricing")
    assert status == 2 and "has no billing schema; run `billing db upgrade`" in err


@pytest.mark.parametrize("url, words", [
    ("postgresql+psycopg://postgres@127.0.0.1:1/nothing", "cannot reach the database postgresql+psycopg://"),
    ("postgresql+psycopg://billing:secret@127.0.0.1:1/nothing", "billing:***@127.0.0.1:1"),
    ("sqlite:////no/such/directory/billing.db", "database sqlite:////no/such/directory"),   # cannot reach / is no
    ("not a url", "is not a database URL"),
])
def test_a_database_that_cannot_be_reached_is_one_clear_line(cli, monkeypatch, url, words):
    monkeypatch.setenv("BILLING_DATABASE_URL", url)
    for args in (("db", "upgrade"), ("invoice", "--customer", "acme-health", "--period", "2026-05"),
                 ("ingest", EXAMPLES / "acme-health" / "events.jsonl")):
        status, out, err = cli(*args)
        assert status == 2, err
        assert words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
        assert "secret" not in err
        assert not multiprocessing.active_children()   # the ingest's reader, started first, was stopped


def test_invoice_mistakes(cli):
    assert cli("db", "upgrade")[0] == 0
    status, _, err = cli("invoice", "--customer", "nobody", "--period", "2026-05")
    assert status == 1 and "no contract 'nobody' in the database" in err
    assert cli("contract", "save", EXAMPLES / "acme-health" / "contract.pricing")[0] == 0
    status, _, err = cli("invoice", "--customer", "acme-health", "--period", "2025-05")
    assert status == 1 and "outside the contract" in err
    status, _, err = cli("invoice", "--customer", "acme-health", "--period", "May")
    assert status == 2 and "--period" in err
    status, _, err = cli("invoice", "--customer", "acme-health", "--period", "2026-05",
                         "--events", EXAMPLES / "acme-health" / "events.jsonl")
    assert status == 2 and "leave out --contract and --events" in err


def test_text_and_output_file(cli, tmp_path):
    assert cli("db", "upgrade")[0] == 0
    assert cli("contract", "save", EXAMPLES / "acme-health" / "contract.pricing")[0] == 0
    assert cli("ingest", EXAMPLES / "acme-health" / "events.jsonl")[0] == 0
    status, out, _ = cli("invoice", "--customer", "acme-health", "--period", "2026-05", "--format", "text")
    assert status == 0 and out.startswith("Invoice for Acme Health Ltd (acme-health), period 2026-05")
    status, out, _ = cli("invoice", "--customer", "acme-health", "--period", "2026-05",
                         "--output", tmp_path / "may.json")
    assert status == 0 and out == ""
    assert json.loads((tmp_path / "may.json").read_text())["period"] == "2026-05"


def test_the_schema_check_finds_the_head_alembic_finds():
    from alembic.script import ScriptDirectory

    assert schema.head() == ScriptDirectory.from_config(schema.alembic_config()).get_current_head()
