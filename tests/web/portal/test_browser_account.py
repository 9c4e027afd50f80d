"""Changing one's password in a real browser (Chromium through Playwright, as tests/web/portal/test_browser.py):
the reason stands beside its field, the change signs out the user's other browser, not this one.

    BILLING_SCREENSHOTS=docs/images .venv/bin/python -m pytest tests/web/portal/test_browser_account.py
"""

from __future__ import annotations

import time

import pyotp

from .conftest import PASSWORD, add_portal_user
from .test_browser import (  # noqa: F401  (fixtures, and the same skip when Chromium is absent)
    browser_page,
    db_url,
    live_portal,
    pytestmark,
    screenshot,
    sign_in_with_password,
)

NEW = "staple battery horse correct"


def sign_in(page, base: str, user, steps_ahead: int = 0) -> None:
    """`steps_ahead`: a code is good once, so a second sign-in uses the next 30-second step's (also accepted)."""
    sign_in_with_password(page, base, user.email)
    page.wait_for_url(f"{base}/login/code")
    page.fill("#code", pyotp.TOTP(user.secret).at(time.time() + 30 * steps_ahead))
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")


def test_a_password_change_in_the_browser(live_portal, browser_page, portal_sessions, screenshot):
    page, base = browser_page, live_portal
    user = add_portal_user(portal_sessions, "priya.shah@example.com", "finance")
    elsewhere = page.context.browser.new_context()     # the same user in another browser, its own cookies
    try:
        other = elsewhere.new_page()
        sign_in(other, base, user)
        sign_in(page, base, user, steps_ahead=1)

        page.click(".who >> text=priya.shah@example.com")
        page.wait_for_url(f"{base}/account/password")
        page.fill("#current_password", PASSWORD)
        page.fill("#new_password", "short")
        page.fill("#confirm_password", "shorter")
        page.click("text=Change the password")
        assert page.inner_text("#new_password-error") == "A password needs at least 12 characters."
        assert page.inner_text("#confirm_password-error") == "The two new passwords are not the same."
        assert page.input_value("#new_password") == ""          # a password is never shown back
        screenshot(page, "account-password")
        page.fill("#current_password", PASSWORD)
        page.fill("#new_password", NEW)
        page.fill("#confirm_password", NEW + " ")
        page.click("text=Change the password")
        assert page.inner_text("#confirm_password-error") == "The two new passwords are not the same."
        assert page.get_attribute("#confirm_password", "aria-invalid") == "true"
        assert page.locator("#new_password-error").count() == 0

        page.fill("#current_password", PASSWORD)
        page.fill("#new_password", NEW)
        page.fill("#confirm_password", NEW)
        page.click("text=Change the password")
        page.wait_for_url(f"{base}/")
        assert "Your password is changed. Your 1 other session ended." in page.inner_text(".flash")
        other.goto(f"{base}/invoices")
        assert other.url.startswith(f"{base}/login")
    finally:
        elsewhere.close()
