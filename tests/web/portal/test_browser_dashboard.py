"""The dashboard in a real browser (Chromium through Playwright, the app on 127.0.0.1): a finance user opens it
and sees the sites, the page refreshes itself from the JSON, and a customer user cannot reach the other customer's
dashboard. Screenshots go where BILLING_SCREENSHOTS says (docs/images for the documentation):

    BILLING_SCREENSHOTS=docs/images .venv/bin/python -m pytest tests/web/portal/test_browser_dashboard.py
"""

from __future__ import annotations

import json

import pyotp

from ingest.pipeline import ingest_events
from metering.events import read_events

from .conftest import CUSTOMER, OTHER_CUSTOMER, add_portal_user
from .test_browser import (  # noqa: F401  (fixtures: the same live app, browser and screenshots)
    browser_page,
    db_url,
    live_portal,
    pytestmark,
    screenshot,
    sign_in_with_password,
)


def signed_in(page, base: str, user) -> None:
    sign_in_with_password(page, base, user.email)
    page.wait_for_url(f"{base}/login/code")
    page.fill("#code", pyotp.TOTP(user.secret).now())
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")


def test_finance_opens_the_dashboard_and_sees_the_sites(live_portal, browser_page, portal_sessions, screenshot,
                                                        tmp_path):
    page, base = browser_page, live_portal
    user = add_portal_user(portal_sessions, "priya.shah@example.com", "finance")
    signed_in(page, base, user)
    page.click("nav.areas >> text=Dashboard")
    page.wait_for_url(f"{base}/dashboard")
    assert "Acme Health Ltd" in page.inner_text("table.data")
    screenshot(page, "dashboard-customers")

    page.goto(f"{base}/dashboard/{CUSTOMER}?period=2026-06")
    assert page.inner_text(".environment-name").strip().lower() == "test"
    sites = page.locator("table.dash-sites tbody tr")
    assert sites.count() == 2
    assert "London Bridge" in sites.nth(0).inner_text() and "Leeds" in sites.nth(1).inner_text()
    assert page.locator("svg.history-chart rect.bar-charges").count() >= 3
    before = page.inner_text(".kpi-main .kpi-value")
    screenshot(page, "dashboard-period", full_page=True)
    page.click("table.dash-sites >> text=London Bridge")
    page.wait_for_url(f"{base}/dashboard/{CUSTOMER}?period=2026-06&site=lon-01#site-detail")
    assert "Standard processing" in page.inner_text("#site-detail")
    screenshot(page.locator("#site-detail"), "dashboard-site")

    # New usage: the page's own refresh (shortened here) shows it without a reload.
    page.evaluate("document.getElementById('dashboard').setAttribute('data-refresh-seconds', '1')")
    path = tmp_path / "more.jsonl"
    path.write_text(json.dumps({
        "specversion": "1.0", "id": "browser-1", "source": "test/browser", "type": "unit.processed",
        "time": "2026-06-21T09:00:00Z",
        "data": {"customer": CUSTOMER, "site": "lds-02", "category": "standard", "quantity": 10000},
    }) + "\n")
    for _ in ingest_events(portal_sessions, read_events(str(path))):
        pass
    page.wait_for_function("before => document.querySelector('.kpi-main .kpi-value').textContent !== before",
                           arg=before, timeout=40_000)


def test_a_customer_user_cannot_reach_the_other_customers_dashboard(live_portal, browser_page, portal_sessions):
    page, base = browser_page, live_portal
    user = add_portal_user(portal_sessions, "acme.finance@example.com", "customer_finance", CUSTOMER)
    signed_in(page, base, user)
    page.click("nav.areas >> text=Dashboard")
    page.wait_for_url(f"{base}/dashboard")
    assert page.inner_text("h1").startswith("Acme Health Ltd")
    assert "Northwind" not in page.content()
    for path in (f"/dashboard/{OTHER_CUSTOMER}", f"/dashboard/{OTHER_CUSTOMER}/data"):
        response = page.goto(f"{base}{path}")
        assert response.status == 404
        assert "Northwind" not in page.content()
