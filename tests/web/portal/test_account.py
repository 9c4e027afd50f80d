"""A signed-in user changes their own password: the current one, the new one twice; the reason for a refusal
stands beside its field; the change is audited and ends the user's other sessions, not this one."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from audit.log import AuditEntry, verify
from engine.refusal import Refused
from identity import accounts
from identity.accounts import User

from .conftest import PASSWORD, TEST_ACTOR, form_post

NEW = "a much longer passphrase"
PAGE = "/account/password"


def change(client, current: str, new: str, again: str | None = None):
    return form_post(client, PAGE, {"current_password": current, "new_password": new,
                                    "confirm_password": new if again is None else again})


def error_beside(page: str, field: str) -> str | None:
    found = re.search(rf'<p class="error" id="{field}-error">([^<]*)</p>', page)
    return found.group(1) if found else None


def entries(sessions, action: str) -> list[AuditEntry]:
    with sessions() as session:
        assert verify(session) is None
        return list(session.scalars(select(AuditEntry).where(AuditEntry.action == action)
                                    .order_by(AuditEntry.sequence)))


def signs_in_with(client, email: str, password: str) -> bool:
    return form_post(client, "/login", {"email": email, "password": password}).status_code == 302


def test_every_signed_in_user_reaches_the_form_and_nobody_else(signed_in_client, portal_client):
    for role in ("admin", "deal_desk", "finance", "customer_finance"):
        page = signed_in_client(role).get(PAGE)
        assert page.status_code == 200 and 'name="current_password"' in page.get_data(as_text=True)
    assert portal_client.get(PAGE).headers["Location"].startswith("/login")


def test_the_account_link_is_on_every_page(signed_in_client):
    page = signed_in_client("finance").get("/").get_data(as_text=True)
    assert f'href="{PAGE}"' in page


def test_a_change_ends_the_other_sessions_and_keeps_this_one(signed_in_client, portal_client, portal_sessions, users):
    finance, elsewhere, colleague = signed_in_client("finance"), signed_in_client("finance"), signed_in_client("admin")
    done = change(finance, PASSWORD, NEW)
    assert done.status_code == 302 and done.headers["Location"] == "/"
    assert "Your password is changed. Your 1 other session ended." in finance.get("/").get_data(as_text=True)
    assert finance.get("/invoices").status_code == 200
    assert elsewhere.get("/invoices").headers["Location"].startswith("/login")
    assert colleague.get("/audit").status_code == 200          # another user's session is untouched

    [entry] = entries(portal_sessions, "user.password")
    assert (entry.actor, entry.resource, entry.outcome) == (users["finance"].email, f"user:{users['finance'].email}",
                                                            "success")
    assert entry.details == {"other_sessions_ended": 1} and entry.environment == "test" and entry.ip == "127.0.0.1"
    assert not signs_in_with(portal_client, users["finance"].email, PASSWORD)
    assert signs_in_with(portal_client, users["finance"].email, NEW)


def test_a_wrong_current_password_is_said_beside_it_and_changes_nothing(signed_in_client, portal_sessions, users):
    client = signed_in_client("finance")
    page = change(client, "not my password", NEW)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert error_beside(html, "current_password") == "This is not your current password."
    assert NEW not in html and "not my password" not in html   # a password is never shown back
    [entry] = entries(portal_sessions, "user.password")
    assert entry.outcome == "failure" and entry.details["reason"] == "wrong current password"
    with portal_sessions() as session:
        assert session.get(User, users["finance"].id).failed_attempts == 1


def test_the_new_password_rules(signed_in_client, users, portal_sessions):
    client = signed_in_client("finance")
    short = change(client, PASSWORD, "too short").get_data(as_text=True)
    assert error_beside(short, "new_password") == "A password needs at least 12 characters."
    email = change(client, PASSWORD, users["finance"].email.upper()).get_data(as_text=True)
    assert error_beside(email, "new_password") == "A password must not be your email address."
    same = change(client, PASSWORD, PASSWORD).get_data(as_text=True)
    assert error_beside(same, "new_password") == "The new password must differ from the current one."
    differ = change(client, PASSWORD, NEW, NEW + "!").get_data(as_text=True)
    assert error_beside(differ, "confirm_password") == "The two new passwords are not the same."
    both = change(client, PASSWORD, "too short", "too shirt").get_data(as_text=True)   # every reason at once
    assert error_beside(both, "new_password") == "A password needs at least 12 characters."
    assert error_beside(both, "confirm_password") == "The two new passwords are not the same."
    empty = change(client, "", "", "").get_data(as_text=True)
    assert error_beside(empty, "current_password") == "Enter your current password."
    assert error_beside(empty, "new_password") == "Enter a new password."
    with portal_sessions() as session:       # a rule refused: the current password was not even tried
        assert session.get(User, users["finance"].id).failed_attempts == 0
    assert [e.outcome for e in entries(portal_sessions, "user.password")] == []


def test_guessing_the_current_password_locks_the_account_and_ends_its_sessions(signed_in_client, portal_sessions,
                                                                              portal_app):
    client, other = signed_in_client("finance"), signed_in_client("finance")
    for _ in range(portal_app.config["LOGIN_MAX_FAILURES"] - 1):
        assert change(client, "guess", NEW).status_code == 200
    locked = change(client, "guess", NEW)
    assert locked.status_code == 302 and locked.headers["Location"] == "/login"
    assert "locked after repeated failed attempts" in client.get("/login").get_data(as_text=True)
    assert client.get("/invoices").headers["Location"].startswith("/login")
    assert other.get("/invoices").headers["Location"].startswith("/login")
    assert [e.action for e in entries(portal_sessions, "login.locked")] == ["login.locked"]


def test_a_change_needs_the_forms_token(signed_in_client):
    client = signed_in_client("finance")
    response = client.post(PAGE, data={"current_password": PASSWORD, "new_password": NEW, "confirm_password": NEW})
    assert response.status_code == 400


def test_a_new_user_may_not_have_their_email_as_password_either(portal_sessions):
    email = "long.name.here@example.com"
    with portal_sessions.begin() as session:
        with pytest.raises(Refused, match="must not be your email address"):
            accounts.add_user(session, TEST_ACTOR, email, "finance", password=email)
