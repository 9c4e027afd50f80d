"""Signing in: password, TOTP enrolment and codes, replay, lockout and its lifting, sessions and their end."""

from __future__ import annotations

import datetime as dt
import re

import pyotp
from sqlalchemy import select

from audit.log import AuditEntry
from identity.accounts import RecoveryCode, User, UserSession

from .conftest import PASSWORD, add_portal_user, csrf_token, form_post


def password_step(client, email: str, password: str = PASSWORD, next_path: str | None = None):
    path = "/login" + (f"?next={next_path}" if next_path else "")
    return form_post(client, path, {"email": email, "password": password})


def code_step(client, code: str, path: str = "/login/code"):
    return form_post(client, path, {"code": code})


def sign_in(client, user, clock):
    assert password_step(client, user.email).headers["Location"] == "/login/code"
    return code_step(client, user.code(clock()))


def audit(sessions, action: str) -> list[AuditEntry]:
    with sessions() as session:
        return list(session.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.sequence)))


def test_first_sign_in_enrols_then_shows_recovery_codes_once(portal_client, portal_sessions, portal_clock):
    user = add_portal_user(portal_sessions, "new@example.com", "finance", enrolled=False)
    response = password_step(portal_client, "NEW@example.com ", next_path="/invoices")
    assert response.headers["Location"] == "/login/enrol"
    assert portal_client.get("/").headers["Location"].startswith("/login")   # not signed in between the steps
    page = portal_client.get("/login/enrol").get_data(as_text=True)
    assert 'src="data:image/svg+xml' in page
    secret = re.search(r'id="totp-secret">([^<]+)<', page).group(1).replace(" ", "")
    assert portal_client.get("/login/enrol").get_data(as_text=True).count(secret[:4]) >= 1   # a reload keeps it
    refused = code_step(portal_client, "000000", "/login/enrol")
    assert "This code is not right" in refused.get_data(as_text=True)
    assert 'value="000000"' not in refused.get_data(as_text=True)
    done = code_step(portal_client, pyotp.TOTP(secret).at(portal_clock()), "/login/enrol")
    codes = re.findall(r"<li><code>([a-z0-9-]+)</code></li>", done.get_data(as_text=True))
    assert len(codes) == 10 and len(set(codes)) == 10
    assert 'href="/invoices"' in done.get_data(as_text=True)
    assert portal_client.get("/invoices").status_code == 200
    with portal_sessions() as session:
        stored = session.scalars(select(RecoveryCode.code_hash)).all()
        assert session.get(User, user.id).enrolled
    assert not {code.replace("-", "") for code in codes} & set(stored)
    assert [e.outcome for e in audit(portal_sessions, "mfa.enrol")] == ["failure", "success"]


def test_a_code_is_accepted_once_only(portal_client, signed_in_client, users, portal_clock, portal_sessions):
    finance = users["finance"]
    code = finance.code(portal_clock())
    assert password_step(portal_client, finance.email).status_code == 302
    assert code_step(portal_client, code).headers["Location"] == "/"
    other = signed_in_client("anonymous")
    assert password_step(other, finance.email).status_code == 302
    replayed = code_step(other, code)
    assert replayed.status_code == 200 and "This code was already used" in replayed.get_data(as_text=True)
    earlier = finance.code(portal_clock() - dt.timedelta(seconds=30))
    assert "already used" in code_step(other, earlier).get_data(as_text=True)   # an older step never comes back
    portal_clock.advance(seconds=30)
    assert code_step(other, finance.code(portal_clock())).headers["Location"] == "/"
    reasons = [e.details["reason"] for e in audit(portal_sessions, "login.mfa") if e.outcome == "failure"]
    assert reasons == ["code already used", "code already used"]


def test_one_step_either_side_is_accepted_not_two(portal_client, users, portal_clock):
    finance = users["finance"]
    password_step(portal_client, finance.email)
    assert "not right" in code_step(portal_client, finance.code(portal_clock() + dt.timedelta(seconds=60))).get_data(
        as_text=True)
    assert code_step(portal_client, finance.code(portal_clock() + dt.timedelta(seconds=30))).status_code == 302


def test_a_recovery_code_signs_in_once(portal_client, portal_sessions, portal_clock):
    user = add_portal_user(portal_sessions, "r@example.com", "finance", enrolled=False)
    password_step(portal_client, user.email)
    page = portal_client.get("/login/enrol").get_data(as_text=True)
    secret = re.search(r'id="totp-secret">([^<]+)<', page).group(1).replace(" ", "")
    done = code_step(portal_client, pyotp.TOTP(secret).at(portal_clock()), "/login/enrol").get_data(as_text=True)
    code = re.findall(r"<li><code>([a-z0-9-]+)</code></li>", done)[3]
    form_post(portal_client, "/logout", {}, page="/")
    password_step(portal_client, user.email)
    signed = code_step(portal_client, code.upper())
    assert signed.headers["Location"] == "/"
    assert "9 left" in portal_client.get("/").get_data(as_text=True)
    form_post(portal_client, "/logout", {}, page="/")
    password_step(portal_client, user.email)
    assert "not right" in code_step(portal_client, code).get_data(as_text=True)
    details = [e.details for e in audit(portal_sessions, "login.mfa") if e.outcome == "success"]
    assert details == [{"method": "recovery code", "recovery_codes_left": 9}]


