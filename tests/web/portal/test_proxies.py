"""Behind a load balancer: the client's address comes from X-Forwarded-For only when the environment trusts
that many proxies (admin_app/security.py); the audit log and the per-address sign-in limit use it."""

from __future__ import annotations

import dataclasses

import pytest
from flask import request
from sqlalchemy import select

from admin_app import create_app
from admin_app.access import public
from audit.log import AuditEntry
from identity.accounts import UserSession
from settings import environment

from .conftest import PASSWORD, form_post

CLIENT, OTHER_CLIENT, BALANCER = "203.0.113.9", "198.51.100.7", "10.0.0.2"


@pytest.fixture
def app_behind(db_url, portal_sessions, portal_clock, monkeypatch):
    """`app_behind(n)`: the portal in the test environment with n trusted proxies in front of it."""
    monkeypatch.setenv("BILLING_SECRET_KEY", "test-only")
    test = environment.load("test")
    made = []

    def make(proxies: int):
        monkeypatch.setattr(environment, "load", lambda name=None: dataclasses.replace(test, trusted_proxies=proxies))
        app = create_app({"TESTING": True, "DATABASE_URL": db_url, "PORTAL_CLOCK": portal_clock,
                          "LOGIN_ADDRESS_MAX_FAILURES": 3})
        made.append(app)
        return app

    yield make
    for app in made:
        app.extensions["billing.engine"].dispose()


def attempt(app, email: str, password: str, forwarded_for: str | None):
    client = app.test_client()
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    return form_post(client, "/login", {"email": email, "password": password}, headers=headers)


def addresses(sessions, action: str) -> list[str | None]:
    with sessions() as session:
        return list(session.scalars(select(AuditEntry.ip).where(AuditEntry.action == action)
                                    .order_by(AuditEntry.sequence)))


def test_without_trusted_proxies_a_forged_forwarded_for_is_ignored(app_behind, portal_sessions, users):
    app = app_behind(0)
    attempt(app, users["finance"].email, "wrong password", CLIENT)
    assert addresses(portal_sessions, "login.password") == ["127.0.0.1"]


@pytest.mark.parametrize("proxies, forwarded_for", [
    (1, CLIENT),
    (1, f"{OTHER_CLIENT}, {CLIENT}"),                    # the client forged the first entry; the balancer added its own
    (2, f"{OTHER_CLIENT}, {CLIENT}, {BALANCER}"),        # two proxies: the second from the right is the client
])
def test_with_trusted_proxies_the_audit_records_the_client(app_behind, portal_sessions, users, proxies,
                                                           forwarded_for):
    app = app_behind(proxies)
    attempt(app, users["finance"].email, "wrong password", forwarded_for)
    assert addresses(portal_sessions, "login.password") == [CLIENT]


def test_a_session_remembers_the_client_behind_the_proxy(app_behind, portal_sessions, users, portal_clock):
    client, behind = app_behind(1).test_client(), {"X-Forwarded-For": CLIENT}
    form_post(client, "/login", {"email": users["finance"].email, "password": PASSWORD}, headers=behind)
    signed_in = form_post(client, "/login/code", {"code": users["finance"].code(portal_clock())}, headers=behind)
    assert signed_in.headers["Location"] == "/"
    with portal_sessions() as session:
        assert session.scalars(select(UserSession.ip)).all() == [CLIENT]
    assert addresses(portal_sessions, "login.mfa") == [CLIENT]


def test_the_address_limit_counts_the_client_behind_the_proxy(app_behind, users):
    app = app_behind(1)
    email = users["finance"].email
    for _ in range(3):
        attempt(app, email, "wrong password", CLIENT)
    refused = attempt(app, email, PASSWORD, CLIENT)
    assert refused.status_code == 200 and "Too many failed attempts from your address" in refused.get_data(as_text=True)
    elsewhere = attempt(app, email, PASSWORD, OTHER_CLIENT)
    assert elsewhere.status_code == 302 and elsewhere.headers["Location"] == "/login/code"


def test_without_trusted_proxies_a_forged_address_does_not_escape_the_limit(app_behind, users):
    app = app_behind(0)
    email = users["finance"].email
    for number in range(3):
        attempt(app, email, "wrong password", f"192.0.2.{number}")
    refused = attempt(app, email, PASSWORD, OTHER_CLIENT)
    assert refused.status_code == 200 and "Too many failed attempts from your address" in refused.get_data(as_text=True)


def test_the_scheme_comes_from_the_proxy_only_when_trusted(app_behind):
    for proxies, scheme in ((0, "http"), (1, "https")):
        app = app_behind(proxies)

        @app.get("/scheme")
        @public
        def scheme_seen():
            return request.scheme

        seen = app.test_client().get("/scheme", headers={"X-Forwarded-Proto": "https"})
        assert seen.get_data(as_text=True) == scheme
