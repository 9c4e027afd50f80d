"""Signing in and out: a password, then a TOTP code, then a session (identity/signin.py does the checking).

    GET/POST /login          the password
    GET/POST /login/enrol    first sign-in: scan the QR code, confirm with a code; recovery codes are shown once
    GET/POST /login/code     every later sign-in: a code from the authenticator, or a recovery code
    POST     /logout         ends the session (server side: the cookie is worth nothing after it)
    GET/POST /account/password   a signed-in user changes their own password; their other sessions end

Between the password and the code, the Flask session holds only who passed the
password and when (for SIGN_IN_STEP_MINUTES). This module also installs the
app's sign-in sessions and CSRF protection: every POST, PUT, PATCH and DELETE
needs the form's token, except on routes declared `api_key_route` (a machine
with a bearer key has no cookie for another site to ride on).
"""

from __future__ import annotations

import segno
from flask import Blueprint, Flask, current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, logout_user
from flask_wtf.csrf import CSRFProtect

from admin_app import access, auditing, sessions
from admin_app.access import public, signed_in
from admin_app.database import db_session
from admin_app.forms import CodeForm, LoginForm, PasswordChangeForm
from admin_app.refusals import beside_field, refusal_text
from admin_app.sessions import now, safe_next, sign_in, sign_out
from engine.refusal import Refusal
from identity.accounts import User, UserSession, normalised_email
from identity.signin import (
    Lockout,
    change_password,
    check_password,
    check_second_factor,
    finish_enrolment,
    provisioning_uri,
    recovery_codes_left,
    start_enrolment,
)

blueprint = Blueprint("auth", __name__)
csrf = CSRFProtect()
SAFE_METHODS = ("GET", "HEAD", "OPTIONS", "TRACE")


def init_app(app: Flask) -> None:
    sessions.init_app(app)
    app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)   # checked below, by each route's declaration
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)       # a token lives as long as its session
    app.config.setdefault("LOGIN_MAX_FAILURES", 5)
    app.config.setdefault("LOGIN_LOCKOUT_MINUTES", 15)
    app.config.setdefault("LOGIN_ADDRESS_MAX_FAILURES", 20)
    app.config.setdefault("LOGIN_DELAY_SECONDS", 30)
    app.config.setdefault("SIGN_IN_STEP_MINUTES", 5)
    csrf.init_app(app)
    app.before_request(_protect_state_changes)


def _protect_state_changes() -> None:
    if request.method in SAFE_METHODS or request.endpoint is None:
        return
    rule = access.rule_for(request.endpoint)
    if rule is not None and rule.kind == access.API_KEY:
        return
    csrf.protect()


def lockout() -> Lockout:
    config = current_app.config
    return Lockout(config["LOGIN_MAX_FAILURES"], config["LOGIN_LOCKOUT_MINUTES"], config["LOGIN_ADDRESS_MAX_FAILURES"],
                   config["LOGIN_DELAY_SECONDS"])


@blueprint.route("/login", methods=["GET", "POST"])
@public
def login():
    if current_user.is_authenticated:
        return redirect(safe_next(request.args.get("next")) or url_for("portal.home"))
    form = LoginForm()
    if form.validate_on_submit():
        email = auditing.printable(normalised_email(form.email.data))
        step = check_password(db_session(), auditing.actor(email), email, form.password.data, lockout(), now())
        db_session().commit()
        if isinstance(step, Refusal):
            beside_field(form, step)
        else:
            target = safe_next(request.args.get("next"))
            session.clear()
            session["signin"] = {"user": step.id, "since": now().timestamp(), "next": target}
            return redirect(url_for("auth.code" if step.enrolled else "auth.enrol"))
    return render_template("portal/login.html", form=form)


def _waiting() -> User | None:
    """The user who passed the password step a moment ago, if any."""
    state = session.get("signin")
    if not state or now().timestamp() - state["since"] > current_app.config["SIGN_IN_STEP_MINUTES"] * 60:
        return None
    user = db_session().get(User, state["user"])
    return None if user is None or user.disabled else user


def _start_again():
    session.pop("signin", None)
    flash("Please sign in again.", "notice")
    return redirect(url_for("auth.login"))


@blueprint.route("/login/enrol", methods=["GET", "POST"])
@public
def enrol():
    user = _waiting()
    if user is None:
        return _start_again()
    if user.enrolled:
        return redirect(url_for("auth.code"))
    form = CodeForm()
    if form.validate_on_submit():
        codes = finish_enrolment(db_session(), auditing.actor(user.email), user, form.code.data, lockout(), now())
        if isinstance(codes, Refusal):
            db_session().commit()
            beside_field(form, codes)
            form.code.data = ""   # a one-time credential is never shown back
        else:
            target = session["signin"]["next"]
            sign_in(user)
            db_session().commit()
            return render_template("portal/recovery_codes.html", codes=codes,
                                   target=target or url_for("portal.home"))
    secret = start_enrolment(db_session(), user)
    db_session().commit()
    issuer = f"Billing {current_app.config['BILLING_ENVIRONMENT'].title}"
    qr = segno.make(provisioning_uri(user, issuer), error="m").svg_data_uri(scale=5, border=2, dark="#1f2933")
    grouped = " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))
    return render_template("portal/enrol.html", form=form, qr=qr, secret=grouped, email=user.email)


@blueprint.route("/login/code", methods=["GET", "POST"])
@public
def code():
    user = _waiting()
    if user is None:
        return _start_again()
    if not user.enrolled:
        return redirect(url_for("auth.enrol"))
    form = CodeForm()
    if form.validate_on_submit():
        method = check_second_factor(db_session(), auditing.actor(user.email), user, form.code.data, lockout(),
                                     now())
        if isinstance(method, Refusal):
            db_session().commit()
            beside_field(form, method)
            form.code.data = ""
        else:
            target = session["signin"]["next"]
            sign_in(user)
            db_session().commit()
            if method == "recovery code":
                left = recovery_codes_left(db_session(), user)
                flash(f"You signed in with a recovery code; {left} left. If your authenticator is lost, "
                      "ask an administrator to reset your MFA.", "notice")
            return redirect(target or url_for("portal.home"))
    return render_template("portal/code.html", form=form, email=user.email)


@blueprint.post("/logout")
@signed_in
def logout():
    auditing.record("logout", f"user:{current_user.email}")
    sign_out()
    db_session().commit()
    flash("You are signed out.", "notice")
    return redirect(url_for("auth.login"))


@blueprint.route("/account/password", methods=["GET", "POST"])
@signed_in
def password():
    form = PasswordChangeForm()
    if form.validate_on_submit():
        user = db_session().get(User, current_user.user_id)
        this_session = db_session().get(UserSession, current_user.session_id)
        ended = change_password(db_session(), auditing.actor(), user, form.current_password.data,
                                form.new_password.data, lockout(), now(), keep=this_session)
        db_session().commit()
        if isinstance(ended, Refusal):
            if user.locked(now()):   # the lock ended this session too
                logout_user()
                session.clear()
                flash(refusal_text(ended), "error")
                return redirect(url_for("auth.login"))
            beside_field(form, ended)
        else:
            others = f" Your {ended} other session{'s' if ended != 1 else ''} ended." if ended else ""
            flash(f"Your password is changed.{others}", "done")
            return redirect(url_for("portal.home"))
    return render_template("portal/account/password.html", form=form)
