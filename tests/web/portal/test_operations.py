"""Health, readiness, metrics and request logs (admin_app/operations.py, telemetry/): each probe answers as it
should and touches no session or audit entry; each metric family moves when what it counts happens; no log line
carries a password, a TOTP code, an API key or a session id."""

from __future__ import annotations

import datetime as dt
import json
import logging

import pytest
from conftest import TEST_SELLER
from msgspec.structs import replace
from sqlalchemy import create_engine, func, select

from admin_app import create_app, database, operations
from admin_app.access import public
from audit.log import AuditEntry
from engine.periods import Period
from identity.apikeys import create_api_key
from ingest.pipeline import ingest_events
from ledger.invoices import Selector
from lifecycle.transitions import approve, close, issue, void
from metering.events import read_events
from review.open_periods import open_period_ages
from review.reconcile import Threshold, reconcile, store_report
from settings import environment
from storage import schema
from telemetry.logs import JsonFormatter

from .conftest import CONTRACTS, CUSTOMER, PASSWORD, TEST_ACTOR, csrf_token, form_post

UTC = dt.timezone.utc
THRESHOLD = Threshold.of(environment.load("test"))
JUNE = Period(2026, 6)


def sample(app, name: str, **labels) -> float:
    return app.extensions[operations.METRICS].get_sample_value(name, labels) or 0.0


def audit_entries(sessions) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(AuditEntry))


# --- the probes ---------------------------------------------------------------------------------------------

def sign_in(client, user, clock) -> None:
    form_post(client, "/login", {"email": user.email, "password": PASSWORD})
    assert form_post(client, "/login/code", {"code": user.code(clock())}).status_code == 302


def test_healthz_answers_without_cookie_session_or_audit(portal_client, users, portal_clock, portal_sessions):
    sign_in(portal_client, users["finance"], portal_clock)
    assert "Set-Cookie" in portal_client.get("/invoices").headers   # a page refreshes the (permanent) session
    before = audit_entries(portal_sessions)
    answer = portal_client.get("/healthz")
    assert answer.status_code == 200 and answer.get_json() == {"status": "ok"}
    assert "Set-Cookie" not in answer.headers
    assert audit_entries(portal_sessions) == before


def test_readyz_says_ready_at_the_schemas_head(portal_client, portal_sessions):
    before = audit_entries(portal_sessions)
    answer = portal_client.get("/readyz")
    assert answer.status_code == 200
    assert answer.get_json() == {"status": "ready", "schema": schema.head()}
    assert "Set-Cookie" not in answer.headers and audit_entries(portal_sessions) == before


def test_readyz_is_503_with_the_reason_on_an_old_schema_or_no_database(portal_app, portal_client, tmp_path):
    portal_app.extensions[operations.SCHEMA_HEAD] = "9999_newer"
    old = portal_client.get("/readyz")
    assert old.status_code == 503 and old.get_json()["status"] == "not ready"
    assert "this version needs 9999_newer: run `billing db upgrade`" in old.get_json()["reason"]
    portal_app.extensions[database.ENGINE] = create_engine(f"sqlite:///{tmp_path}/missing/dir/billing.db")
    gone = portal_client.get("/readyz")
    assert gone.status_code == 503 and gone.get_json()["reason"] == "the database does not answer"


def test_a_refused_request_has_its_id_and_its_line_too(portal_app, signed_in_client, log_lines):
    answer = signed_in_client("customer_finance").get("/admin/users", headers={"X-Request-ID": "req-403"})
    assert answer.status_code == 403 and answer.headers["X-Request-ID"] == "req-403"
    [line] = [json.loads(line) for line in log_lines() if '"request_id": "req-403"' in line and '"request"' in line]
    assert line["status"] == 403 and line["route"] == "/admin/users"


def test_a_request_id_is_taken_when_sane_and_made_otherwise(portal_client):
    assert portal_client.get("/healthz", headers={"X-Request-ID": "lb-42.a"}).headers["X-Request-ID"] == "lb-42.a"
    insane = "no spaces, \"quotes\" or " + "x" * 200
    made = portal_client.get("/healthz", headers={"X-Request-ID": insane}).headers["X-Request-ID"]
    assert len(made) == 32 and made != portal_client.get("/healthz").headers["X-Request-ID"]


def test_metrics_on_the_test_app_and_not_on_a_production_one(portal_client, db_url, portal_sessions, monkeypatch):
    answer = portal_client.get("/metrics")
    assert answer.status_code == 200 and answer.mimetype == "text/plain"
    text = answer.get_data(as_text=True)
    for family in ("billing_events_total", "billing_ingest_batch_seconds", "billing_http_request_seconds",
                   "billing_sign_in_failures_total", "billing_lockouts_total", "billing_invoices_total",
                   "billing_reconciliations_total", "billing_open_period_age_seconds", "process_cpu_seconds_total"):
        assert f"# TYPE {family.removesuffix('_total')}" in text, family
    monkeypatch.setenv("BILLING_SECRET_KEY", "x" * 40)
    production = create_app({"BILLING_ENV": "us-prod", "DATABASE_URL": db_url})
    assert production.test_client().get("/metrics").status_code == 404
    production.extensions[database.ENGINE].dispose()


