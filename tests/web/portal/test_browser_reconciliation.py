"""The reconciliation pages in a real browser (Chromium driven by Playwright, as tests/web/portal/test_browser.py):
a June with an event stored behind the engine's back (no rollup) fails, finance follows the discrepancy to its events,
and records an explanation. Screenshots go to the test's temporary directory, or to docs/images with

    BILLING_SCREENSHOTS=docs/images .venv/bin/python -m pytest tests/web/portal/test_browser_reconciliation.py
"""

from __future__ import annotations

from conftest import TEST_SELLER
import re
from decimal import Decimal

import pyotp
from sqlalchemy import select

from engine.periods import Period
from lifecycle.transitions import close
from metering.models import UsageEvent
from review.reconcile import Threshold, reconcile, store_report

from .conftest import CUSTOMER, OTHER_CUSTOMER, TEST_ACTOR, add_portal_user
from .test_browser import browser_page, db_url, live_portal, pytestmark, screenshot, sign_in_with_password  # noqa: F401

JUNE, FEBRUARY = Period(2026, 6), Period(2026, 2)


def a_drifted_june(sessions) -> str:
    """Closes June of the customer, then stores an event straight into the events table, without its rollup (as
    a hand-run script might); returns its site."""
    with sessions.begin() as session:
        close(session, CUSTOMER, JUNE, seller=TEST_SELLER)
    with sessions.begin() as session:
        model = session.scalars(select(UsageEvent).where(UsageEvent.customer == CUSTOMER, UsageEvent.site == "lon-01",
                                                         UsageEvent.day >= JUNE.first_day)).first()
        session.add(UsageEvent(source=model.source, event_id="evt-inserted-by-hand", customer=CUSTOMER,
                               site=model.site, category=model.category, time=model.time, quantity=Decimal("8000"),
                               day=model.day, late=False, received_at=model.received_at))
    threshold = Threshold(Decimal("0.01"), Decimal("0"))
    with sessions.begin() as session:
        for customer, period in ((CUSTOMER, JUNE), (OTHER_CUSTOMER, FEBRUARY)):
            store_report(session, reconcile(session, customer, period, threshold), TEST_ACTOR)
    return model.site


def test_finance_follows_a_discrepancy_to_its_events_and_explains_it(live_portal, browser_page, portal_sessions,
                                                                    screenshot):
    page, base = browser_page, live_portal
    site = a_drifted_june(portal_sessions)
    user = add_portal_user(portal_sessions, "fran.finance@example.com", "finance")
    sign_in_with_password(page, base, user.email)
    page.wait_for_url(f"{base}/login/code")
    page.fill("#code", pyotp.TOTP(user.secret).now())
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")

    page.click("nav.areas >> text=Reconciliation")
    page.wait_for_url(f"{base}/reconciliation")
    listing = page.inner_text("table.data").lower()
    assert "failed" in listing and "passed" in listing
    screenshot(page, "reconciliation-periods")

    page.click("a[href='/reconciliation/2026-06']")
    alert = page.locator(".report-failed .discrepancies")
    assert alert.is_visible()
    assert site in alert.inner_text() and "rollups against the events" in alert.inner_text()
    assert alert.evaluate("box => getComputedStyle(box).backgroundColor") != "rgba(0, 0, 0, 0)"  # the CSS is served
    screenshot(page, "reconciliation-period", full_page=True)

    page.click(".report-failed .discrepancies a:text-is('Events')")
    page.wait_for_url(re.compile(r"/reconciliation/2026-06/events\?customer="))
    assert "on time only" in page.inner_text("table.facts")
    screenshot(page, "reconciliation-events", full_page=True)

    page.go_back()
    page.click("text=Record the explanation")
    assert "Say why these discrepancies may stand" in page.inner_text(".explain-form .error")
    page.fill("#text", "Stored by hand during the 2 June outage; its rollup is repaired under FIN-31.")
    page.click("text=Record the explanation")
    assert "Explanation recorded" in page.inner_text(".flash")
    assert "FIN-31" in page.inner_text(".report-explained .explanation")
    screenshot(page, "reconciliation-explained", full_page=True)
