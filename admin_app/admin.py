"""User administration, for admins: list, add, change role, disable and enable, unlock, reset MFA.

    GET      /admin/users                      every user, with state (locked, disabled, not enrolled)
    GET/POST /admin/users/new                  a new user; its first password is shown once
    GET      /admin/users/<id>                 one user and what may be done to it
    POST     /admin/users/<id>/role | disable | enable | unlock | reset-mfa

The changes are store/accounts.py's, which record each one in the audit log
(the same functions `billing user …` calls).
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from sqlalchemy import select
from wtforms import SelectChoice

from admin_app import auditing
from admin_app.access import allow
from admin_app.database import db_session
from admin_app.forms import ActionForm, RoleForm, UserForm
from admin_app.refusals import beside_field, not_done
from admin_app.sessions import now
from identity import accounts
from engine.refusal import Refused
from identity.accounts import CUSTOMER_ROLE, User
from identity.signin import recovery_codes_left
from ledger.models import Contract

blueprint = Blueprint("admin", __name__, url_prefix="/admin")


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


@blueprint.post("/users/<int:user_id>/disable")
@allow("admin")
def disable(user_id: int):
    return _change(user_id, accounts.disable_user, "{email} is disabled; their sessions have ended.")


@blueprint.post("/users/<int:user_id>/enable")
@allow("admin")
def enable(user_id: int):
    return _change(user_id, accounts.enable_user, "{email} is enabled again.")


@blueprint.post("/users/<int:user_id>/unlock")
@allow("admin")
def unlock(user_id: int):
    return _change(user_id, accounts.unlock_user, "{email} is unlocked.")


@blueprint.post("/users/<int:user_id>/reset-mfa")
@allow("admin")
def reset_mfa(user_id: int):
    return _change(user_id, accounts.reset_mfa,
                   "MFA of {email} is reset: their next sign-in sets up a new authenticator.")
