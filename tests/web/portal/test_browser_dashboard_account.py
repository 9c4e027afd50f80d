"""In a browser (headless Chromium): the account block's contract year on the dashboard, the charts' legends on
one line and their ticks at round steps; the backtest's draft kept through "Back to editing". With
BILLING_SCREENSHOTS=docs/images these write dashboard-account.png,
dashboard-account-page.png, dashboard-issued.png and whatif-backtest-account.png."""

from __future__ import annotations

from itertools import pairwise

from . import test_dashboard_account
from .conftest import add_portal_user
from .test_browser import (  # noqa: F401  (fixtures: the same live app, browser and screenshots)
    browser_page,
    db_url,
    live_portal,
    pytestmark,
    screenshot,
)
from .test_browser_dashboard import signed_in
from .test_dashboard_account import GLOBEX

globex = test_dashboard_account.globex      # the fixture: the contract, its usage, two issued periods


def test_the_account_year_and_round_ticks(live_portal, browser_page, portal_sessions, globex, screenshot):  # noqa: F811
    page, base = browser_page, live_portal
    signed_in(page, base, add_portal_user(portal_sessions, "lena.vogel@example.com", "finance"))
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.goto(f"{base}/dashboard/{GLOBEX}")
    panel = page.locator("section.account-year")
    assert "Year-end projection" in panel.inner_text()
    assert page.locator("svg.burn-chart g.month").count() == 12
    for chart in ("svg.burn-chart", "svg.history-chart"):
        ticks = [t.strip() for t in page.locator(f"{chart} text.axis-label").all_text_contents()]
        values = [float(t.replace("€", "").replace(",", "")) for t in ticks]
        steps = {round(b - a, 2) for a, b in pairwise(values)}
        assert len(steps) == 1, ticks                                  # evenly spaced
        step = steps.pop()
        mantissa = step / 10 ** (len(str(int(step))) - 1)
        assert mantissa in (1, 2, 2.5, 5), ticks                       # at a round step
    for legend in page.locator(".legend").all():
        box = legend.bounding_box()
        line = float(legend.evaluate("e => parseFloat(getComputedStyle(e).lineHeight) || 20"))
        assert box["height"] < 2 * line, legend.inner_text()           # one line: it does not wrap
    screenshot(panel, "dashboard-account")
    screenshot(page, "dashboard-account-page", full_page=True)

    page.goto(f"{base}/dashboard/{GLOBEX}?period=2026-09")
    status = page.inner_text("section.dash-status")
    assert "TEST-2026-000002" in status and "so far" not in status and "closed now" not in status
    assert "day 30 of 30" not in page.inner_text("#dashboard")
    screenshot(page, "dashboard-issued", full_page=True)


def test_the_backtest_keeps_the_draft(live_portal, browser_page, portal_sessions, globex, screenshot):  # noqa: F811
    page, base = browser_page, live_portal
    signed_in(page, base, add_portal_user(portal_sessions, "sam.okafor@example.com", "deal_desk"))
    page.set_viewport_size({"width": 1400, "height": 1100})
    page.goto(f"{base}/contracts/{GLOBEX}/backtest")
    text = page.input_value("textarea[name=source]").replace("minimum 1_000.00 monthly", "minimum 5_000.00 monthly")
    page.fill("textarea[name=source]", text)
    page.fill("input[name=periods]", "2")
    page.click("text=Run the backtest")
    page.wait_for_selector("table.backtest")
    assert page.locator("table.backtest .account-row").count() == 2
    screenshot(page, "whatif-backtest-account", full_page=True)
    page.click("text=Back to editing")
    page.wait_for_url(f"{base}/contracts/{GLOBEX}/draft")
    assert "minimum 5_000.00 monthly" in page.input_value("textarea[name=source]")
