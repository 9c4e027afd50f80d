"""The usage export, and the admin's password reset, in a real browser (Chromium through Playwright, as
tests/web/portal/test_browser.py): a customer user downloads their usage and it adds up to their invoice; an admin
resets a password behind a confirmation page and the user must change it before anything else.

    BILLING_SCREENSHOTS=docs/images .venv/bin/python -m pytest tests/web/portal/test_browser_usage_export.py
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import time
from decimal import Decimal

import pyotp
from sqlalchemy import select

from audit.log import Actor, AuditEntry, record
from ledger.models import Invoice

from .conftest import CUSTOMER, PASSWORD, add_portal_user
from .test_browser import (  # noqa: F401  (fixtures, and the same skip when Chromium is absent)
    browser_page,
    db_url,
    live_portal,
    pytestmark,
    screenshot,
)


def sign_in(page, base: str, user, password: str = PASSWORD, steps_ahead: int = 0) -> None:
    page.goto(f"{base}/")
    page.fill("#email", user.email)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/login/code")
    page.fill("#code", pyotp.TOTP(user.secret).at(time.time() + 30 * steps_ahead))
    page.click("button[type=submit]")


def test_a_customer_user_downloads_usage_that_adds_up_to_the_invoice(live_portal, browser_page, portal_sessions,
                                                                     screenshot, tmp_path):
    page, base = browser_page, live_portal
    user = add_portal_user(portal_sessions, "jo.finance@acme.example", "customer_finance", CUSTOMER)
    sign_in(page, base, user)
    page.wait_for_url(f"{base}/")
    page.click("nav.areas >> text=Usage")
    page.wait_for_url(re.compile(r".*/usage$"))
    assert page.locator("#customer").count() == 0           # their own customer only: nothing to choose
    page.fill("#since", "2026-05-01")
    page.fill("#until", "2026-05-31")
    page.click("text=Show")
    page.wait_for_selector("#usage-summary")
    screenshot(page, "usage-export", full_page=True)
    with page.expect_download() as waiting:
        page.click("#download-usage")
    download = waiting.value
    assert download.suggested_filename == "usage-acme-health-2026-05-01-to-2026-05-31.csv"
    path = tmp_path / download.suggested_filename
    download.save_as(path)
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    billed: dict[tuple[str, str], tuple[Decimal, int]] = {}
    for row in rows:
        if row["status"] == "billed":
            quantity, events = billed.get((row["site"], row["category"]), (Decimal(0), 0))
            billed[(row["site"], row["category"])] = (quantity + Decimal(row["quantity"]), events + int(row["events"]))
    with portal_sessions() as session:
        invoice = session.scalar(select(Invoice).where(Invoice.customer == CUSTOMER, Invoice.status == "issued",
                                                       Invoice.period == "2026-05"))
        lines = {(site["site"], line["category"]): (Decimal(line["quantity"]), line["events"])
                 for site in invoice.document["sites"] for line in site["lines"] if line["kind"] == "usage"}
        downloads = session.scalars(select(AuditEntry).where(AuditEntry.action == "usage.download")).all()
    assert lines and billed == lines
    assert [(e.actor, e.resource) for e in downloads] == [(user.email, "usage:acme-health/2026-05-01..2026-05-31")]
    assert page.goto(f"{base}/usage/northwind/csv").status == 404      # another customer's usage


def test_an_admin_resets_a_password_and_the_user_changes_it_first(live_portal, browser_page, portal_sessions,
                                                                  screenshot):
    page, base = browser_page, live_portal
    admin = add_portal_user(portal_sessions, "ops.admin@example.com", "admin")
    user = add_portal_user(portal_sessions, "sam.finance@example.com", "finance")
    with portal_sessions.begin() as session:   # a long hash and resource, to show how the audit page wraps them
        record(session, Actor("cli:ops", "test"), "invoice.issue", "invoice:acme-health/2026-05#2", details={
            "number": "UK-2026-000002", "pdf_sha256": hashlib.sha256(b"pdf").hexdigest(),
            "document_sha256": hashlib.sha256(b"document").hexdigest()})
    sign_in(page, base, admin)
    page.wait_for_url(f"{base}/")
    page.goto(f"{base}/admin/users/{user.id}")
    page.click("text=Disable")
    page.wait_for_url(f"{base}/admin/users/{user.id}/disable")
    assert "open sessions end now" in page.inner_text("#consequence")
    screenshot(page, "admin-confirm-disable")
    page.click("text=Cancel")
    page.click("text=Reset the password")
    page.wait_for_url(f"{base}/admin/users/{user.id}/reset-password")
    screenshot(page, "admin-confirm-reset-password")
    page.click("button:has-text('Reset the password')")
    temporary = page.inner_text("#temporary-password")
    screenshot(page, "admin-password-reset")
    page.goto(f"{base}/audit")
    screenshot(page, "audit-long-values", full_page=True)
    cell = page.locator("td.details").first
    assert cell.evaluate("e => getComputedStyle(e).overflowWrap") == "anywhere"
    assert cell.evaluate("e => e.scrollWidth <= e.clientWidth + 1")   # nothing runs past the cell
    page.locator("form[action='/logout'] button").click()

    sign_in(page, base, user, temporary, steps_ahead=1)
    page.wait_for_url(f"{base}/account/password")
    assert "An administrator reset your password" in page.inner_text("#password-must-change")
    screenshot(page, "account-password-after-reset")
    page.goto(f"{base}/invoices")
    assert page.url == f"{base}/account/password"
    page.fill("#current_password", temporary)
    page.fill("#new_password", "my own pass phrase now")
    page.fill("#confirm_password", "my own pass phrase now")
    page.click("text=Change the password")
    page.wait_for_url(f"{base}/")
    page.goto(f"{base}/invoices")
    assert page.url == f"{base}/invoices"
