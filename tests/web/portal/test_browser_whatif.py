"""What-if pricing in a real browser (Debian's Chromium through Playwright, the app on 127.0.0.1).

A deal-desk user raises review's first tier of Acme Health from 2.00 to 2.25 in the editor, previews May's
invoice (+250.00: 1,000 review units at lon-01 in May cost 0.25 more), backtests the draft over the closed
periods (April +175.00, May +250.00), and compares two saved versions from the history. Screenshots of the
preview, the backtest and the comparison go where BILLING_SCREENSHOTS says (the test's temporary directory
otherwise):

    BILLING_SCREENSHOTS=docs/images .venv/bin/python -m pytest tests/web/portal/test_browser_whatif.py
"""

from __future__ import annotations

from pathlib import Path

from dsl.compile import compile_source
from engine.periods import Period
from ledger.contracts import save_contract

from .test_browser import browser_page, db_url, live_portal, pytestmark, screenshot  # noqa: F401
from .test_browser_contracts import sign_in_deal_desk

ACME = (Path(__file__).resolve().parents[3] / "contracts" / "acme-health.pricing").read_text(encoding="utf-8")
OLD_TIER, NEW_TIER = "up to 1_000 at 2.00", "up to 1_000 at 2.25"


def test_preview_a_draft_in_the_editor_then_backtest_it(live_portal, browser_page, portal_sessions, screenshot):
    page, base = browser_page, live_portal
    sign_in_deal_desk(page, base, portal_sessions)
    page.goto(f"{base}/contracts/acme-health")
    page.wait_for_selector("#check-status.clean")
    page.fill("#source", page.input_value("#source").replace(OLD_TIER, NEW_TIER))
    page.wait_for_selector("#dirty:not([hidden])")

    page.fill("#preview-period", "2026-05")
    page.click("#preview-form button[type=submit]")
    shown = page.locator("#preview .whatif-preview[data-outcome=invoice]")
    shown.wait_for()
    assert "Invoice of 2026-05 under this text" in shown.inner_text()
    assert page.inner_text("#preview .whatif-facts td.more") == "+£250.00"
    assert page.locator("#preview h3.whatif-site").all_inner_texts() == ["London Bridge lon-01"]
    screenshot(page, "whatif-preview", full_page=True)

    page.fill("#preview-period", "2026-13")
    page.click("#preview-form button[type=submit]")
    page.locator("#preview [data-outcome=refused]").wait_for()
    assert "not a month written YYYY-MM" in page.inner_text("#preview [data-field=period]")

    page.fill("#backtest-periods", "3")
    page.click("#backtest-form button[type=submit]")
    page.wait_for_url(f"{base}/contracts/acme-health/backtest")
    assert NEW_TIER in page.input_value("#source")           # the editor's unsaved text, not the saved one
    assert page.inner_text("#backtest-difference") == "+£425.00"


def test_run_a_backtest_with_a_changed_rate_and_see_the_difference(live_portal, browser_page, portal_sessions,
                                                                   screenshot):
    page, base = browser_page, live_portal
    sign_in_deal_desk(page, base, portal_sessions)
    page.goto(f"{base}/contracts/acme-health/backtest")
    assert page.input_value("#source") == ACME
    assert page.locator(".backtest-results .empty").inner_text().startswith("Edit the draft")

    page.fill("#source", ACME.replace("rate 0.85", "rate zero"))
    page.click("text=Run the backtest")
    assert page.inner_text("#source-error").startswith("The draft has 1 error")
    assert "rate zero" in page.input_value("#source")          # what was typed is kept

    page.fill("#source", ACME.replace(OLD_TIER, NEW_TIER))
    page.fill("#periods", "6")
    page.click("text=Run the backtest")
    page.wait_for_selector("table.backtest")
    periods = page.locator("tbody.backtest-period").evaluate_all("bodies => bodies.map(b => b.dataset.period)")
    assert periods == ["2026-04", "2026-05"]
    changed = page.locator("table.backtest tr.changed")
    assert changed.count() == 2
    assert [changed.nth(i).locator("td.diff-amount").inner_text() for i in range(2)] == ["+£175.00", "+£250.00"]
    assert page.inner_text("#backtest-difference") == "+£425.00"
    assert page.inner_text("table.backtest tr.total-row td.diff-amount") == "+£425.00"
    assert "2026-06 (draft)" in page.inner_text(".not-closed")
    screenshot(page, "whatif-backtest", full_page=True)


def test_compare_two_versions_from_the_history(live_portal, browser_page, portal_sessions, screenshot):
    with portal_sessions.begin() as session:
        save_contract(session, compile_source(ACME.replace(OLD_TIER, NEW_TIER).encode(), "v2"),
                      effective=Period(2026, 6), author="dana.deal@example.com", comment="review tier 2.25 from June")
    page, base = browser_page, live_portal
    sign_in_deal_desk(page, base, portal_sessions)
    page.goto(f"{base}/contracts/acme-health/versions")
    page.click("text=Compare with v1")
    page.wait_for_url(f"{base}/contracts/acme-health/compare?a=1&b=2")
    assert page.locator("tr.diff-removed code").all_inner_texts() == [f"        {OLD_TIER}"]
    assert page.locator("tr.diff-added code").all_inner_texts() == [f"        {NEW_TIER}"]
    assert "Invoice of 2026-05" in page.inner_text("body")

    page.fill("#period", "2026-06")
    page.click(".whatif-compare-form button[type=submit]")
    page.wait_for_url(f"{base}/contracts/acme-health/compare?a=1&b=2&period=2026-06")
    rows = page.locator("table.whatif-compare tbody tr")
    assert rows.count() == 3                                  # London Bridge, Leeds, total
    assert "London Bridge" in rows.nth(0).inner_text() and rows.nth(0).locator("strong").inner_text() == "+£250.00"
    assert "Leeds" in rows.nth(1).inner_text() and rows.nth(1).get_attribute("class") == ""
    screenshot(page, "whatif-compare", full_page=True)
