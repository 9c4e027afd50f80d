"""Month end as finance takes it, in a real browser (Chromium through Playwright): a contract amended for the open
period → the draft flagged stale, with why → refreshed (closed again and reconciled) → the reconciliation seen →
approved → issued → the PDF downloaded. The pages are saved as screenshots (month-end-*.png) in the test's temporary
directory, or where BILLING_SCREENSHOTS says:

    BILLING_SCREENSHOTS=docs/images .venv/bin/python -m pytest tests/web/portal/test_browser_month_end.py
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyotp
import pypdf
from conftest import TEST_SELLER

from audit.log import Actor
from dsl.compile import compile_source
from engine.periods import Period
from ingest.pipeline import ingest_events
from ledger.contracts import save_contract
from ledger.models import Invoice, InvoicePdf
from lifecycle.transitions import close_and_reconcile
from metering.events import read_events
from review.reconcile import Threshold

from .conftest import CONTRACTS, CUSTOMER, add_portal_user
from .test_browser import (  # noqa: F401  (fixtures: SQLite, the app served in a thread, Chromium)
    browser_page,
    db_url,
    live_portal,
    pytestmark,
    screenshot,
    sign_in_with_password,
)

JUNE = Period(2026, 6)
OLD_RATE, NEW_RATE = 'category standard  "Standard processing"  rate 0.85', \
    'category standard  "Standard processing"  rate 0.95'


def _closed_before(sessions) -> tuple[int, str]:
    """June closed and reconciled earlier in the month, as `billing close` would have: the draft's id and total."""
    with sessions.begin() as session:
        closed = close_and_reconcile(session, CUSTOMER, JUNE, Actor("cli:finance", "test"),
                                     threshold=Threshold.of(_test_environment()), seller=TEST_SELLER)
        assert closed.passed
        return closed.invoice.id, closed.invoice.document["totals"]["total"]


def _test_environment():
    from settings.environment import load

    return load("test", {})


def _amend(sessions) -> None:
    """Deal desk saves a version effective at the open period that raises the standard rate (ledger.contracts)."""
    text = (CONTRACTS / "acme-health.pricing").read_text(encoding="utf-8")
    assert OLD_RATE in text
    with sessions.begin() as session:
        save_contract(session, compile_source(text.replace(OLD_RATE, NEW_RATE).encode(), "acme-health.pricing"),
                      effective=JUNE, comment="standard processing repriced from June", author="deal.desk")


def _one_more_event(sessions, folder: Path) -> None:
    path = folder / "late-june.jsonl"
    path.write_text(json.dumps({"specversion": "1.0", "id": "evt-month-end-1", "source": "platform/main",
                                "type": "unit.processed", "time": "2026-06-29T09:00:00Z",
                                "data": {"customer": CUSTOMER, "site": "lon-01", "category": "standard",
                                         "quantity": 40}}) + "\n", encoding="utf-8")
    for _ in ingest_events(sessions, read_events(str(path))):
        pass


def _sign_in(page, base: str, sessions) -> None:
    user = add_portal_user(sessions, "fiona.finance@example.com", "finance")
    sign_in_with_password(page, base, user.email)
    page.wait_for_url(f"{base}/login/code")
    page.fill("#code", pyotp.TOTP(user.secret).now())
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")


def test_month_end_amend_stale_refresh_reconcile_approve_issue_download(live_portal, browser_page, portal_sessions,
                                                                         screenshot, tmp_path):
    page, base = browser_page, live_portal
    draft_id, total_then = _closed_before(portal_sessions)
    _amend(portal_sessions)
    _one_more_event(portal_sessions, tmp_path)
    _sign_in(page, base, portal_sessions)

    page.click("nav.areas >> text=Invoices")
    page.wait_for_url(f"{base}/invoices")
    page.click("details.close-period summary")
    assert page.is_visible("form[action='/invoices/close'] #period")
    screenshot(page, "month-end-invoices", full_page=True)

    # The draft says, before Approve, that it is out of date and why.
    page.click(f"a[href='/invoices/{draft_id}']")
    page.wait_for_url(f"{base}/invoices/{draft_id}")
    stale = page.inner_text("#stale")
    assert "This draft is out of date" in stale
    assert "The contract changed: the draft used version 1 (in effect from 2026-04), version 2 (in effect from " \
           "2026-06) bills 2026-06 now." in stale
    assert "1 event arrived since." in stale
    assert "Approving it is refused until it is refreshed." in stale
    screenshot(page, "month-end-stale-draft")

    page.click("text=Approve…")
    assert page.is_visible("#stale") and "Approve this draft?" in page.inner_text("#confirm")
    page.click("#confirm button[type=submit]")
    page.wait_for_url(f"{base}/invoices/{draft_id}")
    refused = page.inner_text(".flash-error")
    assert "cannot be approved: what it bills changed since the draft was made" in refused
    assert "version 2 (in effect from 2026-06) bills 2026-06 now; 1 event arrived since" in refused
    screenshot(page, "month-end-approve-refused")

    # Refreshed: closed again and reconciled, as `billing close` does.
    page.click("#stale button[type=submit]")
    page.wait_for_url(f"{base}/invoices/{draft_id}")
    said = page.inner_text(".flash-done")
    assert "draft recomputed" in said and "its reconciliation passed: it may be approved" in said
    assert not page.is_visible("#stale") and "Up to date" in page.inner_text(".freshness-current")
    assert page.inner_text("#reconciliation h2") == "Reconciliation: passed"
    with portal_sessions() as session:
        total_now = session.get(Invoice, draft_id).document["totals"]["total"]
    assert total_now != total_then and total_now.split(".")[0][-3:] in page.inner_text(".document .grand")
    screenshot(page, "month-end-refreshed", full_page=True)

    # The reconciliation behind it, on the period's page.
    page.click("#reconciliation >> text=The whole report")
    page.wait_for_url(f"{base}/reconciliation/2026-06*")
    report = page.inner_text(".report")
    assert CUSTOMER in report and "PASSED" in report.upper() and f"Invoice #{draft_id} (draft)" in report
    screenshot(page, "month-end-reconciliation")
    page.go_back()
    page.wait_for_url(f"{base}/invoices/{draft_id}")

    page.click("text=Approve…")
    page.click("#confirm button[type=submit]")
    page.wait_for_url(f"{base}/invoices/{draft_id}")
    assert "Approved" in page.inner_text(".flash-done")
    page.click("text=Issue…")
    page.click("#confirm button[type=submit]")
    page.wait_for_url(f"{base}/invoices/{draft_id}")
    with portal_sessions() as session:
        number = session.get(Invoice, draft_id).number
        stored = session.get(InvoicePdf, draft_id)
    assert number and f"Issued as {number}" in page.inner_text(".flash-done")
    screenshot(page, "month-end-issued")

    with page.expect_download() as download_info:
        page.click("text=Download PDF")
    download = download_info.value
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    content = saved.read_bytes()
    assert download.suggested_filename == f"{number}.pdf" and content.startswith(b"%PDF-") and content == stored.pdf
    text = " ".join(pdf_page.extract_text() for pdf_page in pypdf.PdfReader(io.BytesIO(content)).pages)
    assert number in text and "DRAFT" not in text
