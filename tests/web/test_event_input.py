"""Issue 13, items 5, 10, 11 through the event API and `billing ingest`, on SQLite and PostgreSQL alike: a NUL
in a string, a quantity not written as a decimal number, an over-long id or name are that event's rejection
(the rest of the batch is stored); a time's digits past the microsecond are dropped, never rounded."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from db.conftest import cli  # noqa: F401
from db.support import stored_state, write_lines

from metering.events import ID_LENGTH, NAME_LENGTH

from .test_event_api import api_document, api_post, cloud_event  # noqa: F401  (fixtures)

NUL = "\u0000"


def _with(number: int, **changes) -> dict:
    item = cloud_event(number)
    for name, value in changes.items():
        (item["data"] if name in ("customer", "site", "category", "quantity") else item)[name] = value
    return item


HOSTILE = [
    (_with(2, site=f"s{NUL}1"), "bad field", "NUL"),
    (_with(3, id=f"evt{NUL}"), "bad field", "NUL"),
    (_with(4, type=f"unit{NUL}"), "bad field", "NUL"),
    (_with(5, quantity=" 5 "), "bad quantity", "decimal"),
    (_with(6, quantity="1_000"), "bad quantity", "decimal"),
    (_with(7, quantity="NaN"), "bad quantity", "decimal"),
    (_with(8, id="e" * (ID_LENGTH + 1)), "too long", f"at most {ID_LENGTH}"),
    (_with(9, source="s" * 100_000), "too long", f"at most {ID_LENGTH}"),
    (_with(10, category="c" * (NAME_LENGTH + 1)), "too long", f"at most {NAME_LENGTH}"),
]


def test_a_hostile_event_is_rejected_with_a_reason_and_the_rest_of_the_batch_is_stored(api_post, api_sessions):
    batch = [cloud_event(1), *(item for item, _, _ in HOSTILE), _with(11, quantity="2.5")]
    response = api_post(batch)
    assert response.status_code == 200   # not 503: nothing for the client to send again
    results = response.get_json()["results"]
    assert [r["status"] for r in results] == ["accepted", *["rejected"] * len(HOSTILE), "accepted"]
    for result, (_, reason, words) in zip(results[1:], HOSTILE):
        assert result["reason"] == reason and words in result["detail"], result
    assert stored_state(api_sessions)["rollups"] == {
        ("tiny", "s1", "standard", dt.date(2026, 5, 3)): (Decimal("3.5"), 2)}


def test_one_event_with_a_nul_is_a_200_with_its_rejection(api_post, api_sessions):
    response = api_post(_with(1, customer=f"tiny{NUL}"), content_type="application/cloudevents+json")
    assert response.status_code == 200
    assert response.get_json()["results"][0]["reason"] == "bad field"
    assert stored_state(api_sessions)["events"] == 0


def test_billing_ingest_rejects_the_nul_line_and_stores_the_others(cli, api_sessions, tmp_path):
    path = write_lines(tmp_path / "events.jsonl", [json.dumps(cloud_event(1)), json.dumps(HOSTILE[0][0]),
                                                   json.dumps(cloud_event(12))])
    status, out, err = cli("ingest", path)
    assert status == 1, (out, err)
    assert f"{path}:2: rejected:" in err and "NUL" in err
    assert stored_state(api_sessions)["events"] == 2


def test_billing_ingest_takes_a_csv_with_a_nul_byte_line_by_line(cli, api_sessions, tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("id,source,type,time,customer,site,category,quantity\n"
                    "e1,platform/test,unit,2026-05-03T10:00:00Z,tiny,s1,standard,1\n"
                    f"e2,platform/test,unit,2026-05-03T10:00:00Z,tiny,s{NUL}1,standard,1\n"
                    "e3,platform/test,unit,2026-05-03T10:00:00Z,tiny,s1,standard, 5 \n", encoding="utf-8")
    status, out, err = cli("ingest", path)
    assert status == 1
    assert f"{path}:3: rejected:" in err and f"{path}:4: rejected:" in err
    assert stored_state(api_sessions)["events"] == 1


def test_a_seventh_fractional_digit_is_dropped_not_rounded_into_the_next_month(api_post, api_sessions, cli,
                                                                              tmp_path):
    last_instant = "2026-04-30T23:59:59.9999999+01:00"   # the last instant of April in London (BST)
    assert api_post([_with(1, time=last_instant)]).get_json()["summary"]["accepted"] == 1
    path = write_lines(tmp_path / "events.jsonl", [json.dumps(_with(2, time=last_instant))])
    assert cli("ingest", path)[0] == 0
    csv_path = tmp_path / "events.csv"
    csv_path.write_text("id,source,type,time,customer,site,category,quantity\n"
                        f"e3,platform/test,unit,{last_instant},tiny,s1,standard,1\n", encoding="utf-8")
    assert cli("ingest", csv_path)[0] == 0
    assert stored_state(api_sessions)["rollups"] == {
        ("tiny", "s1", "standard", dt.date(2026, 4, 30)): (Decimal(3), 3)}
