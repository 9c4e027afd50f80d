"""Finance approves and issues an invoice in a real browser (Chromium through Playwright) and downloads its PDF,
whose SHA-256 is the stored one; then credits part of it. The pages are saved as screenshots (list, preview,
confirmation, credit note) in the test's temporary directory, or where BILLING_SCREENSHOTS says:

    BILLING_SCREENSHOTS=docs/images .venv/bin/python -m pytest tests/web/portal/test_browser_invoices.py
"""

from __future__ import annotations

from conftest import TEST_SELLER
import hashlib
from pathlib import Path

import pyotp
from sqlalchemy import select

from engine.periods import Period
from ledger.models import Invoice, InvoicePdf
from lifecycle.models import CreditNote
from lifecycle.transitions import close

from .conftest import CUSTOMER, add_portal_user
from .test_browser import (  # noqa: F401  (fixtures: SQLite, the app served in a thread, Chromium)
    browser_page,
    db_url,
    live_portal,
    pytestmark,
    screenshot,
    sign_in_with_password,
)


def test_finance_approves_issues_and_downloads_the_pdf(live_portal, browser_page, portal_sessions, screenshot,
                                                       tmp_path):
    page, base = browser_page, live_portal
    with portal_sessions.begin() as session:
        draft, _ = close(session, CUSTOMER, Period(2026, 6), seller=TEST_SELLER)
        draft_id, total = draft.id, draft.document["totals"]["total"]
    user = add_portal_user(portal_sessions, "fiona.finance@example.com", "finance")
    sign_in_with_password(page, base, user.email)
    page.wait_for_url(f"{base}/login/code")
    page.fill("#code", pyotp.TOTP(user.secret).now())
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")

    page.click("nav.areas >> text=Invoices")
    page.wait_for_url(f"{base}/invoices")
    screenshot(page, "invoices-list", full_page=True)
    page.select_option("#status", "draft")
    page.click("form.filters button[type=submit]")
    page.wait_for_url(f"{base}/invoices?*status=draft*")
    assert page.input_value("#status") == "draft"
    assert page.locator("table.data tbody tr").count() == 1

    page.click(f"a[href='/invoices/{draft_id}']")
    page.wait_for_url(f"{base}/invoices/{draft_id}")
    assert "DRAFT — not an invoice number" in page.inner_text(".document")
    page.click("text=Approve…")
    assert "Approve this draft?" in page.inner_text("#confirm")
    page.click("#confirm button[type=submit]")
    page.wait_for_url(f"{base}/invoices/{draft_id}")
    assert "Approved" in page.inner_text(".flash")

    page.click("text=Issue…")
    screenshot(page, "invoices-confirm-issue")
    page.click("#confirm button[type=submit]")
    page.wait_for_url(f"{base}/invoices/{draft_id}")
    with portal_sessions() as session:
        number = session.get(Invoice, draft_id).number
        stored = session.get(InvoicePdf, draft_id)
    assert f"Issued as {number}" in page.inner_text(".flash")
    assert number in page.inner_text(".document") and total.split(".")[1] in page.inner_text(".document .grand")
    screenshot(page, "invoices-preview", full_page=True)

    with page.expect_download() as download_info:
        page.click("text=Download PDF")
    download = download_info.value
    saved = Path(tmp_path / download.suggested_filename)
    download.save_as(saved)
    assert download.suggested_filename == f"{number}.pdf"
    assert hashlib.sha256(saved.read_bytes()).hexdigest() == stored.sha256

    page.click("text=Credit note…")
    page.check("input[name=scope][value=sites]")
    first_site = page.locator(".credit-sites input").first
    first_site.fill("999999999")
    page.fill("#reason", "goodwill for the outage of 3 June")
    page.click("#confirm button[type=submit]")
    assert "that remains creditable on it" in page.inner_text("#confirm")
    assert page.input_value("#reason") == "goodwill for the outage of 3 June"
    screenshot(page, "invoices-credit-form")
    page.locator(".credit-sites input").first.fill("125.00")
    page.click("#confirm button[type=submit]")
    page.wait_for_url(f"{base}/invoices/{draft_id}")
    with portal_sessions() as session:
        note = session.scalars(select(CreditNote)).one()
    assert note.number in page.inner_text(".credit-notes") and str(note.total) == "125.00"
    screenshot(page, "invoices-credit-note", full_page=False)
