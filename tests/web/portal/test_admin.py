"""User administration in the portal and on the command line, each change in the audit log."""

from __future__ import annotations

import re

import pytest
from db.conftest import cli  # noqa: F401  (tests/db/conftest.py: `billing …` in this process)
from sqlalchemy import select

from audit.log import AuditEntry
from identity.accounts import User

from .conftest import form_post


def entries(sessions, prefix: str = "user.") -> list[tuple[str, str, str]]:
    with sessions() as session:
        rows = session.scalars(select(AuditEntry).where(AuditEntry.action.like(f"{prefix}%"))
                               .order_by(AuditEntry.sequence))
        return [(e.actor, e.action, e.resource) for e in rows]


def test_an_admin_adds_a_user_who_then_enrols(signed_in_client, portal_client, portal_sessions):
    admin = signed_in_client("admin")
    refused = form_post(admin, "/admin/users/new", {"email": "Kim@Example.com", "role": "customer_finance",
                                                    "customer": ""})
    page = refused.get_data(as_text=True)
    assert 'value="Kim@Example.com"' in page
    assert re.search(r'id="customer-error">A customer_finance user needs the customer', page)
    added = form_post(admin, "/admin/users/new", {"email": "Kim@Example.com", "role": "customer_finance",
                                                  "customer": "acme-health"})
    password = re.search(r'id="first-password">([^<]+)<', added.get_data(as_text=True)).group(1)
    with portal_sessions() as session:
        kim = session.scalar(select(User).where(User.email == "kim@example.com"))
        assert (kim.role, kim.customer, kim.enrolled) == ("customer_finance", "acme-health", False)
        assert password not in kim.password_hash and kim.password_hash.startswith("scrypt:")
    signed = form_post(portal_client, "/login", {"email": "kim@example.com", "password": password})
    assert signed.headers["Location"] == "/login/enrol"
    assert entries(portal_sessions)[-1] == ("admin@example.com", "user.add", "user:kim@example.com")


def test_role_change_disable_and_reset_mfa_end_what_they_must(signed_in_client, users, portal_sessions,
                                                            portal_client):
    admin = signed_in_client("admin")
    finance = signed_in_client("finance")
    page = f"/admin/users/{users['finance'].id}"
    changed = form_post(admin, f"{page}/role", {"role": "deal_desk", "customer": "acme-health"}, page=page)
    assert changed.status_code == 302
    assert finance.get("/invoices").status_code == 403        # the new role applies at the next request
    assert form_post(admin, f"{page}/reset-mfa", {}, page=page).status_code == 302
    assert finance.get("/").headers["Location"].startswith("/login")   # MFA reset ends the sessions
    with portal_sessions() as session:
        user = session.get(User, users["finance"].id)
        assert (user.role, user.customer, user.enrolled, user.totp_secret) == ("deal_desk", None, False, None)
    assert form_post(portal_client, "/login", {"email": users["finance"].email, "password": "correct horse battery staple"}
                     ).headers["Location"] == "/login/enrol"
    again = signed_in_client("deal_desk")
    assert form_post(admin, f"/admin/users/{users['deal_desk'].id}/disable", {}, page=page).status_code == 302
    assert again.get("/").headers["Location"].startswith("/login")
    assert [action for _, action, _ in entries(portal_sessions)][-3:] == ["user.role", "user.reset_mfa",
                                                                         "user.disable"]
    with portal_sessions() as session:
        role = session.scalar(select(AuditEntry).where(AuditEntry.action == "user.role"))
        assert role.details == {"before": {"role": "finance", "customer": None},
                                "after": {"role": "deal_desk", "customer": None}}


def test_the_last_active_admin_stays(signed_in_client, users, portal_sessions):
    admin = signed_in_client("admin")
    page = f"/admin/users/{users['admin'].id}"
    refused = form_post(admin, f"{page}/disable", {}, page=page, follow_redirects=True)
    assert "cannot disable the last active admin" in refused.get_data(as_text=True)
    demoted = form_post(admin, f"{page}/role", {"role": "finance", "customer": ""}, page=page)
    assert demoted.status_code == 400 and "Cannot take the admin role from the last active admin." in demoted.get_data(
        as_text=True)
    with portal_sessions() as session:
        assert session.get(User, users["admin"].id).role == "admin"


def test_admin_actions_need_the_csrf_token(signed_in_client, users, portal_sessions):
    admin = signed_in_client("admin")
    refused = admin.post(f"/admin/users/{users['finance'].id}/disable")
    assert refused.status_code == 400 and "This form has expired" in refused.get_data(as_text=True)
    forged = admin.post(f"/admin/users/{users['finance'].id}/disable", data={"csrf_token": "forged"})
    assert forged.status_code == 400
    with portal_sessions() as session:
        assert not session.get(User, users["finance"].id).disabled


def test_the_command_line_manages_users(cli, portal_sessions, monkeypatch):  # noqa: F811
    monkeypatch.setenv("BILLING_ENV", "test")
    status, password, err = cli("user", "add", "Ops@Example.com", "--role", "admin")
    assert status == 0 and "shown only this once" in err and len(password.strip()) == 16
    assert cli("user", "add", "ops@example.com", "--role", "admin")[0] == 1
    status, _, err = cli("user", "add", "c@example.com", "--role", "customer_finance", "--customer", "nobody")
    assert status == 1 and "there is no contract 'nobody'" in err
    assert cli("user", "add", "c@example.com", "--role", "customer_finance", "--customer", "acme-health")[0] == 0
    for command in ("disable", "enable", "unlock", "reset-mfa"):
        status, out, _ = cli("user", command, "c@example.com")
        assert status == 0, command
    assert cli("user", "disable", "nobody@example.com")[:1] == (1,)
    status, out, _ = cli("user", "list")
    assert "c@example.com  customer_finance  customer acme-health  active  mfa at next sign-in" in out
    made = entries(portal_sessions)
    assert [action for _, action, _ in made] == ["user.add", "user.add", "user.disable", "user.enable",
                                                 "user.unlock", "user.reset_mfa"]
    assert all(actor.startswith("cli:") for actor, _, _ in made)


@pytest.mark.parametrize("environment", ["us-prod", "nowhere"])
def test_the_command_line_records_the_environment(cli, portal_sessions, monkeypatch, environment):  # noqa: F811
    monkeypatch.setenv("BILLING_ENV", environment)
    status, _, err = cli("user", "add", "e@example.com", "--role", "finance")
    if environment == "nowhere":
        assert status == 2 and "BILLING_ENV='nowhere' names no environment" in err
        return
    assert status == 0
    with portal_sessions() as session:
        assert session.scalar(select(AuditEntry.environment).where(AuditEntry.action == "user.add")) == "us-prod"


def test_a_role_without_a_customer_drops_the_customer(signed_in_client, users, portal_sessions):
    admin = signed_in_client("admin")
    page = f"/admin/users/{users['customer_finance'].id}"
    form_post(admin, f"{page}/role", {"role": "finance", "customer": "acme-health"}, page=page)
    with portal_sessions() as session:   # the select kept the old customer; a finance user has none
        assert session.get(User, users["customer_finance"].id).customer is None
