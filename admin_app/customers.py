"""Customers: billing profiles (finance edits, admin reads) and credit grants (finance; a customer user reads
their own).

    GET  /customers                              every contract's customer with its billing profile
    GET  /customers/<customer>                   the profile, what it lacks, its revisions (who, when, what changed)
    GET  /customers/<customer>/edit              the profile's form (finance)
    POST /customers/<customer>/edit              saved by ledger/profiles.py's save_profile, audited as the CLI's
    GET  /customers/<customer>/grants            each grant's ledger; the add form (finance);
                                                 ?revoke=G-000004 asks to confirm a revoke, with its reason
    POST /customers/<customer>/grants            add a grant (finance): ledger/grants.py's add_grant
    POST /customers/<customer>/grants/<grant>/revoke                 revoke it (finance): revoke_grant
    GET  /credits                                a customer user's own grants (the same page)

The customer scope is the route's first check (`_customer_or_404`): a customer_finance
user asking for another customer, or for a page of finance, gets 404 (the access rules
already refuse other roles), and the refusal is recorded. Every list and view of a
profile or of grants is recorded in the audit log; the changes record themselves
(`customer.profile`, `grant.add`, `grant.revoke`) in ledger/, as the command line's do.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import DateField, IntegerField, SelectChoice, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, NumberRange, Optional, Regexp

from admin_app import auditing
from admin_app.access import allow
from admin_app.database import db_session
from admin_app.refusals import beside_field, not_done
from admin_app.sessions import now
from audit.log import DENIED, FAILURE
from engine.periods import Period
from engine.refusal import Refused
from identity.accounts import CUSTOMER_ROLE
from ledger.grants import (DEFAULT_PRIORITY, add_grant, grant_id_of, grant_ledger, grant_name, grant_of,
                           grant_resource, revoke_grant, seller_today)
from ledger.models import TAX_TREATMENTS, Contract, CustomerProfile
from ledger.profiles import customer_resource, history, missing_for, profile_of, save_profile

blueprint = Blueprint("customers", __name__)

PROFILE_READERS = ("finance", "admin")     # admin reads who is billed, as it reads contracts; no amounts
GRANT_READERS = ("finance", "customer_finance")
TREATMENT_TITLES = {"uk_standard": "UK VAT at the standard rate", "reverse_charge": "Reverse charge (outside UK VAT)",
                    "exempt": "Exempt from tax", "none": "No tax"}
FIELD_TITLES = {"name": "Legal name", "address": "Address", "tax_id": "Tax id", "tax_treatment": "Tax treatment",
                "exempt_reason": "Exemption", "purchase_order": "Purchase order", "terms_days": "Payment terms"}


class ProfileForm(FlaskForm):
    name = StringField("Legal name", validators=[Length(max=300)], description="As the invoice names the buyer.")
    address = TextAreaField("Address", validators=[Length(max=2000)], render_kw={"rows": 4},
                            description="One line of the postal address per row, in order.")
    tax_id = StringField("Tax id", validators=[Length(max=32)],
                         description="The buyer's VAT number or tax id; needed for the reverse charge.")
    purchase_order = StringField("Purchase order", validators=[Length(max=200)],
                                 description="Printed on every invoice.")
    terms_days = IntegerField("Payment terms (days)", validators=[Optional(), NumberRange(min=0, max=3650)],
                              description="Calendar days from the issue date; empty: the seller's default.",
                              render_kw={"inputmode": "numeric", "size": 6})
    tax_treatment = SelectField("Tax treatment", choices=[])
    exempt_reason = StringField("Exemption certificate or reason", validators=[Length(max=500)],
                                description="Needed when the customer is exempt.")

    def changes(self) -> dict:
        """Every field as the profile keeps it (save_profile records only those that differ)."""
        lines = [line.strip() for line in (self.address.data or "").splitlines()]
        return {"name": (self.name.data or "").strip(), "address": [line for line in lines if line],
                "tax_id": (self.tax_id.data or "").strip(), "purchase_order": (self.purchase_order.data or "").strip(),
                "terms_days": self.terms_days.data, "tax_treatment": self.tax_treatment.data,
                "exempt_reason": (self.exempt_reason.data or "").strip()}


class GrantForm(FlaskForm):
    amount = StringField("Amount", validators=[DataRequired("Enter the amount of the grant."), Length(max=40)],
                         render_kw={"inputmode": "decimal", "size": 12})
    from_period = StringField("From period", validators=[Optional(), Regexp(r"^\d{4}-\d{2}$",
                                                                           message="Write it as YYYY-MM.")],
                              description="Empty: the first period not yet issued.",
                              render_kw={"placeholder": "YYYY-MM", "size": 8})
    expires = DateField("Expires after", validators=[Optional()],
                        description="Its last valid day, included; empty: it does not expire.")
    priority = IntegerField("Priority", default=DEFAULT_PRIORITY, validators=[Optional(), NumberRange(0, 10**6)],
                            description="Lower numbers are drawn first.", render_kw={"size": 6})
    reason = StringField("Reason", validators=[Length(max=500)],
                         description="Kept with the grant and in the audit log.")


class RevokeForm(FlaskForm):
    reason = TextAreaField("Reason for the revoke", validators=[DataRequired("Give the reason for the revoke."),
                                                                Length(max=2000)],
                           description="What was drawn stays drawn; no invoice draws on it again.")


@blueprint.get("/customers")
@allow(*PROFILE_READERS)
def index():
    session = db_session()
    rows = session.execute(select(Contract, CustomerProfile)
                           .outerjoin(CustomerProfile, CustomerProfile.contract_id == Contract.id)
                           .order_by(Contract.id)).all()
    customers = [{"contract": contract, "profile": profile, "missing": missing_for(profile)}
                 for contract, profile in rows]
    auditing.record("customer.list", "customer:*", details={"shown": len(customers)})
    session.commit()
    return render_template("portal/customers/index.html", customers=customers, titles=TREATMENT_TITLES)


@blueprint.get("/customers/<customer>")
@allow(*PROFILE_READERS)
def show(customer: str):
    contract = _customer_or_404(customer, "customer.view")
    session = db_session()
    profile = profile_of(session, customer)
    revisions = history(session, customer)
    auditing.record("customer.view", customer_resource(customer),
                    details={"revision": profile.revision if profile else None})
    session.commit()
    return render_template("portal/customers/profile.html", contract=contract, profile=profile,
                           missing=missing_for(profile), revisions=revisions, titles=TREATMENT_TITLES,
                           field_titles=FIELD_TITLES, seller_terms=_seller().get("payment_terms_days"))


@blueprint.get("/customers/<customer>/edit")
@allow("finance")
def edit(customer: str):
    contract = _customer_or_404(customer, "customer.edit")
    session = db_session()
    profile = profile_of(session, customer)
    form = _profile_form(profile)
    auditing.record("customer.view", customer_resource(customer),
                    details={"revision": profile.revision if profile else None, "to": "edit"})
    session.commit()
    return render_template("portal/customers/edit.html", contract=contract, profile=profile, form=form)


@blueprint.post("/customers/<customer>/edit")
@allow("finance")
def save(customer: str):
    contract = _customer_or_404(customer, "customer.profile")
    session = db_session()
    form = _profile_form(None, request.form)
    if not form.validate():
        return render_template("portal/customers/edit.html", contract=contract, profile=profile_of(session, customer),
                               form=form), 400
    before = profile_of(session, customer)
    revision = before.revision if before is not None else 0
    try:
        profile = save_profile(session, customer, auditing.actor(), form.changes(), treatments=_treatments(),
                               now=now())
    except Refused as refused:
        auditing.record_refusal("customer.profile", customer_resource(customer), refused.refusal)
        if not beside_field(form, refused.refusal):
            flash(not_done(refused.refusal), "error")
        return render_template("portal/customers/edit.html", contract=contract, profile=profile_of(session, customer),
                               form=form), 400
    missing = missing_for(profile)
    session.commit()
    flash((f"Saved as revision {profile.revision}." if profile.revision != revision else
           f"Nothing changed: the profile stays at revision {revision}.")
          + (f" Before its invoices are approved it still needs {', '.join(missing)}." if missing else ""), "done")
    return redirect(url_for("customers.show", customer=customer))


@blueprint.get("/customers/<customer>/grants")
@allow(*GRANT_READERS)
def grants(customer: str):
    contract = _customer_or_404(customer, "grant.list")
    return _grants_page(contract, GrantForm(formdata=None), RevokeForm(formdata=None))


@blueprint.get("/credits")
@allow("customer_finance")
def own_grants():
    contract = _customer_or_404(current_user.customer, "grant.list")
    return _grants_page(contract, GrantForm(formdata=None), RevokeForm(formdata=None))


@blueprint.post("/customers/<customer>/grants")
@allow("finance")
def add(customer: str):
    contract = _customer_or_404(customer, "grant.add")
    session = db_session()
    form = GrantForm()
    if not form.validate():
        return _grants_page(contract, form, RevokeForm(formdata=None), status=400)
    try:
        amount = Decimal(form.amount.data.strip().replace(",", ""))
    except InvalidOperation:
        form.amount.errors = [f"{form.amount.data!r} is not an amount: write it as 500.00."]
    try:
        from_period = Period.parse(form.from_period.data) if form.from_period.data else None
    except ValueError as exc:   # 2026-13
        form.from_period.errors = [f"{str(exc)[:1].upper()}{str(exc)[1:]}."]
    if form.amount.errors or form.from_period.errors:
        return _grants_page(contract, form, RevokeForm(formdata=None), status=400)
    try:
        grant = add_grant(session, customer, amount, auditing.actor(), from_period=from_period,
                          expires=form.expires.data,
                          priority=DEFAULT_PRIORITY if form.priority.data is None else form.priority.data,
                          reason=(form.reason.data or "").strip(), now=now())
    except Refused as refused:
        auditing.record_refusal("grant.add", customer_resource(customer), refused.refusal)
        if not beside_field(form, refused.refusal):
            flash(not_done(refused.refusal), "error")
        return _grants_page(contract, form, RevokeForm(formdata=None), status=400)
    name = grant_name(grant.id)
    session.commit()
    flash(f"Granted {name}: invoices from {grant.from_period} draw on it.", "done")
    return redirect(url_for("customers.grants", customer=customer, _anchor=name))


@blueprint.post("/customers/<customer>/grants/<grant>/revoke")
@allow("finance")
def revoke(customer: str, grant: str):
    contract = _customer_or_404(customer, "grant.revoke")
    session = db_session()
    row = _grant_or_404(customer, grant, "grant.revoke")
    form = RevokeForm()
    if not form.validate():
        return _grants_page(contract, GrantForm(formdata=None), form, revoking=grant_name(row.id), status=400)
    try:
        revoke_grant(session, row.id, auditing.actor(), form.reason.data, now=now())
    except Refused as refused:
        auditing.record_refusal("grant.revoke", grant_resource(row.id), refused.refusal)
        if not beside_field(form, refused.refusal):
            flash(not_done(refused.refusal), "error")
            return redirect(url_for("customers.grants", customer=customer))
        return _grants_page(contract, GrantForm(formdata=None), form, revoking=grant_name(row.id), status=400)
    session.commit()
    flash(f"{grant_name(row.id)} revoked: what was drawn stays drawn, no invoice draws on it again.", "done")
    return redirect(url_for("customers.grants", customer=customer, _anchor=grant_name(row.id)))


def _grants_page(contract: Contract, form: GrantForm, revoke_form: RevokeForm, *, revoking: str | None = None,
                 status: int = 200):
    session = db_session()
    today = seller_today(_seller(), now())
    ledger = grant_ledger(session, contract.id, today)
    finance = current_user.role == "finance"
    if finance and revoking is None and request.method == "GET" and request.args.get("revoke"):
        asked = grant_id_of(request.args["revoke"])
        revoking = next((grant["grant"] for grant in ledger if asked is not None
                         and grant["grant"] == grant_name(asked) and grant["state"] != "revoked"), None)
    if request.method == "GET":
        auditing.record("grant.list", customer_resource(contract.id), details={"shown": len(ledger)})
        session.commit()
    totals = {"granted": sum((Decimal(g["amount"]) for g in ledger), Decimal(0)),
              "remaining": sum((Decimal(g["remaining"]) for g in ledger), Decimal(0)),
              "active": sum((Decimal(g["remaining"]) for g in ledger if g["state"] == "active"), Decimal(0))}
    for grant in ledger:
        grant["events"] = grant_events(grant)
    return render_template("portal/customers/grants.html", contract=contract, ledger=ledger, form=form,
                           revoke_form=revoke_form, revoking=revoking, finance=finance, today=today,
                           totals=totals), status


def grant_events(grant: dict) -> list[dict]:
    """The grant's ledger as lines, oldest first: granted (+), drawn by an invoice (−), given back by its void (+),
    expired, revoked; each with what remained after it, so the last balance is the grant's `remaining`."""
    events = [{"at": grant["granted_at"], "what": "granted", "by": grant["granted_by"], "note": grant["reason"],
               "amount": Decimal(grant["amount"])}]
    for draw in grant["draws"]:
        events.append({"at": draw["issued_at"] or "", "what": "drawn", "invoice": draw["invoice"],
                       "invoice_id": draw["invoice_id"], "note": f"period {draw['period']}",
                       "amount": -Decimal(draw["amount"])})
        if draw["given_back"]:
            events.append({"at": draw["given_back_at"] or "", "what": "given back", "invoice": draw["invoice"],
                           "invoice_id": draw["invoice_id"], "note": "its invoice was voided",
                           "amount": Decimal(draw["amount"])})
    if grant["state"] == "expired":
        after = dt.date.fromisoformat(grant["expires"]) + dt.timedelta(days=1)
        events.append({"at": after.isoformat(), "what": "expired", "amount": None,
                       "note": f"its last valid day was {grant['expires']}: only periods begun by then may draw on it"})
    if grant["revoked"]:
        events.append({"at": grant["revoked"]["at"], "what": "revoked", "by": grant["revoked"]["by"],
                       "note": grant["revoked"]["reason"], "amount": None})
    events.sort(key=lambda event: (event["what"] != "granted", event["at"]))   # nothing happens before the grant
    balance = Decimal(0)
    for event in events:
        balance += event["amount"] or 0
        event["balance"], event["day"] = balance, event["at"][:10]
    return events