def test_a_refused_form_keeps_the_email_never_the_password(portal_client, users):
    response = password_step(portal_client, "finance@example.com", "not the password")
    page = response.get_data(as_text=True)
    assert 'value="finance@example.com"' in page
    assert "not the password" not in page
    assert re.search(r'<p class="error" id="password-error">The email or password is not right.</p>', page)
    empty = form_post(portal_client, "/login", {"email": "", "password": ""}).get_data(as_text=True)
    assert "Enter your email address." in empty and "Enter your password." in empty


def test_unknown_email_and_wrong_password_are_told_apart_only_in_the_audit_log(portal_client, users,
                                                                                   portal_sessions):
    unknown = password_step(portal_client, "nobody@example.com").get_data(as_text=True)
    wrong = password_step(portal_client, users["finance"].email, "wrong password!").get_data(as_text=True)
    assert "The email or password is not right." in unknown and "The email or password is not right." in wrong
    entries = audit(portal_sessions, "login.password")
    assert [(e.actor, e.outcome, e.details["reason"]) for e in entries] == [
        ("nobody@example.com", "failure", "unknown email"), ("finance@example.com", "failure", "wrong password")]
    assert all(e.ip == "127.0.0.1" and e.environment == "test" for e in entries)


def test_lockout_after_repeated_wrong_codes_then_admin_unlock(portal_app, portal_client, users, portal_clock,
                                                             portal_sessions, signed_in_client):
    finance = users["finance"]
    limit = portal_app.config["LOGIN_MAX_FAILURES"]
    assert password_step(portal_client, finance.email).status_code == 302
    for _ in range(limit - 1):
        assert "not right" in code_step(portal_client, "123456").get_data(as_text=True)
    assert "This account is locked" in code_step(portal_client, "654321").get_data(as_text=True)
    still = password_step(portal_client, finance.email).get_data(as_text=True)   # the right password, too late
    assert "This account is locked" in still
    [lock] = audit(portal_sessions, "login.locked")
    assert lock.details["failed_attempts"] == limit and lock.resource == "user:finance@example.com"

    admin = signed_in_client("admin")
    page = admin.get(f"/admin/users/{finance.id}").get_data(as_text=True)
    assert "locked until" in page
    unlocked = admin.post(f"/admin/users/{finance.id}/unlock", data={"csrf_token": csrf_token(page)})
    assert unlocked.status_code == 302
    assert [e.actor for e in audit(portal_sessions, "user.unlock")] == ["admin@example.com"]
    assert sign_in(portal_client, finance, portal_clock).headers["Location"] == "/"


def _answers(client, email: str, attempts: int) -> list[str]:
    """What the password step says to `attempts` wrong passwords for `email`: the error of each page."""
    pages = [password_step(client, email, "wrong password!").get_data(as_text=True) for _ in range(attempts)]
    return [re.search(r'<p class="error" id="password-error">([^<]*)</p>', page).group(1) for page in pages]


def test_an_account_and_an_unknown_email_answer_alike_however_often_they_fail(portal_app, portal_client, users):
    attempts = portal_app.config["LOGIN_MAX_FAILURES"] + 3
    known, unknown = _answers(portal_client, users["finance"].email, attempts), \
        _answers(portal_client, "nobody@example.com", attempts)
    assert known == unknown
    assert known[-1].startswith("Too many failed attempts for this email address")
    assert not any("locked" in answer for answer in known)


def test_a_stranger_slows_an_account_down_and_never_locks_it(portal_app, portal_client, users, portal_clock,
                                                             portal_sessions):
    finance, limit = users["finance"], portal_app.config["LOGIN_MAX_FAILURES"]
    delay = dt.timedelta(seconds=portal_app.config["LOGIN_DELAY_SECONDS"])
    assert _answers(portal_client, finance.email, limit)[-1] == "The email or password is not right."
    slowed = password_step(portal_client, finance.email).get_data(as_text=True)   # the right password waits too
    assert "Too many failed attempts for this email address" in slowed
    portal_clock.advance(seconds=delay.total_seconds() + 1)
    assert _answers(portal_client, finance.email, 1) == ["The email or password is not right."]
    portal_clock.advance(seconds=delay.total_seconds() + 1)   # one more failure: the wait doubled
    assert "Too many failed attempts for this email" in password_step(portal_client, finance.email).get_data(
        as_text=True)
    portal_clock.advance(seconds=delay.total_seconds())
    assert sign_in(portal_client, finance, portal_clock).headers["Location"] == "/"
    assert audit(portal_sessions, "login.locked") == []
    assert [e.details["wait_seconds"] for e in audit(portal_sessions, "login.throttled")] == [
        delay.total_seconds(), delay.total_seconds() - 1]


