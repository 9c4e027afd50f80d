"""User administration, for admins: list, add, change role, disable and enable, unlock, reset MFA, reset the
password.

    GET      /admin/users                      every user, with state (locked, disabled, not enrolled)
    GET/POST /admin/users/new                  a new user; its first password is shown once
    GET      /admin/users/<id>                 one user and what may be done to it
    POST     /admin/users/<id>/role | enable | unlock
    GET/POST /admin/users/<id>/disable | reset-mfa | reset-password
                                               a page that says what will happen, then its confirmed POST; a
                                               reset password is shown once, and changed at the next sign-in

The changes are identity/accounts.py's, which record each one in the audit log
(the same functions `billing user …` calls). A user whose password an admin
reset reaches nothing but the password change page (and sign-out) until they
change it (`init_app`'s hook, after access.py's check).
"""

from __future__ import annotations

from flask import (
    Blueprint,
    Flask,
    abort,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import HiddenField, PasswordField, SelectChoice
from wtforms.validators import Length, Optional

from admin_app import auditing
from admin_app.access import API_KEY, PUBLIC, allow, rule_for
from admin_app.database import db_session
from admin_app.forms import ActionForm, RoleForm, UserForm
from admin_app.refusals import beside_field, not_done, refusal_text
from admin_app.sessions import now
from engine.refusal import Refused
from identity import accounts
from identity.accounts import CUSTOMER_ROLE, User
from identity.signin import recovery_codes_left
from ledger.models import Contract

blueprint = Blueprint("admin", __name__, url_prefix="/admin")
WHILE_PASSWORD_MUST_CHANGE = ("auth.password", "auth.logout")


class ConfirmForm(FlaskForm):
    """The confirmation page's button: its CSRF token and the mark that the page was seen."""

    confirmed = HiddenField()   # "yes" on the page (no default: a POST without it is not confirmed)


class ResetPasswordForm(ConfirmForm):
    password = PasswordField("Temporary password", validators=[Optional(), Length(max=1024)],
                             description="Leave it empty for a new random one, shown once on the next page. "
                                         "The user must change it at their next sign-in.",
                             render_kw={"autocomplete": "new-password"})


def init_app(app: Flask) -> None:
    app.before_request(_password_change_first)


def _password_change_first():
    """After access.py's check: a user whose password an admin reset is sent to the password change page."""
    rule = rule_for(request.endpoint)
    if rule is None or rule.kind in (PUBLIC, API_KEY) or not current_user.is_authenticated:
        return None
    user = db_session().get(User, current_user.user_id)
    if user is None or not user.must_change_password:
        return None
    g.must_change_password = True
    if request.endpoint in WHILE_PASSWORD_MUST_CHANGE:
        return None
    return redirect(url_for("auth.password"))


def _customer_choices() -> list[SelectChoice]:
    contracts = db_session().execute(select(Contract.id, Contract.customer).order_by(Contract.id))
    return [SelectChoice("", "— none —")] + [SelectChoice(id_, f"{name} ({id_})") for id_, name in contracts]


def _user(user_id: int) -> User:
    user = db_session().get(User, user_id)
    if user is None:
        abort(404)
    return user


@blueprint.get("/users")
@allow("admin")
def users():
    return render_template("portal/admin/users.html", users=accounts.list_users(db_session()), now=now())


@blueprint.route("/users/new", methods=["GET", "POST"])
@allow("admin")
def new_user():
    form = UserForm()
    form.customer.choices = _customer_choices()
    if form.validate_on_submit():
        try:
            user, password = accounts.add_user(db_session(), auditing.actor(), form.email.data, form.role.data,
                                               customer=_customer(form), now=now())
        except Refused as refused:
            db_session().rollback()
            _beside_field_or_flash(form, refused)
        else:
            db_session().commit()
            return render_template("portal/admin/user_created.html", user=user, password=password)
    return render_template("portal/admin/user_new.html", form=form)


@blueprint.get("/users/<int:user_id>")
@allow("admin")
def user(user_id: int):
    user = _user(user_id)
    form = RoleForm(data={"role": user.role, "customer": user.customer or ""})
    form.customer.choices = _customer_choices()
    return _user_page(user, form)


def _user_page(user: User, form: RoleForm, status: int = 200):
    left = recovery_codes_left(db_session(), user) if user.enrolled else None
    return render_template("portal/admin/user.html", user=user, form=form, action=ActionForm(), now=now(),
                           recovery_codes_left=left), status


@blueprint.post("/users/<int:user_id>/role")
@allow("admin")
def change_role(user_id: int):
    user = _user(user_id)
    form = RoleForm()
    form.customer.choices = _customer_choices()
    if form.validate_on_submit():
        try:
            accounts.change_role(db_session(), auditing.actor(), user, form.role.data, _customer(form), now=now())
        except Refused as refused:
            db_session().rollback()
            _beside_field_or_flash(form, refused)
        else:
            db_session().commit()
            flash(f"{user.email} now has the role {user.role.replace('_', ' ')}.", "done")
            return redirect(url_for("admin.user", user_id=user.id))
    return _user_page(user, form, 400)


def _beside_field_or_flash(form, refused: Refused) -> None:
    if not beside_field(form, refused.refusal):   # a refusal of no field of this form: said above it
        flash(not_done(refused.refusal), "error")


def _customer(form) -> str | None:
    """The customer chosen, for the one role bound to a customer (the select may keep an old choice)."""
    return (form.customer.data or None) if form.role.data == CUSTOMER_ROLE else None


def _change(user_id: int, change, done: str):
    user = _user(user_id)
    try:
        change(db_session(), auditing.actor(), user, now=now())
    except Refused as refused:
        db_session().rollback()
        flash(not_done(refused.refusal), "error")
    else:
        db_session().commit()
        flash(done.format(email=user.email), "done")
    return redirect(url_for("admin.user", user_id=user_id))


CONFIRMATIONS = {
    "disable": ("Disable {email}?",
                ("They can no longer sign in, and their open sessions end now. An admin can enable them again."),
                "Disable the user"),
    "reset-mfa": ("Reset the two-step sign-in of {email}?",
                  ("Their authenticator and recovery codes stop working and their open sessions end now. At their "
                   "next sign-in they set up a new authenticator app."),
                  "Reset MFA"),
    "reset-password": ("Reset the password of {email}?",
                       ("Their current password stops working and their open sessions end now. They sign in with "
                        "the temporary password and must choose a new one before anything else."),
                       "Reset the password"),
}


def _confirm_page(user: User, what: str, form: FlaskForm, status: int = 200):
    title, consequence, button = CONFIRMATIONS[what]
    return render_template("portal/admin/confirm.html", user=user, form=form, title=title.format(email=user.email),
                           consequence=consequence, button=button, action=url_for(request.endpoint, user_id=user.id)
                           ), status


def _confirmed(user_id: int, what: str, change, done: str):
    """GET: the page that says what will happen; POST from it: the change. A POST without the page's mark (an
    old form, a replayed request) shows the page instead of acting."""
    user = _user(user_id)
    form = ConfirmForm()
    if request.method == "POST" and not form.validate_on_submit():
        abort(400)
    if request.method == "GET" or form.confirmed.data != "yes":
        return _confirm_page(user, what, form)
    return _change(user_id, change, done)


@blueprint.route("/users/<int:user_id>/disable", methods=["GET", "POST"])
@allow("admin")
def disable(user_id: int):
    return _confirmed(user_id, "disable", accounts.disable_user, "{email} is disabled; their sessions have ended.")


@blueprint.post("/users/<int:user_id>/enable")
@allow("admin")
def enable(user_id: int):
    return _change(user_id, accounts.enable_user, "{email} is enabled again.")


@blueprint.post("/users/<int:user_id>/unlock")
@allow("admin")
def unlock(user_id: int):
    return _change(user_id, accounts.unlock_user, "{email} is unlocked.")


@blueprint.route("/users/<int:user_id>/reset-mfa", methods=["GET", "POST"])
@allow("admin")
def reset_mfa(user_id: int):
    return _confirmed(user_id, "reset-mfa", accounts.reset_mfa,
                      "MFA of {email} is reset: their next sign-in sets up a new authenticator.")


@blueprint.route("/users/<int:user_id>/reset-password", methods=["GET", "POST"])
@allow("admin")
def reset_password(user_id: int):
    user = _user(user_id)
    form = ResetPasswordForm()
    if request.method == "POST" and not form.validate_on_submit():
        abort(400)
    if request.method == "GET" or form.confirmed.data != "yes":
        return _confirm_page(user, "reset-password", form)
    try:
        password = accounts.reset_password(db_session(), auditing.actor(), user, form.password.data or None,
                                           now=now())
    except Refused as refused:
        db_session().rollback()
        form.password.errors.append(refusal_text(refused.refusal))
        return _confirm_page(user, "reset-password", form, 400)
    db_session().commit()
    return render_template("portal/admin/password_reset.html", user=user, password=password,
                           typed=bool(form.password.data))
