"""The contract editor in a real browser (Debian's Chromium through Playwright, the app on 127.0.0.1).

A deal-desk user types a mistake into Acme Health's contract and sees it
marked at its line and column without the page reloading, fixes it and sees
the plan, then saves a version with a comment and finds it in the history.
Screenshots of the editor with a diagnostic and of the history go where
BILLING_SCREENSHOTS says (the test's temporary directory otherwise):

    BILLING_SCREENSHOTS=docs/images .venv/bin/python -m pytest tests/web/portal/test_browser_contracts.py
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pyotp

from engine.periods import Period

from .conftest import CONTRACTS, add_portal_user
from .test_browser import browser_page, db_url, live_portal, pytestmark, screenshot, sign_in_with_password  # noqa: F401

ACME = (CONTRACTS / "acme-health.pricing").read_text(encoding="utf-8")
TYPO = ", urgnt"           # a category the contract does not declare


def sign_in_deal_desk(page, base: str, sessions) -> None:
    user = add_portal_user(sessions, "dana.deal@example.com", "deal_desk")
    sign_in_with_password(page, base, user.email)
    page.wait_for_url(f"{base}/login/code")
    page.fill("#code", pyotp.TOTP(user.secret).now())
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")


def place_cursor_after(page, needle: str) -> int:
    """Put the caret right after the first `needle` in the editor's text; its offset."""
    return page.locator("#source").evaluate(
        "(text, needle) => { const at = text.value.indexOf(needle) + needle.length;"
        " text.focus(); text.setSelectionRange(at, at); return at; }", needle)


def test_type_an_error_see_it_marked_fix_it_and_save_a_version(live_portal, browser_page, portal_sessions,
                                                                screenshot):
    page, base = browser_page, live_portal
    sign_in_deal_desk(page, base, portal_sessions)
    page.click("nav.areas >> text=Contracts")
    page.wait_for_url(f"{base}/contracts")
    assert "Acme Health Ltd" in page.inner_text("table.data")
    page.click("table.data >> text=Acme Health Ltd")
    page.wait_for_url(f"{base}/contracts/acme-health")
    page.wait_for_selector("#check-status.clean")
    assert 'plan for contract "acme-health"' in page.inner_text("#plan")
    page.evaluate("window.notReloaded = true")

    defaults_line = "minimum 2_500.00 monthly on standard, expedited"
    place_cursor_after(page, defaults_line)
    page.keyboard.type(TYPO)
    text = page.input_value("#source")
    lines = text.split("\n")
    line = next(number for number, content in enumerate(lines, 1) if defaults_line + TYPO in content)
    column = lines[line - 1].index("urgnt") + 1

    first = page.locator("#diagnostics .diagnostic-error button").first
    first.wait_for()
    assert first.locator(".where").inner_text() == f"{line}:{column}"
    assert "urgnt" in first.locator(".message").inner_text()
    marked = page.locator(".editor-gutter .line-number").nth(line - 1).get_attribute("class").split()
    assert sorted(marked) == ["changed", "has-error", "line-number"]
    assert page.locator(".editor-gutter .changed").count() == 1
    assert page.inner_text("#dirty") == "Unsaved changes · 1 line"
    assert page.locator(".editor-marks mark.mark-error").first.inner_text() == "urgnt"
    assert "error" in page.inner_text("#check-status")
    assert page.locator("#save-button").is_disabled()
    assert page.evaluate("window.notReloaded") is True
    screenshot(page, "editor-diagnostic")

    page.locator("#source").evaluate("text => { text.scrollTop = text.scrollHeight; }")
    first.click()
    selection = page.locator("#source").evaluate("text => [text.selectionStart, text.selectionEnd]")
    at = text.index(defaults_line + TYPO) + len(defaults_line) + 2
    assert selection == [at, at + len("urgnt")]

    place_cursor_after(page, defaults_line + TYPO)
    for _ in TYPO:
        page.keyboard.press("Backspace")
    page.wait_for_selector("#check-status.clean")
    assert page.locator("#diagnostics li").count() == 0
    assert page.locator(".editor-gutter .has-error").count() == 0
    assert page.locator(".editor-gutter .changed").count() == 0 and page.locator("#dirty").is_hidden()

    page.keyboard.type("# a second thought\n")             # the revert button puts back the text as opened
    page.click("#revert")
    assert page.input_value("#source") == ACME and page.locator("#revert").is_hidden()

    place_cursor_after(page, "category standard  \"Standard processing\"  rate 0.8")
    page.keyboard.press("Delete")
    page.keyboard.type("7")
    page.wait_for_selector("#check-status.clean")
    page.wait_for_function("document.getElementById('plan').textContent.includes('0.87')")
    assert page.evaluate("window.notReloaded") is True

    step = "price standard at rate 0.87"          # the plan's step names the contract line it comes from
    x, y = page.locator("#plan").evaluate(
        "(plan, step) => { const node = plan.firstChild, at = node.textContent.indexOf(step);"
        " plan.scrollTop = 0; plan.scrollIntoView({block: 'start'}); const range = document.createRange(); range.setStart(node, at + 3);"
        " range.setEnd(node, at + 4); const box = range.getBoundingClientRect(); return [box.x, box.y + 2]; }", step)
    page.mouse.click(x, y)
    text = page.input_value("#source")
    rate_line = next(n for n, content in enumerate(text.split("\n"), 1) if "rate 0.87" in content)
    assert page.locator("#source").evaluate("text => text.selectionStart") == sum(
        len(content) + 1 for content in text.split("\n")[:rate_line - 1])

    comment = "Standard rate 0.87 from the renewal"
    page.fill("#comment", comment)
    page.click("#save-button")
    page.wait_for_url(f"{base}/contracts/acme-health/versions?version=2")
    assert "Saved version 2" in page.inner_text(".flash-done")
    row = page.locator("#version-2")
    next_period = Period.of(dt.datetime.now(ZoneInfo("Europe/London")).date()).shift(1)
    assert comment in row.inner_text()
    assert "dana.deal@example.com" in row.inner_text()
    assert f"scheduled from {next_period}" in row.inner_text()
    assert dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d") in row.inner_text()
    screenshot(page, "editor-history", full_page=True)

    page.click("#version-2 >> text=Open")
    assert "rate 0.87" in page.input_value("#source")