def _customer_or_404(customer: str, action: str) -> Contract:
    """The customer's contract if this user may see it; else the refusal is recorded and the answer is 404."""
    session = db_session()
    contract = session.get(Contract, customer)
    own = current_user.role != CUSTOMER_ROLE or current_user.customer == customer
    if contract is None or not own:
        auditing.record(action, customer_resource(customer), outcome=DENIED if contract else FAILURE,
                        details={"reason": "not visible to this user" if contract else "no such customer"})
        session.commit()
        abort(404)
    return contract


def _grant_or_404(customer: str, name: str, action: str):
    grant_id = grant_id_of(name)
    grant = grant_of(db_session(), customer, grant_id) if grant_id is not None else None
    if grant is None:
        auditing.record(action, f"grant:{name[:40]}", outcome=FAILURE,
                        details={"customer": customer, "reason": "no such grant of this customer"})
        db_session().commit()
        abort(404)
    return grant


def _profile_form(profile: CustomerProfile | None, formdata=None) -> ProfileForm:
    form = ProfileForm(formdata=formdata)
    treatments = _treatments()
    form.tax_treatment.choices = [SelectChoice(t, f"{TREATMENT_TITLES[t]} ({t})") for t in treatments]
    if formdata is None and profile is not None:
        form.name.data, form.address.data = profile.name, "\n".join(profile.address)
        form.tax_id.data, form.purchase_order.data = profile.tax_id, profile.purchase_order
        form.terms_days.data, form.exempt_reason.data = profile.terms_days, profile.exempt_reason
        form.tax_treatment.data = profile.tax_treatment
        if profile.tax_treatment not in treatments:
            form.tax_treatment.errors = [(f"This environment does not issue {profile.tax_treatment}: choose "
                                          "the treatment its invoices will carry.")]
    return form


def _treatments() -> tuple[str, ...]:
    """The treatments this environment issues (its `tax_treatments`; every one when it names none, as the CLI)."""
    return current_app.config["BILLING_ENVIRONMENT"].tax_treatments or TAX_TREATMENTS


def _seller() -> dict:
    return current_app.config["BILLING_ENVIRONMENT"].seller or {}