def test_a_lock_runs_out_after_its_delay_and_codes_count_too(portal_app, portal_client, users, portal_clock):
    finance = users["finance"]
    assert password_step(portal_client, finance.email).status_code == 302
    for _ in range(portal_app.config["LOGIN_MAX_FAILURES"] - 1):
        assert "not right" in code_step(portal_client, "123456").get_data(as_text=True)
    assert "locked" in code_step(portal_client, "654321").get_data(as_text=True)
    assert "locked" in code_step(portal_client, finance.code(portal_clock())).get_data(as_text=True)
    portal_clock.advance(minutes=portal_app.config["LOGIN_LOCKOUT_MINUTES"], seconds=1)
    assert sign_in(portal_client, finance, portal_clock).headers["Location"] == "/"


def test_many_failures_from_one_address_are_refused_before_any_password(portal_app, portal_client, users,
                                                                         portal_sessions):
    portal_app.config["LOGIN_ADDRESS_MAX_FAILURES"] = 3
    for n in range(3):
        password_step(portal_client, f"guess{n}@example.com")
    refused = password_step(portal_client, users["finance"].email).get_data(as_text=True)
    assert "Too many failed attempts from your address" in refused
    with portal_sessions() as session:
        assert session.get(User, users["finance"].id).failed_attempts == 0   # no account was charged for it


def test_a_disabled_user_cannot_sign_in(portal_client, users, portal_sessions):
    with portal_sessions.begin() as session:
        session.get(User, users["finance"].id).disabled = True
    assert "This account is disabled" in password_step(portal_client, users["finance"].email).get_data(as_text=True)


def test_sign_in_starts_a_new_session_and_logout_ends_it(portal_client, users, portal_clock, portal_sessions):
    portal_client.get("/login")
    with portal_client.session_transaction() as cookie:
        cookie["planted"] = "by someone else"
        before = dict(cookie)
    sign_in(portal_client, users["finance"], portal_clock)
    with portal_client.session_transaction() as cookie:
        assert set(cookie) & set(before) == set()   # nothing kept from before: no planted key, no old CSRF token
        assert cookie["_user_id"]
        stolen = dict(cookie)
    assert portal_client.get("/").status_code == 200
    assert form_post(portal_client, "/logout", {}, page="/").headers["Location"] == "/login"
    assert portal_client.get("/").status_code == 302
    with portal_client.session_transaction() as cookie:   # the copy of the cookie kept from before logout
        cookie.update(stolen)
    assert portal_client.get("/").headers["Location"].startswith("/login")
    with portal_sessions() as session:
        assert session.scalars(select(UserSession.ended_because)).all() == ["logout"]


def test_idle_timeout_and_absolute_lifetime(portal_app, signed_in_client, portal_clock, portal_sessions):
    client = signed_in_client("finance")
    idle = portal_app.config["SESSION_IDLE_MINUTES"]
    portal_clock.advance(minutes=idle - 1)
    assert client.get("/").status_code == 200
    portal_clock.advance(minutes=idle - 1)             # busy enough: the idle clock started again
    assert client.get("/").status_code == 200
    portal_clock.advance(minutes=idle, seconds=1)
    ended = client.get("/")
    assert ended.headers["Location"] == "/login?next=/"
    assert "without activity" in client.get("/login").get_data(as_text=True)

    busy = signed_in_client("finance")
    lifetime = portal_app.config["PERMANENT_SESSION_LIFETIME"]
    started = portal_clock()
    while busy.get("/").status_code == 200:   # never idle, yet the session ends at its lifetime
        assert portal_clock() - started <= lifetime
        portal_clock.advance(minutes=idle - 1)
    assert portal_clock() - started > lifetime
    assert busy.get("/").headers["Location"].startswith("/login")
    with portal_sessions() as session:
        assert sorted(session.scalars(select(UserSession.ended_because))) == ["idle", "lifetime"]
    assert [e.details["reason"] for e in audit(portal_sessions, "session.end")] == ["idle", "lifetime"]


def test_next_never_leaves_the_site(portal_client, users, portal_clock):
    finance = users["finance"]
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        password_step(portal_client, finance.email, next_path=target)
        assert code_step(portal_client, finance.code(portal_clock())).headers["Location"] == "/"
        form_post(portal_client, "/logout", {}, page="/")
        portal_clock.advance(seconds=30)


def test_the_code_step_needs_the_password_step_and_expires(portal_app, portal_client, users, portal_clock):
    assert portal_client.get("/login/code").headers["Location"] == "/login"
    password_step(portal_client, users["finance"].email)
    token = csrf_token(portal_client.get("/login/code").get_data(as_text=True))
    portal_clock.advance(minutes=portal_app.config["SIGN_IN_STEP_MINUTES"], seconds=1)
    late = portal_client.post("/login/code", data={"csrf_token": token, "code": users["finance"].code(portal_clock())})
    assert late.headers["Location"] == "/login"
