"""POST /api/v1/events: keys, bodies, every event's result, re-sending, late usage, and the OpenAPI document.

Every answer a test gets is checked against the schema the OpenAPI document gives
for its status, so the document cannot drift from what the endpoint says.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from decimal import Decimal
from pathlib import Path

import jsonschema
import pytest
from db.conftest import cli  # noqa: F401  (`billing ARGS…` in this process)
from db.support import event, stored_state
from flask import Flask
from sqlalchemy import select

from admin_app import api, auth, create_app, database
from audit.log import AuditEntry
from engine.periods import Period
from identity.apikeys import ApiKey, key_hash, revoke_api_key
from ledger.issuing import record_issued_invoice
from metering.models import UsageEvent

from .conftest import API_SOURCE

SINGLE, BATCH = "application/cloudevents+json", "application/cloudevents-batch+json"
APRIL, MAY = "2026-04-10T10:00:00Z", "2026-05-03T10:00:00Z"


def cloud_event(number, time=MAY, quantity="1", **fields) -> dict:
    return json.loads(event(number, time, quantity, **{"source": API_SOURCE, **fields}))


def assert_documented(document: dict, response) -> None:
    """The answer's status and media type are documented for the endpoint, and its body matches their schema."""
    documented = document["paths"]["/api/v1/events"]["post"]["responses"]
    assert str(response.status_code) in documented, f"undocumented status {response.status_code}"
    schema = documented[str(response.status_code)]["content"][response.mimetype]["schema"]
    jsonschema.Draft202012Validator({**schema, "components": document["components"]}).validate(response.get_json())


@pytest.fixture
def api_document(api_client) -> dict:
    response = api_client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    return response.get_json()


@pytest.fixture
def api_post(api_client, api_document, api_key):
    """POST a body (a dict or list is sent as JSON) with the fixture's key unless told otherwise."""

    def post(body, *, content_type=BATCH, key=api_key, client=api_client):
        headers = {} if key is None else {"Authorization": f"Bearer {key}"}
        data = body if isinstance(body, (str, bytes)) else json.dumps(body)
        response = client.post("/api/v1/events", data=data, headers=headers, content_type=content_type)
        assert_documented(api_document, response)
        return response

    return post


def statuses(response) -> list[str]:
    return [result["status"] for result in response.get_json()["results"]]


def test_one_event_is_stored_and_counted(api_post, api_sessions):
    response = api_post(cloud_event(1, quantity="2.5"), content_type=SINGLE)
    assert response.status_code == 200
    assert response.get_json() == {
        "results": [{"index": 0, "id": "evt-1", "source": API_SOURCE, "status": "accepted"}],
        "summary": {"accepted": 1, "late": 0, "duplicate": 0, "conflict": 0, "rejected": 0},
    }
    state = stored_state(api_sessions)
    assert state["events"] == 1
    assert state["rollups"] == {("tiny", "s1", "standard", dt.date(2026, 5, 3)): (Decimal("2.5"), 1)}


def test_a_batch_answers_every_event_in_order(api_post, api_sessions):
    bad_time = cloud_event(3)
    bad_time["time"] = "2026-05-03T10:00:00"
    no_site = cloud_event(4)
    del no_site["data"]["site"]
    batch = [cloud_event(1), cloud_event(2, quantity="-1"), bad_time, no_site, 7, cloud_event(5, category="review")]
    response = api_post(batch)
    assert response.status_code == 200
    results = response.get_json()["results"]
    assert [(r["index"], r["status"], r.get("reason")) for r in results] == [
        (0, "accepted", None), (1, "rejected", "bad quantity"), (2, "rejected", "bad time"),
        (3, "rejected", "missing field"), (4, "rejected", "bad field"), (5, "accepted", None),
    ]
    assert "negative" in results[1]["detail"] and "'data.site'" in results[3]["detail"]
    assert response.get_json()["summary"] == {"accepted": 2, "late": 0, "duplicate": 0, "conflict": 0, "rejected": 4}
    assert stored_state(api_sessions)["events"] == 2


