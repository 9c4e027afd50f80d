"""The portal's forms (Flask-WTF: each carries its CSRF token). A refused form is shown again with what
was typed, and the reason beside the field it concerns; a password field is never filled in again."""

from __future__ import annotations

from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import DateField, PasswordField, SelectChoice, SelectField, StringField
from wtforms.validators import DataRequired, EqualTo, Length, Optional, ValidationError

from admin_app.refusals import refusal_text
from engine.refusal import Refused
from identity.accounts import MIN_PASSWORD_LENGTH, ROLES, check_password_rules

ROLE_CHOICES = [SelectChoice("", "Choose a role…")] + [SelectChoice(role, role.replace("_", " ")) for role in ROLES]


class LoginForm(FlaskForm):
    email = StringField("Email", validators=[DataRequired("Enter your email address."), Length(max=254)],
                        render_kw={"autocomplete": "username", "autofocus": True})
    password = PasswordField("Password", validators=[DataRequired("Enter your password."), Length(max=1024)],
                             render_kw={"autocomplete": "current-password"})


class CodeForm(FlaskForm):
    code = StringField("Code", validators=[DataRequired("Enter the code."), Length(max=40)],
                       render_kw={"autocomplete": "one-time-code", "autofocus": True, "spellcheck": "false",
                                  "autocapitalize": "off"})


class PasswordChangeForm(FlaskForm):
    current_password = PasswordField("Current password",
                                     validators=[DataRequired("Enter your current password."), Length(max=1024)],
                                     render_kw={"autocomplete": "current-password", "autofocus": True})
    new_password = PasswordField("New password", validators=[DataRequired("Enter a new password."), Length(max=1024)],
                                 description=f"At least {MIN_PASSWORD_LENGTH} characters, and not your email "
                                             "address. A few unrelated words make a good one.",
                                 render_kw={"autocomplete": "new-password"})
    confirm_password = PasswordField("New password again", validators=[
        DataRequired("Enter the new password again."),
        EqualTo("new_password", "The two new passwords are not the same.")], render_kw={"autocomplete": "new-password"})

    def validate_new_password(self, field) -> None:
        """The store's rules (store/accounts.py), here too so that every reason shows at once."""
        try:
            check_password_rules(field.data or "", current_user.email)
        except Refused as exc:
            raise ValidationError(refusal_text(exc.refusal)) from None


class UserForm(FlaskForm):
    email = StringField("Email", validators=[DataRequired("Enter the user's email address."), Length(max=254)])
    role = SelectField("Role", choices=ROLE_CHOICES, validators=[DataRequired("Choose a role.")])
    customer = SelectField("Customer", choices=[], validate_choice=False,
                           description="Only for customer finance: the one customer this user may see.")


class RoleForm(FlaskForm):
    role = SelectField("Role", choices=ROLE_CHOICES, validators=[DataRequired("Choose a role.")])
    customer = SelectField("Customer", choices=[], validate_choice=False)


class ActionForm(FlaskForm):
    """A button that changes something: only its CSRF token."""


class AuditFilterForm(FlaskForm):
    class Meta:
        csrf = False   # a search over GET changes nothing

    actor = StringField("Actor", validators=[Optional(), Length(max=254)])
    action = StringField("Action", validators=[Optional(), Length(max=100)],
                         description="An action or its start: login finds login.password, login.mfa, …")
    resource = StringField("Resource", validators=[Optional(), Length(max=254)])
    since = DateField("From (UTC)", validators=[Optional()])
    until = DateField("To (UTC)", validators=[Optional()])
