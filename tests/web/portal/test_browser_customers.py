"""Finance edits a customer's billing profile and manages its credit grants in a real browser (Chromium through
Playwright); a grant is then drawn by an invoice issued through the lifecycle, and its ledger shows it. The
profile and the grant ledger are saved as screenshots in the test's temporary directory, or where
BILLING_SCREENSHOTS says:

    BILLING_SCREENSHOTS=docs/images .venv/bin/python -m pytest tests/web/portal/test_browser_customers.py
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyotp
from conftest import TEST_SELLER

from audit.log import Actor
from engine.periods import Period
from ledger.grants import add_grant
from ledger.invoices import Selector
from lifecycle.transitions import approve, close, issue
from review.reconcile import Threshold

from .conftest import CUSTOMER, add_portal_user
from .test_browser import (  # noqa: F401  (fixtures: SQLite, the app served in a thread, Chromium)
    browser_page,
    db_url,
    live_portal,
    pytestmark,
    screenshot,
    sign_in_with_password,
)

JUNE = Period(2026, 6)
WHO = Actor("cli:finance-batch", "test")
THRESHOLD = Threshold(Decimal("0.01"), Decimal("0"))


def _signed_in_finance(page, base, sessions) -> None:
    user = add_portal_user(sessions, "fiona.finance@example.com", "finance")
    sign_in_with_password(page, base, user.email)
    page.wait_for_url(f"{base}/login/code")
    page.fill("#code", pyotp.TOTP(user.secret).now())
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")


def test_finance_keeps_a_profile_and_its_grants(live_portal, browser_page, portal_sessions, screenshot):
    page, base = browser_page, live_portal
    with portal_sessions.begin() as session:   # June's draft, to know what a grant must exceed to be partly drawn
        draft, _ = close(session, CUSTOMER, JUNE, seller=TEST_SELLER)
        total = Decimal(draft.document["totals"]["total"])
        add_grant(session, CUSTOMER, Decimal("150.00"), WHO, from_period=Period(2026, 4),
                  expires=dt.date(2026, 5, 31), reason="onboarding credit", now=dt.datetime(2026, 4, 2, tzinfo=dt.UTC))
    _signed_in_finance(page, base, portal_sessions)

    page.click("nav.areas >> text=Customers")
    page.wait_for_url(f"{base}/customers")
    assert page.locator("table.data tbody tr").count() == 2
    page.click(f"a[href='/customers/{CUSTOMER}']")
    assert "No billing profile yet" in page.inner_text("#missing")
    page.click("text=Create the profile")
    page.wait_for_url(f"{base}/customers/{CUSTOMER}/edit")
    page.fill("#name", "Acme Health Ltd")
    page.fill("#address", "1 Harley Street\nLondon\nW1G 9QD\nUnited Kingdom")
    page.select_option("#tax_treatment", "reverse_charge")
    page.fill("#purchase_order", "PO-7781")
    page.fill("#terms_days", "-1")
    page.click("main form button[type=submit]")
    assert page.inner_text("#terms_days-error")                        # refused: what was typed is kept
    assert page.input_value("#name") == "Acme Health Ltd" and page.input_value("#purchase_order") == "PO-7781"
    page.fill("#terms_days", "30")
    page.click("main form button[type=submit]")
    page.wait_for_url(f"{base}/customers/{CUSTOMER}")
    assert "the buyer's tax id" in page.inner_text(".flash")          # saved, and what it still lacks is said
    page.click("text=Edit the profile")
    page.select_option("#tax_treatment", "uk_standard")
    page.fill("#tax_id", "GB123456789")
    page.click("main form button[type=submit]")
    page.wait_for_url(f"{base}/customers/{CUSTOMER}")
    assert "Saved as revision 2." in page.inner_text(".flash")
    history = page.inner_text("#history")
    assert "Reverse charge (outside UK VAT) → UK VAT at the standard rate" in history
    assert "fiona.finance@example.com" in history
    screenshot(page, "customers-profile", full_page=True)

    page.click("text=Credit grants")
    page.wait_for_url(f"{base}/customers/{CUSTOMER}/grants")
    amount = (total // 1000 + 1) * 1000        # more than June's charges: June draws part of it
    page.fill("#amount", "abc")
    page.fill("#reason", "service credit: June outage")
    page.click("#add button[type=submit]")
    assert "is not an amount" in page.inner_text("#amount-error")
    assert page.input_value("#reason") == "service credit: June outage"
    page.fill("#amount", f"{amount:.2f}")
    page.fill("#from_period", "2026-06")
    page.fill("#expires", "2026-12-31")
    page.fill("#priority", "10")
    page.click("#add button[type=submit]")
    page.wait_for_url(f"{base}/customers/{CUSTOMER}/grants#G-000002")
    page.fill("#amount", "40.00")
    page.fill("#reason", "entered twice")
    page.click("#add button[type=submit]")
    page.wait_for_url(f"{base}/customers/{CUSTOMER}/grants#G-000003")
    page.click("#G-000003 >> text=Revoke…")
    page.click("#confirm button[type=submit]")
    assert "Give the reason for the revoke." in page.inner_text("#reason-error")
    page.fill("#reason", "granted twice")
    page.click("#confirm button[type=submit]")
    page.wait_for_url(f"{base}/customers/{CUSTOMER}/grants#G-000003")
    assert "G-000003 revoked" in page.inner_text(".flash")

    with portal_sessions.begin() as session:   # June closed again (its draft now draws), approved and issued
        close(session, CUSTOMER, JUNE, seller=TEST_SELLER)
    with portal_sessions.begin() as session:
        approve(session, Selector(CUSTOMER, JUNE), WHO, threshold=THRESHOLD, seller=TEST_SELLER)
    with portal_sessions.begin() as session:
        number = issue(session, Selector(CUSTOMER, JUNE), WHO, threshold=THRESHOLD, prefix="TEST",
                       seller=TEST_SELLER).invoice.number
    page.goto(f"{base}/customers/{CUSTOMER}/grants")
    states = page.locator("#grants tbody tr .status").all_inner_texts()
    assert [state.lower() for state in states] == ["expired", "active", "revoked"]
    ledger = page.inner_text("#G-000002")
    assert f"drawn by {number}" in ledger
    assert page.inner_text("#G-000002 .remaining").replace(",", "").endswith(f"{amount - total:.2f}")
    screenshot(page, "customers-grants", full_page=True)
