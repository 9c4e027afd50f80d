"""User administration in the portal and on the command line, each change in the audit log."""

from __future__ import annotations

import re

import pytest
from db.conftest import cli  # noqa: F401  (tests/db/conftest.py: `billing …` in this process)
from sqlalchemy import select

from audit.log import AuditEntry
from identity.accounts import User

from .conftest import csrf_token, form_post


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
    assert re.search(r'id="customer-error">Choose the customer whose invoices and usage this customer finance user '
                     r'may see\.<', page)
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
    assert form_post(admin, f"{page}/reset-mfa", {"confirmed": "yes"}, page=page).status_code == 302
    assert finance.get("/").headers["Location"].startswith("/login")   # MFA reset ends the sessions
    with portal_sessions() as session:
        user = session.get(User, users["finance"].id)
        assert (user.role, user.customer, user.enrolled, user.totp_secret) == ("deal_desk", None, False, None)
    assert form_post(portal_client, "/login", {"email": users["finance"].email, "password": "correct horse battery staple"}
                     ).headers["Location"] == "/login/enrol"
    again = signed_in_client("deal_desk")
    assert form_post(admin, f"/admin/users/{users['deal_desk'].id}/disable", {"confirmed": "yes"},
                     page=page).status_code == 302
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
    refused = form_post(admin, f"{page}/disable", {"confirmed": "yes"}, page=page, follow_redirects=True)
    assert "cannot disable the last active admin" in refused.get_data(as_text=True)
    demoted = form_post(admin, f"{page}/role", {"role": "finance", "customer": ""}, page=page)
    assert demoted.status_code == 400 and "Cannot take the admin role from the last active admin." in demoted.get_data(
        as_text=True)
    with portal_sessions() as session:
        assert session.get(User, users["admin"].id).role == "admin"


def test_admin_actions_need_the_csrf_token(signed_in_client, users, portal_sessions):
    admin = signed_in_client("admin")
    refused = admin.post(f"/admin/users/{users['finance'].id}/disable", data={"confirmed": "yes"})
    assert refused.status_code == 400 and "This form has expired" in refused.get_data(as_text=True)
    forged = admin.post(f"/admin/users/{users['finance'].id}/disable", data={"csrf_token": "forged", "confirmed": "yes"})
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


@pytest.mark.parametrize("what, question", [("disable", "Disable finance@example.com?"),
                                            ("reset-mfa", "Reset the two-step sign-in of finance@example.com?"),
                                            ("reset-password", "Reset the password of finance@example.com?")])
def test_disable_and_the_resets_ask_first(signed_in_client, users, portal_sessions, what, question):
    admin = signed_in_client("admin")
    user_page = admin.get(f"/admin/users/{users['finance'].id}").get_data(as_text=True)
    assert f'href="/admin/users/{users["finance"].id}/{what}"' in user_page    # a link to the question, not a POST
    asked = admin.get(f"/admin/users/{users['finance'].id}/{what}")
    page = asked.get_data(as_text=True)
    assert asked.status_code == 200 and question in page and 'name="csrf_token"' in page
    # a POST that did not come from the question (no mark) asks it again and changes nothing
    again = form_post(admin, f"/admin/users/{users['finance'].id}/{what}", {})
    assert again.status_code == 200 and question in again.get_data(as_text=True)
    with portal_sessions() as session:
        user = session.get(User, users["finance"].id)
        assert (user.disabled, user.enrolled, user.must_change_password) == (False, True, False)
    assert entries(portal_sessions, "user.") == [("cli:test", "user.add", f"user:{u.email}") for u in users.values()]


