"""The log lines' redaction (telemetry/logs.py) and what stops `billing serve` in production
(settings.environment.serving_problems)."""

from __future__ import annotations

import dataclasses
import json
import logging

import pytest

from settings import environment
from telemetry.logs import REDACTED, JsonFormatter, redacted, scrub

KEY = "bk_0123456789ab_Zq3v-abcdefghijklmnopqrstuvwxyz0123456789ABCD"


def test_fields_named_for_a_secret_are_redacted_whatever_they_hold():
    fields = {"password": "hunter2hunter2", "new_password": "x", "code": "123456", "totp_code": 654321,
              "api_key": "anything", "session_id": 12, "secret_key": "s", "Authorization": "Basic abc",
              "status_code": 200, "customer": "acme-health", "details": {"recovery_code": "abcd-efgh-jkmn"}}
    assert redacted(fields) == {
        "password": REDACTED, "new_password": REDACTED, "code": REDACTED, "totp_code": REDACTED,
        "api_key": REDACTED, "session_id": REDACTED, "secret_key": REDACTED, "Authorization": REDACTED,
        "status_code": 200, "customer": "acme-health", "details": {"recovery_code": REDACTED}}


def test_values_that_look_like_a_secret_are_cut_to_their_public_part():
    assert scrub(f"key {KEY} refused") == f"key bk_0123456789ab_{REDACTED} refused"
    assert scrub(f"Authorization: Bearer {KEY}") == f"Authorization: Bearer {REDACTED}"
    assert scrub("postgresql+psycopg://billing:s3cr3t@db:5432/billing") == \
        f"postgresql+psycopg://billing:{REDACTED}@db:5432/billing"


def test_a_line_is_one_json_object_with_its_traceback_scrubbed():
    try:
        raise ValueError(f"bad key {KEY}")
    except ValueError:
        record = logging.LogRecord("billing.test", logging.ERROR, __file__, 1, "failed with %s", (KEY,),
                                   exc_info=__import__("sys").exc_info())
    record.password = "hunter2hunter2"
    line = JsonFormatter("uk-prod").format(record)
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["environment"] == "uk-prod" and parsed["level"] == "ERROR" and parsed["password"] == REDACTED
    assert "ValueError" in parsed["traceback"] and KEY.split("_")[-1] not in line


PRODUCTION_SECRET = "Yq3vN8pXkR2mT7wJd5sL0aZcF4hB9uEeG6iO1nVyK_Q"   # secrets.token_urlsafe(32)


def production(**overrides) -> environment.Environment:
    env = {"BILLING_SECRET_KEY": PRODUCTION_SECRET, "BILLING_DATABASE_URL": "postgresql+psycopg://billing@db/us",
           "BILLING_AUDIT_KEY": "a different secret, of the audit log's own"}
    return environment.load("us-prod", {**env, **overrides})


def test_production_serves_with_its_own_secret_and_database():
    assert environment.serving_problems(production()) == []
    hexadecimal = "5e0c3b8f1a9d27e64f0b83c5d2a17e9c6b4f08a3d5e21c7b9f6a04e8d3c1b257"   # openssl rand -hex 32
    assert environment.serving_problems(production(BILLING_SECRET_KEY=hexadecimal)) == []
    assert environment.serving_problems(environment.load("test", {"BILLING_SECRET_KEY": "test-only"})) == []


@pytest.mark.parametrize("overrides, problem", [
    ({"BILLING_SECRET_KEY": "test-" + "k" * 40}, "BILLING_SECRET_KEY is a test secret"),
    ({"BILLING_SECRET_KEY": "a"}, "BILLING_SECRET_KEY is too weak"),
    ({"BILLING_SECRET_KEY": PRODUCTION_SECRET[:42]}, "BILLING_SECRET_KEY is too weak"),
    ({"BILLING_SECRET_KEY": "k" * 64}, "BILLING_SECRET_KEY is too weak"),
    ({"BILLING_SECRET_KEY": "abc123" * 10}, "BILLING_SECRET_KEY is too weak"),
    ({"BILLING_DATABASE_URL": "sqlite:///billing.db"}, "the database is test's"),
    ({"BILLING_DATABASE_URL": "sqlite:////srv/other.db"}, "the database is a SQLite file's"),
    ({"BILLING_DATABASE_URL": "postgresql+psycopg://billing@db.uk-prod.internal:5432/billing"},
     "the database is uk-prod's"),
])
def test_production_refuses_a_test_secret_or_another_environments_database(overrides, problem):
    [said] = environment.serving_problems(production(**overrides))
    assert said.startswith(problem)


def test_production_anchors_its_audit_chain_with_a_key_of_its_own():
    [said] = environment.serving_problems(production(BILLING_AUDIT_KEY=""))
    assert said.startswith("the audit chain is not anchored outside the database")
    [said] = environment.serving_problems(production(BILLING_AUDIT_KEY=PRODUCTION_SECRET))
    assert said.startswith("BILLING_AUDIT_KEY is BILLING_SECRET_KEY")


def test_production_names_the_proxy_whose_forwarded_for_it_believes():
    unnamed = dataclasses.replace(production(), trusted_proxy=None)
    [said] = environment.serving_problems(unnamed)
    assert said.startswith("trusted_proxies = 1 names no trusted_proxy")


def test_the_metrics_port_can_be_moved_per_host():
    assert production().metrics_port == 9464 and production(BILLING_METRICS_PORT="19464").metrics_port == 19464
    assert environment.load("test", {}).metrics_path == "/metrics"
