"""What every page shares: security headers, cookie flags, the environment banner, nothing the CSP forbids."""

from __future__ import annotations

import re

import pytest

from admin_app import create_app

from .conftest import form_post

PAGES = ("/", "/invoices", "/audit", "/admin/users", "/admin/users/new")


def test_security_headers_on_pages_and_errors(portal_client, signed_in_client):
    admin = signed_in_client("admin")
    for response in (portal_client.get("/login"), admin.get("/admin/users"), admin.get("/invoices"),
                     portal_client.get("/no/such/page")):
        headers = response.headers
        assert "default-src 'self'" in headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "same-origin"
        assert headers["Cache-Control"] == "no-store"


def test_the_session_cookie_is_http_only_and_same_site(portal_client, users):
    response = form_post(portal_client, "/login", {"email": users["finance"].email,
                                                   "password": "correct horse battery staple"})
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_production_cookies_are_secure_and_pages_ask_for_https(db_url, portal_sessions, monkeypatch):
    monkeypatch.setenv("BILLING_SECRET_KEY", "test-only")
    app = create_app({"BILLING_ENV": "uk-prod", "DATABASE_URL": db_url})
    client = app.test_client()
    page = client.get("/login")
    assert "max-age=31536000" in page.headers["Strict-Transport-Security"]
    assert "Secure" in page.headers["Set-Cookie"] and "HttpOnly" in page.headers["Set-Cookie"]
    assert "UK production" in page.get_data(as_text=True)
    assert client.get("/environment.css").get_data(as_text=True) == ":root { --environment: #7a1f1f; }\n"
    app.extensions["billing.engine"].dispose()


def test_production_needs_its_secret_key(db_url, monkeypatch):
    monkeypatch.delenv("BILLING_SECRET_KEY", raising=False)
    with pytest.raises(RuntimeError, match="BILLING_SECRET_KEY"):
        create_app({"BILLING_ENV": "us-prod", "DATABASE_URL": db_url})


@pytest.mark.parametrize("path", PAGES)
def test_every_page_shows_the_environment_and_nothing_inline(signed_in_client, path):
    page = signed_in_client("admin" if path.startswith("/admin") else "finance").get(path).get_data(as_text=True)
    assert re.search(r'<div class="environment" role="note" aria-label="Environment">\s*'
                     r'<span class="environment-name">Test</span>', page)
    assert 'href="/environment.css"' in page
    assert "style=" not in page and "<script" not in page and " on" + "click" not in page
    assert "http://" not in page and "https://" not in page   # nothing from another site


def test_the_login_page_too(portal_client):
    page = portal_client.get("/login").get_data(as_text=True)
    assert '<span class="environment-name">Test</span>' in page and "style=" not in page


def test_nothing_changes_over_get(portal_app):
    changing = [rule.rule for rule in portal_app.url_map.iter_rules()
                if rule.endpoint.startswith(("admin.", "auth.logout")) and "GET" in rule.methods
                and rule.endpoint not in ("admin.users", "admin.user", "admin.new_user",
                                          # their GET only asks first (test_admin.py: nothing changes)
                                          "admin.disable", "admin.reset_mfa", "admin.reset_password")]
    assert changing == []