def test_an_admin_resets_a_password_and_the_user_must_change_it_first(signed_in_client, portal_app, users,
                                                                       portal_sessions, portal_client):
    admin = signed_in_client("admin")
    finance = signed_in_client("finance")
    path = f"/admin/users/{users['finance'].id}/reset-password"
    done = form_post(admin, path, {"confirmed": "yes", "password": ""})
    password = re.search(r'id="temporary-password">([^<]+)<', done.get_data(as_text=True)).group(1)
    assert len(password) == 16
    assert finance.get("/invoices").headers["Location"].startswith("/login")     # the reset ended the sessions
    assert form_post(portal_client, "/login", {"email": users["finance"].email, "password": "correct horse battery staple"}
                     ).status_code == 200                                         # the old password is gone
    assert form_post(portal_client, "/login", {"email": users["finance"].email, "password": password}
                     ).headers["Location"] == "/login/code"
    reset = signed_in_client("finance")
    routes = [rule for rule in portal_app.url_map.iter_rules() if "GET" in rule.methods and not rule.arguments]
    with portal_app.test_request_context():
        from admin_app.access import API_KEY, PUBLIC, rule_for
        declared = {rule.rule: rule_for(rule.endpoint) for rule in routes if rule.endpoint != "auth.password"}
    guarded = [path_ for path_, rule in declared.items() if rule.kind not in (PUBLIC, API_KEY)
               and (rule.kind != "roles" or "finance" in rule.roles)]     # what finance may reach: the rest is 403
    assert len(guarded) >= 6
    for path_ in guarded:
        assert reset.get(path_).headers.get("Location") == "/account/password", path_
    asked = reset.get("/account/password").get_data(as_text=True)
    approve = reset.post("/invoices/1/approve", data={"csrf_token": csrf_token(asked)})
    assert approve.headers.get("Location") == "/account/password"
    assert "An administrator reset your password" in asked and ">Cancel<" not in asked
    changed = form_post(reset, "/account/password", {"current_password": password,
                                                     "new_password": "a brand new pass phrase",
                                                     "confirm_password": "a brand new pass phrase"})
    assert changed.headers["Location"] == "/"
    assert reset.get("/invoices").status_code == 200
    with portal_sessions() as session:
        assert not session.get(User, users["finance"].id).must_change_password
        reset_entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "user.reset_password"))
        assert (reset_entry.actor, reset_entry.details) == ("admin@example.com",
                                                            {"password": "generated", "sessions_ended": 1})
        change = session.scalar(select(AuditEntry).where(AuditEntry.action == "user.password"))
        assert change.details == {"other_sessions_ended": 0, "after_reset": True}


def test_a_typed_temporary_password_follows_the_password_rules(signed_in_client, users, portal_sessions):
    admin = signed_in_client("admin")
    path = f"/admin/users/{users['finance'].id}/reset-password"
    refused = form_post(admin, path, {"confirmed": "yes", "password": "short"})
    assert refused.status_code == 400
    assert 'id="password-error">A password needs at least 12 characters.<' in refused.get_data(as_text=True)
    typed = form_post(admin, path, {"confirmed": "yes", "password": "a typed temporary one"})
    page = typed.get_data(as_text=True)
    assert typed.status_code == 200 and "a typed temporary one" not in page and "temporary password you typed" in page
    with portal_sessions() as session:
        assert session.get(User, users["finance"].id).must_change_password
        assert session.scalar(select(AuditEntry.details).where(AuditEntry.action == "user.reset_password")) == {
            "password": "typed by the admin", "sessions_ended": 0}


def test_the_command_line_resets_a_password(cli, portal_sessions, users, monkeypatch):  # noqa: F811
    monkeypatch.setenv("BILLING_ENV", "test")
    status, out, err = cli("user", "reset-password", users["finance"].email)
    assert status == 0 and "must change it at their next sign-in" in err and len(out.strip()) == 16
    assert cli("user", "reset-password", "nobody@example.com")[0] == 1
    with portal_sessions() as session:
        user = session.get(User, users["finance"].id)
        assert user.must_change_password and user.password_hash.startswith("scrypt:")
    assert entries(portal_sessions)[-1][1:] == ("user.reset_password", f"user:{users['finance'].email}")
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("short\n"))
    status, _, err = cli("user", "reset-password", users["finance"].email, "--password-stdin")
    assert status == 1 and "at least 12 characters" in err