def test_application_json_takes_one_event_or_a_batch(api_post):
    assert statuses(api_post(cloud_event(1), content_type="application/json")) == ["accepted"]
    assert statuses(api_post([cloud_event(2), cloud_event(1)], content_type="application/json; charset=utf-8")) \
        == ["accepted", "duplicate"]
    assert api_post([], content_type=BATCH).get_json()["results"] == []


def test_resending_a_batch_is_harmless_and_changed_content_is_a_conflict(api_post, api_sessions):
    batch = [cloud_event(n, quantity=str(n)) for n in range(1, 6)]
    assert statuses(api_post(batch)) == ["accepted"] * 5
    before = stored_state(api_sessions)

    assert statuses(api_post(batch)) == ["duplicate"] * 5
    assert stored_state(api_sessions) == before

    batch[1]["data"]["quantity"] = "20"
    batch.append(cloud_event(6))
    response = api_post(batch)
    assert statuses(response) == ["duplicate", "conflict", "duplicate", "duplicate", "duplicate", "accepted"]
    assert response.get_json()["results"][1]["detail"] == "differs from the stored event in quantity"
    assert statuses(api_post(batch)) == ["duplicate", "conflict", "duplicate", "duplicate", "duplicate", "duplicate"]
    after = stored_state(api_sessions)
    assert after["events"] == 6 and after["conflicts"] == 1
    assert after["rollups"][("tiny", "s1", "standard", dt.date(2026, 5, 3))] == (Decimal(16), 6)


def test_events_outside_the_keys_customer_or_source_are_refused_with_403(api_post, api_sessions):
    response = api_post([cloud_event(1), cloud_event(2, customer="other"), cloud_event(3, source="platform/else")])
    assert response.status_code == 403
    results = response.get_json()["results"]
    assert [(r["status"], r.get("reason")) for r in results] == [
        ("accepted", None), ("rejected", "forbidden"), ("rejected", "forbidden")]
    assert "for customer 'tiny', not 'other'" in results[1]["detail"]
    assert "of source 'platform/test', not 'platform/else'" in results[2]["detail"]
    with api_sessions() as session:
        assert session.scalars(select(UsageEvent.event_id)).all() == ["evt-1"]

    alone = api_post(cloud_event(4, customer="tiny-competitor"), content_type=SINGLE)
    assert alone.status_code == 403 and statuses(alone) == ["rejected"]
    assert stored_state(api_sessions)["events"] == 1


def test_a_missing_unknown_or_revoked_key_is_401_and_stores_nothing(api_post, api_key, api_sessions):
    wrong_secret = api_key[:-4] + ("AAAA" if not api_key.endswith("AAAA") else "BBBB")
    for key in (None, "", "bk_nothing", "bk_000000000000_" + "x" * 43, wrong_secret):
        response = api_post([cloud_event(1)], key=key)
        assert response.status_code == 401, key
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    with api_sessions.begin() as session:
        revoke_api_key(session, api_key[3:15])
    response = api_post([cloud_event(1)])
    assert response.status_code == 401 and "unknown or revoked" in response.get_json()["error"]
    assert stored_state(api_sessions)["events"] == 0


def test_a_basic_or_malformed_authorization_header_is_401(api_client, api_key):
    for header in (f"Basic {api_key}", api_key, "Bearer"):
        response = api_client.post("/api/v1/events", data="[]", content_type=BATCH, headers={"Authorization": header})
        assert response.status_code == 401, header


