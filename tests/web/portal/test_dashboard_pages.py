"""The dashboard pages: who may open them, the customer scope, the JSON's shape and figures, the audit trail.

The figures are checked against the draft invoice computed by store/billing_from_db.py on the same database,
not against numbers copied from the page.
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from sqlalchemy import select

from audit.log import AuditEntry
from engine.periods import Period
from ingest.pipeline import ingest_events
from ledger.billing_from_db import invoice_from_db
from metering.events import read_events

from .conftest import CUSTOMER, OTHER_CUSTOMER

JUNE = "2026-06"


def audit_rows(sessions, action: str) -> list[AuditEntry]:
    with sessions() as session:
        return list(session.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.sequence)))


@pytest.mark.parametrize("principal, status", [
    ("finance", 200), ("customer_finance", 200), ("admin", 403), ("deal_desk", 403), ("other_customer", 200),
])
def test_who_may_open_the_dashboard(signed_in_client, principal, status):
    assert signed_in_client(principal).get("/dashboard").status_code == status


def test_the_anonymous_are_sent_to_sign_in(signed_in_client):
    response = signed_in_client("anonymous").get(f"/dashboard/{CUSTOMER}")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_finance_sees_every_customer_with_its_current_period(signed_in_client, portal_sessions):
    page = signed_in_client("finance").get("/dashboard").get_data(as_text=True)
    assert f"/dashboard/{CUSTOMER}" in page and f"/dashboard/{OTHER_CUSTOMER}" in page
    assert "Acme Health Ltd" in page
    assert [row.resource for row in audit_rows(portal_sessions, "dashboard.list")] == ["dashboard:*"]


def test_a_customer_user_gets_their_own_dashboard_and_never_another(signed_in_client, portal_sessions):
    client = signed_in_client("customer_finance")
    own = client.get("/dashboard").get_data(as_text=True)
    assert "Acme Health Ltd" in own and "Northwind" not in own
    assert client.get(f"/dashboard/{OTHER_CUSTOMER}").status_code == 404
    assert client.get(f"/dashboard/{OTHER_CUSTOMER}/data?period=2026-03").status_code == 404
    assert client.get("/dashboard/no-such-customer").status_code == 404
    denied = [(row.resource, row.outcome) for row in audit_rows(portal_sessions, "dashboard.view")
              if row.outcome != "success"]
    assert (f"dashboard:{OTHER_CUSTOMER}/current", "denied") in denied
    assert ("dashboard:no-such-customer/current", "failure") in denied


def test_the_page_shows_the_environment_sites_minimums_and_caps(signed_in_client):
    client = signed_in_client("finance")
    page = client.get(f"/dashboard/{CUSTOMER}?period={JUNE}").get_data(as_text=True)
    assert 'class="environment"' in page and "Test" in page
    assert "London Bridge" in page and "Leeds" in page
    assert "£4,840.00 of £5,000.00" in page and "short £160.00" in page     # London Bridge's minimum line
    assert "no cap" in page                           # Leeds has `no cap`
    assert "Choose a site" in page and "prorated from" not in page
    assert "<script" in page and "dashboard.js" in page and "style=" not in page
    leeds = client.get(f"/dashboard/{CUSTOMER}?period={JUNE}&site=lds-02").get_data(as_text=True)
    assert "prorated from £2,500.00" in leeds         # Leeds starts mid-June: its minimum is prorated
    assert "Manual review" in leeds and "not billed here" in leeds      # review is disabled at Leeds
    detail = client.get(f"/dashboard/{CUSTOMER}/data?period={JUNE}&site=lds-02").get_json()
    assert detail["detail"] == "lds-02" and detail["display"]["d:min:0:commitment"] == "£1,333.33"
    assert [(u["category"], u["billed"]) for u in detail["detail_usage"]] == [
        ("standard", True), ("expedited", True), ("review", False)]


def test_the_json_has_the_invoice_figures(signed_in_client, portal_sessions):
    response = signed_in_client("finance").get(f"/dashboard/{CUSTOMER}/data?period={JUNE}")
    assert response.status_code == 200 and response.mimetype == "application/json"
    data = response.get_json()
    with portal_sessions() as session:
        invoice = invoice_from_db(session, CUSTOMER, Period(2026, 6)).invoice
    assert data["period"] == JUNE and data["currency"] == "GBP" and data["status"] == "open"
    assert data["totals"]["total"] == invoice.money.format(invoice.totals["total"])
    assert [(s["site"], s["charges"]) for s in data["sites"]] == [
        (site.site, invoice.money.format(site.total)) for site in invoice.sites]
    assert sum(Decimal(s["charges"]) for s in data["sites"]) == Decimal(data["totals"]["total"])
    lon = next(s for s in data["sites"] if s["site"] == "lon-01")
    line = next(l for l in next(s for s in invoice.sites if s.site == "lon-01").lines if l.kind == "minimum")
    assert lon["minimums"][0]["commitment"] == invoice.money.format(line.commitment)
    assert lon["minimums"][0]["shortfall"] == invoice.money.format(line.amount)
    assert set(lon["caps"][0]) >= {"limit", "counted_before", "counted_now", "remaining", "reduction"}
    assert [h["period"] for h in data["history"]][-1] == JUNE
    assert {h["source"] for h in data["history"]} == {"issued", "computed"}   # April and May are issued
    assert data["display"]["total"].startswith("£")
    assert all(0 <= value <= 1 for value in data["bars"].values())


def test_a_bad_or_outside_period_is_one_clear_message(signed_in_client):
    client = signed_in_client("finance")
    response = client.get(f"/dashboard/{CUSTOMER}?period=June")
    assert response.status_code == 400 and "is not a month written YYYY-MM" in response.get_data(as_text=True)
    response = client.get(f"/dashboard/{CUSTOMER}/data?period=2020-01")
    assert response.status_code == 400 and "outside the contract" in response.get_json()["error"]


def test_views_are_audited_each_time_and_the_refresh_once_per_session(signed_in_client, portal_sessions):
    client = signed_in_client("finance")
    for _ in range(2):
        client.get(f"/dashboard/{CUSTOMER}?period={JUNE}")
    for _ in range(3):
        assert client.get(f"/dashboard/{CUSTOMER}/data?period={JUNE}").status_code == 200
    assert [row.resource for row in audit_rows(portal_sessions, "dashboard.view")] == [f"dashboard:{CUSTOMER}/{JUNE}"] * 2
    assert [row.resource for row in audit_rows(portal_sessions, "dashboard.refresh")] == [f"dashboard:{CUSTOMER}/{JUNE}"]
    signed_in_client("finance").get(f"/dashboard/{CUSTOMER}/data?period={JUNE}")   # another session
    assert len(audit_rows(portal_sessions, "dashboard.refresh")) == 2


def test_new_events_show_on_the_next_request(signed_in_client, portal_sessions, tmp_path):
    client = signed_in_client("finance")
    before = client.get(f"/dashboard/{CUSTOMER}/data?period={JUNE}").get_json()
    path = tmp_path / "more.jsonl"
    path.write_text(json.dumps({
        "specversion": "1.0", "id": "dash-1", "source": "test/dashboard", "type": "unit.processed",
        "time": "2026-06-20T10:00:00Z",
        "data": {"customer": CUSTOMER, "site": "lon-01", "category": "standard", "quantity": 100},
    }) + "\n")
    for _ in ingest_events(portal_sessions, read_events(str(path))):
        pass
    after = client.get(f"/dashboard/{CUSTOMER}/data?period={JUNE}").get_json()
    assert after["events"] == before["events"] + 1
    assert Decimal(after["totals"]["usage"]) == Decimal(before["totals"]["usage"]) + Decimal("85.00")