# --- each family moves --------------------------------------------------------------------------------------

def test_http_requests_are_counted_by_rule_method_and_status(portal_app, signed_in_client, users):
    client = signed_in_client("admin")
    labels = {"route": "/admin/users/<int:user_id>", "method": "GET", "status": "200"}   # the rule, not the path
    before = sample(portal_app, "billing_http_request_seconds_count", **labels)
    assert client.get(f"/admin/users/{users['finance'].id}").status_code == 200
    assert sample(portal_app, "billing_http_request_seconds_count", **labels) == before + 1
    missing = {"route": "unmatched", "method": "GET", "status": "404"}
    before = sample(portal_app, "billing_http_request_seconds_count", **missing)
    client.get("/no/such/page")
    assert sample(portal_app, "billing_http_request_seconds_count", **missing) == before + 1


def test_events_are_counted_by_outcome_reason_and_source(portal_app, portal_sessions, tmp_path):
    def count(outcome, reason="", source="api"):
        return sample(portal_app, "billing_events_total", outcome=outcome, reason=reason, source=source)

    batches = sample(portal_app, "billing_ingest_batch_seconds_count", source="api")
    before = {key: count(*key) for key in [("accepted",), ("duplicate",), ("rejected", "unknown customer")]}
    events = list(read_events(str(CONTRACTS / "acme-health.events.jsonl")))[:3]
    stranger = replace(events[0][1], id="x-1", data=replace(events[0][1].data, customer="nobody"))
    list(ingest_events(portal_sessions, events + [(99, stranger)]))
    assert count("duplicate") == before[("duplicate",)] + 3      # the fixture stored them already
    assert count("rejected", "unknown customer") == before[("rejected", "unknown customer")] + 1
    list(ingest_events(portal_sessions, [(1, replace(events[0][1], id="brand-new"))]))
    assert count("accepted") == before[("accepted",)] + 1
    assert sample(portal_app, "billing_ingest_batch_seconds_count", source="api") == batches + 2

    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n", encoding="utf-8")
    rejected = count("rejected", "malformed JSON", "file")
    list(ingest_events(portal_sessions, read_events(str(bad))))
    assert count("rejected", "malformed JSON", "file") == rejected + 1


def test_sign_in_failures_and_lockouts_are_counted(portal_app, portal_client, users, portal_clock):
    def failures(step, reason):
        return sample(portal_app, "billing_sign_in_failures_total", step=step, reason=reason)

    finance = users["finance"]
    before = {key: failures(*key) for key in [("login.password", "wrong password"),
                                               ("login.password", "unknown email"), ("login.mfa", "wrong code")]}
    lockouts = sample(portal_app, "billing_lockouts_total")
    form_post(portal_client, "/login", {"email": users["admin"].email, "password": "wrong password!"})
    form_post(portal_client, "/login", {"email": "nobody@example.com", "password": "whatever it is"})
    assert failures("login.password", "wrong password") == before[("login.password", "wrong password")] + 1
    assert failures("login.password", "unknown email") == before[("login.password", "unknown email")] + 1
    limit = portal_app.config["LOGIN_MAX_FAILURES"]
    assert form_post(portal_client, "/login", {"email": finance.email, "password": PASSWORD}).status_code == 302
    wrong = "000000" if finance.code(portal_clock()) != "000000" else "111111"
    for _ in range(limit):   # wrong codes, which only someone with the password can send, lock the account
        form_post(portal_client, "/login/code", {"code": wrong})
    assert failures("login.mfa", "wrong code") == before[("login.mfa", "wrong code")] + limit
    assert sample(portal_app, "billing_lockouts_total") == lockouts + 1


def test_invoice_transitions_and_reconciliations_are_counted_once_committed(portal_app, portal_sessions):
    def count(transition):
        return sample(portal_app, "billing_invoices_total", transition=transition)

    before = {name: count(name) for name in ("closed", "approved", "issued", "voided")}
    with portal_sessions.begin() as session:
        close(session, CUSTOMER, JUNE, seller=TEST_SELLER)
        session.rollback()   # a close that is not committed did not happen
    assert count("closed") == before["closed"]
    with portal_sessions.begin() as session:
        close(session, CUSTOMER, JUNE, seller=TEST_SELLER)
    assert count("closed") == before["closed"] + 1
    passed = sample(portal_app, "billing_reconciliations_total", result="passed")
    with portal_sessions.begin() as session:
        store_report(session, reconcile(session, CUSTOMER, JUNE, THRESHOLD), TEST_ACTOR)
    assert sample(portal_app, "billing_reconciliations_total", result="passed") == passed + 1
    with portal_sessions.begin() as session:
        approve(session, Selector(CUSTOMER, JUNE), TEST_ACTOR, threshold=THRESHOLD, seller=TEST_SELLER)
    with portal_sessions.begin() as session:
        number = issue(session, Selector(CUSTOMER, JUNE), TEST_ACTOR, threshold=THRESHOLD, prefix="TEST", seller=TEST_SELLER).invoice.number
    with portal_sessions.begin() as session:
        void(session, Selector(number=number), TEST_ACTOR, "a test of the counters")
    assert [count(name) - before[name] for name in ("closed", "approved", "issued", "voided")] == [1, 1, 1, 1]