@pytest.mark.parametrize("body, content_type, words", [
    (b'[{"specversion": "1.0",', BATCH, "not JSON"),
    (b"{not json}", SINGLE, "not JSON"),
    (b"", BATCH, "not JSON"),
    (b"\xff\xfe[]", BATCH, "not JSON"),
    (b"42", BATCH, "a JSON object"),
    (b'"evt-1"', SINGLE, "a JSON object"),
    (b"null", "application/json", "a JSON object"),
    (b"[] []", BATCH, "not JSON"),
    (json.dumps([cloud_event(1)]), SINGLE, "is one event"),
    (json.dumps(cloud_event(1)), BATCH, "is a JSON array"),
    (json.dumps([cloud_event(1)]), "text/plain", "not text/plain"),
    (json.dumps([cloud_event(1)]), "application/x-www-form-urlencoded", "not application/x-www-form-urlencoded"),
    (json.dumps([cloud_event(1)]), None, "without a content type"),
    (b"[" * 100_000 + b"]" * 100_000, BATCH, "nests JSON too deeply"),
    (b'{"a": ' * 100_000 + b"1" + b"}" * 100_000, SINGLE, "nests JSON too deeply"),
    (b'[{"specversion": "1.0", "data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}]", BATCH, "nests JSON too deeply"),
])
def test_a_malformed_body_is_400_and_stores_nothing(api_post, api_sessions, body, content_type, words):
    response = api_post(body, content_type=content_type)
    assert response.status_code == 400
    assert words in response.get_json()["error"]
    assert stored_state(api_sessions)["events"] == 0


def test_a_body_over_the_configured_limit_is_413(api_app, api_document, api_key, api_sessions):
    api_app.config["MAX_CONTENT_LENGTH"] = 2000
    client = api_app.test_client()
    headers = {"Authorization": f"Bearer {api_key}"}
    batch = [cloud_event(n) for n in range(20)]
    response = client.post("/api/v1/events", data=json.dumps(batch), content_type=BATCH, headers=headers)
    assert response.status_code == 413 and "2,000 bytes" in response.get_json()["error"]
    assert_documented(api_document, response)
    assert stored_state(api_sessions)["events"] == 0
    assert client.post("/api/v1/events", data=json.dumps(batch[:5]), content_type=BATCH,
                       headers=headers).status_code == 200
    assert "2,000 bytes" in client.get("/api/v1/openapi.json").get_json()["paths"]["/api/v1/events"]["post"][
        "requestBody"]["description"]


def test_an_event_for_an_issued_period_comes_back_late(api_post, api_sessions):
    assert statuses(api_post([cloud_event(1, APRIL, "20")])) == ["accepted"]
    with api_sessions.begin() as session:
        record_issued_invoice(session, "tiny", Period(2026, 4))
    late = cloud_event(2, "2026-04-20T10:00:00Z", "10")
    response = api_post([late, cloud_event(3, MAY), cloud_event(1, APRIL, "20")])
    assert statuses(response) == ["late", "accepted", "duplicate"]
    assert response.get_json()["summary"]["late"] == 1
    with api_sessions() as session:
        assert session.scalars(select(UsageEvent.late).order_by(UsageEvent.event_id)).all() == [False, True, False]
    late_usage = [("tiny", "s1", "standard", dt.date(2026, 4, 20), Decimal(10), 1, None)]
    assert stored_state(api_sessions)["late"] == late_usage


def test_the_database_being_unavailable_is_503(api_document, api_key, tmp_path, monkeypatch):
    monkeypatch.setenv("BILLING_SECRET_KEY", "test-only")
    app = create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path / 'missing' / 'billing.db'}"})
    response = app.test_client().post("/api/v1/events", data="[]", content_type=BATCH,
                                      headers={"Authorization": f"Bearer {api_key}"})
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert_documented(api_document, response)


