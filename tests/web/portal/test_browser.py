"""The portal in a real browser: Debian's Chromium driven by Playwright, against the app served on 127.0.0.1.

Skipped when /usr/bin/chromium is absent, except under CI (CI set), where a
missing browser must fail rather than pass quietly. The pages seen are saved as
screenshots (login, enrolment, audit log) in the test's temporary directory, or,
to refresh the ones in the documentation, where BILLING_SCREENSHOTS says:

    BILLING_SCREENSHOTS=docs/images .venv/bin/python -m pytest tests/web/portal/test_browser.py
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from pathlib import Path

import pyotp
import pytest
from werkzeug.serving import make_server

from admin_app import create_app
from audit.log import Actor, record

from .conftest import PASSWORD, add_portal_user

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run"]

pytestmark = pytest.mark.skipif(not CHROMIUM.exists() and not os.environ.get("CI"),
                                reason="no /usr/bin/chromium (apt-get install chromium); CI runs these")


@pytest.fixture
def db_url(tmp_path, monkeypatch) -> str:
    """SQLite only: what these tests check is what the browser sees, the other tests cover PostgreSQL."""
    url = f"sqlite:///{tmp_path / 'browser.db'}"
    monkeypatch.setenv("BILLING_DATABASE_URL", url)
    return url


@pytest.fixture
def live_portal(db_url, portal_sessions, monkeypatch):
    """The app on the real clock, served by werkzeug in a thread: its base URL."""
    monkeypatch.setenv("BILLING_SECRET_KEY", "test-only")
    app = create_app({"BILLING_ENV": "test", "DATABASE_URL": db_url})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.port}"
    server.shutdown()
    thread.join(timeout=10)
    app.extensions["billing.engine"].dispose()


@pytest.fixture
def screenshot(tmp_path):
    folder = Path(os.environ.get("BILLING_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)

    def save(page, name: str, **options) -> None:
        page.screenshot(path=str(folder / f"{name}.png"), **options)

    return save


@pytest.fixture
def browser_page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.set_default_timeout(15_000)
        yield page
        browser.close()


def sign_in_with_password(page, base: str, email: str) -> None:
    page.goto(f"{base}/")
    assert page.url == f"{base}/login?next=/"
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")


def some_history(sessions) -> None:
    """A morning of activity, so the audit page shows what it is for."""
    start = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(hours=3)
    events = [
        ("priya.shah@example.com", "login.password", "user:priya.shah@example.com", "success", {}, "10.20.1.14"),
        ("priya.shah@example.com", "login.mfa", "user:priya.shah@example.com", "success", {"method": "totp"},
         "10.20.1.14"),
        ("priya.shah@example.com", "invoice.view", "invoice:acme-health/2026-05#2", "success",
         {"status": "issued"}, "10.20.1.14"),
        ("unknown@example.net", "login.password", "user:unknown@example.net", "failure",
         {"reason": "unknown email"}, "203.0.113.9"),
        ("acme.finance@example.com", "invoice.view", "invoice:northwind/2026-02#3", "denied",
         {"reason": "not visible to this user"}, "198.51.100.23"),
        ("cli:ops", "user.add", "user:acme.finance@example.com", "success",
         {"role": "customer_finance", "customer": "acme-health"}, None),
    ]
    with sessions.begin() as session:
        for minutes, (actor, action, resource, outcome, details, ip) in enumerate(events):
            record(session, Actor(actor, "test", ip), action, resource, outcome=outcome, details=details,
                   at=start + dt.timedelta(minutes=17 * minutes))


def test_first_sign_in_enrols_mfa_in_the_browser(live_portal, browser_page, portal_sessions, screenshot):
    page, base = browser_page, live_portal
    some_history(portal_sessions)
    add_portal_user(portal_sessions, "ada.admin@example.com", "admin", enrolled=False)

    page.goto(f"{base}/")
    assert page.url == f"{base}/login?next=/"
    assert page.inner_text(".environment-name").strip().lower() == "test"
    screenshot(page, "login")

    page.fill("#email", "ada.admin@example.com")
    page.fill("#password", "not the password")
    page.click("button[type=submit]")
    assert page.inner_text("#password-error") == "The email or password is not right."
    assert page.input_value("#email") == "ada.admin@example.com" and page.input_value("#password") == ""

    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/login/enrol")
    assert page.locator("img[alt^='QR code']").evaluate("img => img.complete && img.naturalWidth > 0")
    secret = page.inner_text("#totp-secret").replace(" ", "")
    screenshot(page, "enrolment")

    page.fill("#code", pyotp.TOTP(secret).now())
    page.click("button[type=submit]")
    codes = page.locator("#recovery-codes code").all_inner_texts()
    assert len(codes) == 10
    page.click("text=I have saved them")
    page.wait_for_url(f"{base}/")
    assert "ada.admin@example.com" in page.inner_text(".who")

    page.click("nav.areas >> text=Audit log")
    page.wait_for_url(f"{base}/audit")
    rows = page.locator("table.data tbody tr")
    assert rows.count() >= 9
    assert "mfa.enrol" in page.inner_text("table.data")
    screenshot(page, "audit", full_page=True)

    page.click("text=Sign out")
    page.wait_for_url(f"{base}/login")
    page.goto(f"{base}/audit")
    assert page.url.startswith(f"{base}/login")


def test_a_customer_user_cannot_reach_another_customers_invoice(live_portal, browser_page, portal_sessions,
                                                                invoice_ids):
    page, base = browser_page, live_portal
    user = add_portal_user(portal_sessions, "acme.finance@example.com", "customer_finance", "acme-health")
    sign_in_with_password(page, base, user.email)
    page.wait_for_url(f"{base}/login/code")
    page.fill("#code", pyotp.TOTP(user.secret).now())
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")

    page.click("nav.areas >> text=Invoices")
    listing = page.inner_text("table.data")
    assert "Acme Health Ltd" in listing and "Northwind" not in listing and "draft" not in listing
    links = page.locator("table.data a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert f"/invoices/{invoice_ids['customer']}" in links
    assert f"/invoices/{invoice_ids['other']}" not in links

    page.click(f"a[href='/invoices/{invoice_ids['customer']}']")
    assert page.inner_text("h1").startswith("Acme Health Ltd")

    for forbidden in (invoice_ids["other"], invoice_ids["draft"]):
        response = page.goto(f"{base}/invoices/{forbidden}")
        assert response.status == 404
        assert page.inner_text("h1") == "Not found"
        assert "Northwind" not in page.content()
    assert page.goto(f"{base}/audit").status == 403