def test_the_open_period_age_is_the_oldest_ended_period_without_an_issued_invoice(portal_app, portal_sessions):
    # acme-health (from April 2026, London) has issued April and May, and usage until July; northwind (from
    # February) has no usage stored: it is counted up to its latest usage, so it has nothing open.
    now = dt.datetime(2026, 7, 2, tzinfo=UTC)
    with portal_sessions() as session:
        ages = open_period_ages(session, now)
    june_end = dt.datetime(2026, 6, 30, 23, tzinfo=UTC)   # midnight in London, in summer time
    assert ages[CUSTOMER] == (now - june_end).total_seconds()
    assert ages["northwind"] == 0
    with portal_sessions() as session:
        assert open_period_ages(session, dt.datetime(2026, 6, 15, tzinfo=UTC))[CUSTOMER] == 0
    scraped = sample(portal_app, "billing_open_period_age_seconds", customer=CUSTOMER)
    assert scraped > 0   # asked of the app's database at scrape time, with today's clock


# --- the logs -----------------------------------------------------------------------------------------------

@pytest.fixture
def log_lines(caplog):
    caplog.set_level(logging.DEBUG)
    formatter = JsonFormatter("test")
    return lambda: [formatter.format(record) for record in caplog.records]


def test_one_line_per_request_with_its_id_route_status_and_actor(signed_in_client, log_lines):
    client = signed_in_client("finance")
    answer = client.get("/invoices", headers={"X-Request-ID": "req-7"})
    lines = [json.loads(line) for line in log_lines() if '"message": "request"' in line]
    [line] = [line for line in lines if line.get("request_id") == "req-7"]
    assert answer.headers["X-Request-ID"] == "req-7"
    assert {key: line[key] for key in ("environment", "route", "method", "status", "actor")} == {
        "environment": "test", "route": "/invoices", "method": "GET", "status": 200, "actor": "finance@example.com"}
    assert line["latency_ms"] >= 0 and line["time"].endswith("+00:00")


def test_an_error_is_logged_with_its_traceback_and_not_answered(db_url, portal_sessions, monkeypatch, log_lines):
    monkeypatch.setenv("BILLING_SECRET_KEY", "test-only")
    app = create_app({"BILLING_ENV": "test", "DATABASE_URL": db_url})

    def broken():
        raise ValueError("the secret sauce is missing")

    app.add_url_rule("/broken", "broken", public(broken))
    answer = app.test_client().get("/broken", headers={"X-Request-ID": "req-err"})
    assert answer.status_code == 500
    assert "secret sauce" not in answer.get_data(as_text=True) and "Traceback" not in answer.get_data(as_text=True)
    errors = [json.loads(line) for line in log_lines() if '"traceback"' in line]
    assert errors and errors[0]["request_id"] == "req-err" and "the secret sauce is missing" in errors[0]["traceback"]
    app.extensions[database.ENGINE].dispose()


def test_no_log_line_carries_a_secret(portal_app, portal_client, portal_sessions, users, portal_clock, log_lines):
    finance = users["finance"]
    code = finance.code(portal_clock())
    sign_in(portal_client, finance, portal_clock)
    cookie = portal_client.get_cookie("session").value
    token = portal_app.session_interface.get_signing_serializer(portal_app).loads(cookie)["_user_id"]
    new_password = "a brand new passphrase 42"
    page = portal_client.get("/account/password").get_data(as_text=True)
    changed = portal_client.post("/account/password", data={
        "current_password": PASSWORD, "new_password": new_password, "confirm_password": new_password,
        "csrf_token": csrf_token(page)})
    assert changed.status_code == 302
    with portal_sessions.begin() as session:
        key = create_api_key(session, CUSTOMER, "platform/main").key
    event = {"specversion": "1.0", "id": "log-1", "source": "platform/main", "type": "unit.processed",
             "time": "2026-06-02T12:00:00Z", "data": {"customer": CUSTOMER, "site": "lon-01",
                                                      "category": "standard", "quantity": 1}}
    posted = portal_client.post("/api/v1/events", json=event, headers={"Authorization": f"Bearer {key}"},
                                content_type="application/cloudevents+json")
    assert posted.status_code == 200
    logging.getLogger("billing.test").info("a careless line: Authorization: Bearer %s", key,
                                           extra={"password": PASSWORD, "details": {"totp_code": code}})

    lines = log_lines()
    prefix = key[:len("bk_") + 12]
    assert any('"route": "/api/v1/events"' in line and f'"actor": "apikey:{prefix}"' in line for line in lines)
    assert any('"route": "/login/code"' in line for line in lines)
    assert any('"route": "/account/password"' in line for line in lines)
    for secret in (PASSWORD, new_password, code, key, key.split("_", 2)[2], token, cookie, finance.secret):
        assert not [line for line in lines if secret in line], secret