def test_the_openapi_document_is_valid_openapi_31_and_public(api_client, api_document):
    from openapi_spec_validator import validate

    validate(api_document)
    assert api_document["openapi"].startswith("3.1")
    post = api_document["paths"]["/api/v1/events"]["post"]
    assert set(post["responses"]) == {"200", "400", "401", "403", "413", "503"}
    assert set(post["requestBody"]["content"]) == {SINGLE, BATCH, "application/json"}
    assert api_document["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    example = api_document["components"]["schemas"]["CloudEvent"]["examples"][0]
    jsonschema.Draft202012Validator({"$ref": "#/components/schemas/CloudEvent", **api_document}).validate(example)


def test_the_api_is_exempt_from_the_portals_csrf_protection(db_url, api_sessions, api_key):
    app = Flask(__name__)
    app.config.update(SECRET_KEY="test-only", DATABASE_URL=db_url)
    database.init_app(app)
    auth.csrf.init_app(app)   # the portal's protection, checking every POST unless exempt
    api.init_app(app)
    app.register_blueprint(api.blueprint)
    try:
        response = app.test_client().post("/api/v1/events", data=json.dumps([cloud_event(1)]), content_type=BATCH,
                                          headers={"Authorization": f"Bearer {api_key}"})
        assert response.status_code == 200 and statuses(response) == ["accepted"]
    finally:
        app.extensions[database.ENGINE].dispose()


def test_apikey_create_prints_the_key_once_and_stores_only_its_hash(cli, api_sessions):
    status, out, err = cli("apikey", "create", "--customer", "tiny", "--source", "platform/eu")
    assert status == 0
    key = out.strip()
    assert key.startswith("bk_") and len(key) > 50 and "shown only this once" in err
    with api_sessions() as session:
        row = session.scalar(select(ApiKey).where(ApiKey.source == "platform/eu"))
    assert (row.customer, row.prefix, row.key_hash, row.revoked_at) == ("tiny", key[3:15], key_hash(key), None)

    status, out, _ = cli("apikey", "list")
    assert status == 0 and row.prefix in out and "platform/eu" in out and key not in out
    status, out, _ = cli("apikey", "revoke", row.prefix)
    assert status == 0 and "revoked" in out
    assert "revoked" in cli("apikey", "list", "--customer", "tiny")[1]
    status, _, err = cli("apikey", "revoke", "000000000000")
    assert status == 1 and "no API key with prefix '000000000000'" in err
    with api_sessions() as session:
        entries = [(e.action, e.resource, e.outcome)
                   for e in session.scalars(select(AuditEntry).order_by(AuditEntry.sequence))
                   if e.action.startswith("apikey.")]
    assert entries == [("apikey.create", f"apikey:{row.prefix}", "success"),
                       ("apikey.revoke", f"apikey:{row.prefix}", "success")]


def test_apikey_create_refuses_an_unknown_customer(cli, api_sessions):
    status, out, err = cli("apikey", "create", "--customer", "nobody", "--source", "platform/eu")
    assert status == 1 and out == ""
    assert "no API key created: no contract 'nobody' in the database" in err
    with api_sessions() as session:
        assert session.scalars(select(ApiKey)).all() == []


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_billing_serve_answers_on_loopback(db_url, api_key, tmp_path):
    port = _free_port()
    billing = Path(sys.executable).with_name("billing")
    env = {**os.environ, "BILLING_DATABASE_URL": db_url, "BILLING_SECRET_KEY": "test-only"}
    server = subprocess.Popen([str(billing), "serve", "--port", str(port)], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/events", data=json.dumps([cloud_event(1), cloud_event(1)]).encode(),
            headers={"Authorization": f"Bearer {api_key}", "Content-Type": BATCH}, method="POST")
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(request, timeout=10) as answer:
                    assert answer.headers["Server"] == "waitress"
                    assert [r["status"] for r in json.load(answer)["results"]] == ["accepted", "duplicate"]
                break
            except urllib.error.URLError:
                assert server.poll() is None and time.monotonic() < deadline, server.communicate()[1]
                time.sleep(0.2)
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_billing_serve_answers_a_body_over_the_limit_in_json(db_url, api_key, tmp_path):
    port = _free_port()
    billing = Path(sys.executable).with_name("billing")
    env = {**os.environ, "BILLING_DATABASE_URL": db_url, "BILLING_SECRET_KEY": "test-only"}
    server = subprocess.Popen([str(billing), "serve", "--port", str(port), "--max-body-bytes", "2000"],
                              cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    batch = json.dumps([cloud_event(n) for n in range(20)]).encode()
    assert 2000 < len(batch) < 8000   # over the app's limit, under waitress's (four times it)
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/events", data=batch, method="POST",
                                     headers={"Authorization": f"Bearer {api_key}", "Content-Type": BATCH})
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(request, timeout=10)
                raise AssertionError("an oversize body was taken")
            except urllib.error.HTTPError as refused:
                assert refused.code == 413 and refused.headers["Content-Type"] == "application/json"
                assert "2,000 bytes" in json.load(refused)["error"]
                break
            except urllib.error.URLError:
                assert server.poll() is None and time.monotonic() < deadline, server.communicate()[1]
                time.sleep(0.2)
    finally:
        server.terminate()
        server.wait(timeout=10)


# The event API and `billing ingest` are one pipeline (ingest/pipeline.py, ingest/batches.py): the same events,
# posted or read from a file, come back with the same outcomes and leave the same rows.

FIRST = [
    cloud_event(1, MAY, "1.50"),
    cloud_event(2, MAY, "2", category="review"),
    cloud_event(1, "2026-05-03T11:00:00+01:00", "1.5"),         # the same instant and quantity: a duplicate
    cloud_event(2, MAY, "5", category="review"),                # another quantity: a conflict
    cloud_event(3, "2026-04-20T10:00:00Z", "10"),               # April has an issued invoice: late
    cloud_event(4, "2026-05-31T23:30:00Z", "0.25", site="s2"),  # June 1st in London
    cloud_event(5, MAY, "-1"),                                  # bad quantity
    {**cloud_event(6, MAY), "time": "2026-05-03T10:00:00"},     # bad time: no offset
    {key: value for key, value in cloud_event(7, MAY).items() if key != "data"},   # missing field
    7,                                                          # not an object
    cloud_event(8, MAY, customer="nobody"),                     # no contract (the API: not the key's customer)
    cloud_event(9, "2026-05-04T09:00:00Z", "0.125"),
]
AGAIN = [
    cloud_event(10, MAY, "3"),
    cloud_event(9, "2026-05-04T10:00:00+01:00", "0.1250"),      # stored by the first: a duplicate
    cloud_event(3, "2026-04-20T10:00:00Z", "11"),               # a conflict with a late event: late too
    cloud_event(2, MAY, "5", category="review"),                # the same conflict again: listed once
    cloud_event(11, "2026-04-21T10:00:00Z", "4"),               # late
]


def _everything_stored(sessions) -> dict:
    """Every row ingest wrote, but when it arrived."""
    from metering.models import ConflictingEvent

    with sessions() as session:
        events = sorted((e.source, e.event_id, e.customer, e.site, e.category, e.time, e.quantity, e.day, e.late)
                        for e in session.scalars(select(UsageEvent)))
        conflicts = sorted((c.source, c.event_id, c.fingerprint, c.time, c.quantity, c.day, c.late)
                           for c in session.scalars(select(ConflictingEvent)))
    return {**stored_state(sessions), "event rows": events, "conflict rows": conflicts}


def test_the_api_and_a_file_give_the_same_outcomes_and_rows(api_post, api_sessions, tmp_path):
    from sqlalchemy import text

    from ingest.pipeline import ingest_events
    from metering.events import read_events

    with api_sessions.begin() as session:
        record_issued_invoice(session, "tiny", Period(2026, 4))
    posted = []
    for batch, status in ((FIRST, 403), (AGAIN, 200)):   # 403: an event of a customer not the key's
        response = api_post(batch)
        assert response.status_code == status
        posted.append([(r["status"], r.get("reason"), r.get("detail")) for r in response.get_json()["results"]])
    through_the_api = _everything_stored(api_sessions)
    with api_sessions.begin() as session:
        for table in ("events", "rollups", "late_rollups", "conflicts"):
            session.execute(text(f"DELETE FROM {table}"))

    read = []
    for name, batch in (("first.jsonl", FIRST), ("again.jsonl", AGAIN)):
        path = tmp_path / name
        path.write_text("".join(json.dumps(item) + "\n" for item in batch), encoding="utf-8")
        read.append([("late" if outcome.status == "accepted" and outcome.late else outcome.status,
                      outcome.reason or None, outcome.detail or None)
                     for _, _, outcome in ingest_events(api_sessions, read_events(path))])

    nobody = FIRST.index(cloud_event(8, MAY, customer="nobody"))
    assert posted[0][nobody][:2] == ("rejected", "forbidden") and read[0][nobody][:2] == ("rejected",
                                                                                         "unknown customer")
    read[0][nobody] = posted[0][nobody]
    assert read == posted
    assert [status for status, _, _ in posted[0]] == [
        "accepted", "accepted", "duplicate", "conflict", "late", "accepted", "rejected", "rejected", "rejected",
        "rejected", "rejected", "accepted"]
    assert [status for status, _, _ in posted[1]] == ["accepted", "duplicate", "conflict", "conflict", "late"]
    assert _everything_stored(api_sessions) == through_the_api
    assert through_the_api["events"] == 7 and len(through_the_api["late"]) == 2
    assert through_the_api["conflicts"] == 2
