"""Invoices, for finance (every invoice) and customer finance (their customer's issued invoices only).

    GET  /invoices?status=draft&customer=acme-health&period=2026-06   the invoices the user may see, filtered
    GET  /invoices/<id>                     the invoice as its PDF shows it; ?confirm=approve|issue|void|credit
                                            asks to confirm that step (finance)
    POST /invoices/<id>/approve | issue | void | credit                finance; store/lifecycle.py's steps and
                                            store/credit_notes.py's credit note
    GET  /invoices/<id>/pdf | csv           issued: the stored PDF (its SHA-256 checked); draft and approved:
                                            rendered now and marked DRAFT; ?credit_note=NUMBER: a credit note's PDF

The customer scope is a condition of the query (`visible_invoices`), never a
filter in a template: a customer_finance user's query cannot return another
customer's row. Every list, view and download is recorded in the audit log, and
so is a refused one (outcome `denied` when the invoice exists but is not theirs).
The steps record themselves (store/lifecycle.py, store/credit_notes.py) when
they succeed; a refused step is recorded here as a failure with its reason.
A voided invoice stays visible to whoever saw it issued, marked void.

The preview renders templates/invoice_body.html with invoicing/pdf.py's
`invoice_view` of the stored document, as the PDF does, so the two show the
same figures.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal

from flask import Blueprint, Response, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import Select, exists, select
from wtforms import RadioField, SelectChoice, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional, Regexp

from admin_app import auditing
from admin_app.access import allow
from admin_app.database import db_session
from admin_app.forms import ActionForm
from admin_app.refusals import beside_field, not_done, refusal_text
from admin_app.sessions import SignedIn, now
from audit.log import DENIED, FAILURE, invoice_resource
from engine.periods import Period
from engine.refusal import Refusal, Refused
from identity.accounts import CUSTOMER_ROLE
from invoicing.pdf import invoice_view
from invoicing.render import render_document
from invoicing.stored import invoice_from_document
from ledger.invoices import Selector, find, frozen_mismatch, status_of
from ledger.models import Contract, Invoice, InvoiceVoid, in_force
from lifecycle.credit_notes import credit, creditable, notes_of
from lifecycle.models import CreditNote
from lifecycle.transitions import approve, issue, stored_pdf, void
from review.reconcile import Threshold

blueprint = Blueprint("invoices", __name__)

STATUSES = ("draft", "approved", "issued", "void")
STATUS_CHOICES = [SelectChoice("", "Any status")] + [SelectChoice(status, status) for status in STATUSES]
# What finance may do to an invoice of each status (the confirmation step of each is ?confirm=<action>).
ACTIONS = {"draft": ("approve",), "approved": ("issue",), "issued": ("void", "credit"), "void": ()}
CONTENT_TYPES = {"pdf": "application/pdf", "csv": "text/csv; charset=utf-8"}


class InvoiceFilterForm(FlaskForm):
    class Meta:
        csrf = False   # a search over GET changes nothing

    status = SelectField("Status", choices=STATUS_CHOICES, validate_choice=False, validators=[Optional()])
    customer = SelectField("Customer", choices=[], validate_choice=False, validators=[Optional()])
    period = StringField("Period", validators=[Optional(), Regexp(r"^\d{4}-\d{2}$", message="Write it as YYYY-MM.")],
                         render_kw={"placeholder": "YYYY-MM", "inputmode": "numeric", "size": 8})


class VoidForm(FlaskForm):
    reason = TextAreaField("Reason for the void", validators=[DataRequired("Give the reason for the void."),
                                                               Length(max=2000)],
                           description="Kept with the void and in the audit log; the customer sees the invoice void.")


class CreditForm(FlaskForm):
    scope = RadioField("What to credit", choices=[SelectChoice("all", "Everything that remains creditable"),
                                                  SelectChoice("sites", "Stated amounts per site")], default="all")
    reason = TextAreaField("Reason", validators=[DataRequired("Give the reason for the credit note."),
                                                 Length(max=2000)],
                           description="Printed on the credit note and kept in the audit log.")


def visible_invoices(user: SignedIn) -> Select:
    query = select(Invoice)
    if user.role == CUSTOMER_ROLE:
        query = query.where(Invoice.customer == user.customer, Invoice.status == "issued")
    return query


def _voided_condition():
    return (Invoice.status == "issued") & exists().where(InvoiceVoid.invoice_id == Invoice.id)


STATUS_CONDITIONS = {"draft": lambda: Invoice.status == "draft", "approved": lambda: Invoice.status == "approved",
                     "issued": in_force, "void": _voided_condition}


@blueprint.get("/invoices")
@allow("finance", "customer_finance")
def index():
    form = InvoiceFilterForm(request.args)
    customers = db_session().execute(select(Contract.id, Contract.customer).order_by(Contract.id)).all()
    form.customer.choices = [SelectChoice("", "Any customer")] + [SelectChoice(i, f"{n} ({i})") for i, n in customers]
    if current_user.role == CUSTOMER_ROLE:
        form.status.choices = [c for c in STATUS_CHOICES if c.value in ("", "issued", "void")]
    form.validate()
    query = visible_invoices(current_user)
    filters = {}
    if form.status.data in STATUS_CONDITIONS:
        query = query.where(STATUS_CONDITIONS[form.status.data]())
        filters["status"] = form.status.data
    if form.customer.data and current_user.role != CUSTOMER_ROLE:
        query = query.where(Invoice.customer == form.customer.data)
        filters["customer"] = form.customer.data
    if form.period.data and not form.period.errors:
        try:
            query = query.where(Invoice.period == Period.parse(form.period.data))
            filters["period"] = form.period.data
        except ValueError as exc:
            form.period.errors = [str(exc)]
    invoices = db_session().scalars(query.order_by(Invoice.period.desc(), Invoice.customer, Invoice.id)).all()
    auditing.record("invoice.list", "invoice:" + (current_user.customer or "*"),
                    details={"shown": len(invoices), "filters": filters})
    db_session().commit()
    return render_template("portal/invoices.html", invoices=invoices, voided=_voided(invoices), form=form,
                           filtered=bool(filters), credited=notes_of(db_session(), [i.id for i in invoices]))


@blueprint.get("/invoices/<int:invoice_id>")
@allow("finance", "customer_finance")
def show(invoice_id: int):
    invoice = _visible_or_404(invoice_id, "invoice.view")
    auditing.record("invoice.view", invoice_resource(invoice.customer, invoice.period, invoice.id),
                    details={"status": status_of(db_session(), invoice)})
    db_session().commit()
    confirm = request.args.get("confirm", "")
    forms = {"void": VoidForm(formdata=None), "credit": CreditForm(formdata=None)}
    return _page(invoice, confirm, forms)


@blueprint.post("/invoices/<int:invoice_id>/approve")
@allow("finance")
def approve_invoice(invoice_id: int):
    env = current_app.config["BILLING_ENVIRONMENT"]
    return _step(invoice_id, "approve",
                 lambda invoice, who: approve(db_session(), _selector(invoice), who, threshold=Threshold.of(env),
                                              profile_required=env.production, treatments=env.tax_treatments,
                                              seller=env.seller, now=now()),
                 "Approved: it may now be issued.")


@blueprint.post("/invoices/<int:invoice_id>/issue")
@allow("finance")
def issue_invoice(invoice_id: int):
    env = current_app.config["BILLING_ENVIRONMENT"]

    def step(invoice, who):
        issued = issue(db_session(), _selector(invoice), who, threshold=Threshold.of(env), prefix=env.invoice_prefix,
                       locale=env.locale, seller=env.seller, now=now())
        return issued.invoice

    return _step(invoice_id, "issue", step, "Issued as {number}; its PDF is stored.")


def _charges_vat(env) -> bool:
    """As billing/commands/lifecycle.py says it: uk-prod corrects a VAT invoice by a credit note, never a void."""
    return env.production and "uk_standard" in env.tax_treatments


@blueprint.post("/invoices/<int:invoice_id>/void")
@allow("finance")
def void_invoice(invoice_id: int):
    form = VoidForm()
    if not form.validate_on_submit():
        invoice = _visible_or_404(invoice_id, "invoice.void")
        return _page(invoice, "void", {"void": form, "credit": CreditForm(formdata=None)}, 400)
    return _step(invoice_id, "void",
                 lambda invoice, who: void(db_session(), _selector(invoice), who, form.reason.data,
                                           charges_vat=_charges_vat(current_app.config["BILLING_ENVIRONMENT"]),
                                           now=now()),
                 "Voided. Closing the period again makes its replacement draft.", form=form)


@blueprint.post("/invoices/<int:invoice_id>/credit")
@allow("finance")
def credit_invoice(invoice_id: int):
    form = CreditForm()
    invoice = _visible_or_404(invoice_id, "credit_note.issue")
    amounts = None
    if form.scope.data == "sites":
        amounts = [(site["site"], request.form.get(f"amount-{site['site']}", "").strip())
                   for site in invoice.document["sites"]]
        amounts = [(site, text) for site, text in amounts if text]
    forms = {"void": VoidForm(formdata=None), "credit": form}
    if not form.validate_on_submit():
        return _page(invoice, "credit", forms, 400)
    env = current_app.config["BILLING_ENVIRONMENT"]
    try:
        note = credit(db_session(), invoice, auditing.actor(), form.reason.data, amounts,
                      prefix=env.invoice_prefix, locale=env.locale, now=now())
    except Refused as refused:
        db_session().rollback()
        refusal = refused.refusal
        _record_refusal("credit_note.issue", invoice, refusal)
        if refusal.field == "amount":   # beside the site's amount, or beside the choice when no site is named
            form.scope.data = "sites"
            site = refusal.params.get("site")
            if site is None:
                form.scope.errors = [refusal_text(refusal)]
                return _page(invoice, "credit", forms, 400)
            return _page(invoice, "credit", forms, 400, site_errors={site: refusal_text(refusal)})
        if not beside_field(form, refusal):
            flash(not_done(refusal), "error")
        return _page(invoice, "credit", forms, 400)
    db_session().commit()
    flash(f"Credit note {note.number} issued: {note.total:f} {note.currency} credited.", "done")
    return redirect(url_for("invoices.show", invoice_id=invoice_id))


@blueprint.get("/invoices/<int:invoice_id>/pdf")
@allow("finance", "customer_finance")
def pdf(invoice_id: int):
    invoice = _visible_or_404(invoice_id, "invoice.download")
    number = request.args.get("credit_note")
    if number:
        return _credit_note_pdf(invoice, number)
    return _download(invoice, "pdf")


@blueprint.get("/invoices/<int:invoice_id>/csv")
@allow("finance", "customer_finance")
def csv(invoice_id: int):
    return _download(_visible_or_404(invoice_id, "invoice.download"), "csv")


def _visible_or_404(invoice_id: int, action: str) -> Invoice:
    """The invoice if this user may see it; else the refusal is recorded and the answer is 404."""
    invoice = db_session().scalar(visible_invoices(current_user).where(Invoice.id == invoice_id))
    if invoice is None:
        row = db_session().get(Invoice, invoice_id)
        resource = invoice_resource(row.customer, row.period, row.id) if row else f"invoice:#{invoice_id}"
        auditing.record(action, resource, outcome=DENIED if row else FAILURE,
                        details={"reason": "not visible to this user" if row else "no such invoice"})
        db_session().commit()
        abort(404)
    mismatch = frozen_mismatch(db_session(), invoice)
    if mismatch:   # recorded, and nothing of it shown or sent as if it were what was issued
        auditing.record(action, invoice_resource(invoice.customer, invoice.period, invoice.id), outcome=FAILURE,
                        details={"reason": mismatch, "code": "tampered"})
        db_session().commit()
        abort(500, f"{mismatch}; it is not shown or sent. Tell the engineers: the database was changed outside "
                   "the application.")
    return invoice


def _selector(invoice: Invoice) -> Selector:
    """The lifecycle's name of this very invoice: its number, or its customer and period when that finds it."""
    if invoice.number:
        return Selector(number=invoice.number)
    which = Selector(invoice.customer, invoice.period)
    found = find(db_session(), which)
    if found is None or found.id != invoice.id:
        status = status_of(db_session(), invoice)
        raise Refused(Refusal("not-this-invoice", f"invoice #{invoice.id} is {status}: it cannot take this step",
                              params={"status": status}))
    return which


def _step(invoice_id: int, action: str, run, done: str, form: FlaskForm | None = None):
    """One lifecycle step on the invoice: the CSRF token checked, the step run, a refusal shown and audited."""
    form = form or ActionForm()
    invoice = _visible_or_404(invoice_id, f"invoice.{action}")
    if not form.validate_on_submit():
        abort(400)
    try:
        row = run(invoice, auditing.actor())
    except Refused as refused:
        db_session().rollback()
        _record_refusal(f"invoice.{action}", invoice, refused.refusal)
        flash(not_done(refused.refusal), "error")   # a void's reason is checked by its form before the step
        return redirect(url_for("invoices.show", invoice_id=invoice_id))
    db_session().commit()
    flash(done.format(number=row.number), "done")
    return redirect(url_for("invoices.show", invoice_id=invoice_id))


def _record_refusal(action: str, invoice: Invoice, refusal: Refusal) -> None:
    invoice = db_session().get(Invoice, invoice.id)
    auditing.record(action, invoice_resource(invoice.customer, invoice.period, invoice.id), outcome=FAILURE,
                    details={"reason": refusal.message, "code": refusal.code})
    db_session().commit()


def _page(invoice: Invoice, confirm: str, forms: dict, status: int = 200, site_errors: dict | None = None):
    session = db_session()
    state = status_of(session, invoice)
    actions = ACTIONS[state] if current_user.role == "finance" else ()
    notes = notes_of(session, [invoice.id]).get(invoice.id, [])
    remaining = creditable(session, invoice) if state == "issued" else {}
    return render_template(
        "portal/invoice.html", invoice=invoice, document=invoice.document, status=state, actions=actions,
        confirm=confirm if confirm in actions else "", forms=forms, notes=notes, remaining=remaining,
        remaining_total=sum(remaining.values(), Decimal(0)), site_errors=site_errors or {},
        amounts={key[7:]: value for key, value in request.form.items() if key.startswith("amount-")},
        void=session.get(InvoiceVoid, invoice.id), view=_view(invoice, state),
    ), status


def _document(invoice: Invoice):
    timezone = db_session().get(Contract, invoice.customer).timezone
    return invoice_from_document(invoice.document, timezone=timezone)


def _lifecycle_marks(invoice: Invoice, state: str) -> dict:
    """Number, status and issue date as the PDF prints them (an issued invoice stored before numbering has none)."""
    if invoice.status != "issued":
        return {"status": state}
    number = invoice.number or f"(unnumbered, #{invoice.id})"
    return {"number": number, "status": state, "issued_on": invoice.issued_at.date()}


def _view(invoice: Invoice, state: str) -> dict:
    locale = current_app.config["BILLING_ENVIRONMENT"].locale
    return invoice_view(_document(invoice), locale=locale, **_lifecycle_marks(invoice, state))


def _download(invoice: Invoice, fmt: str) -> Response:
    state = status_of(db_session(), invoice)
    resource = invoice_resource(invoice.customer, invoice.period, invoice.id)
    details = {"format": fmt, "status": state}
    stored = stored_pdf(db_session(), invoice) if fmt == "pdf" and invoice.status == "issued" else None
    if stored is not None:   # checked against the hashes frozen at its issue (_visible_or_404)
        content, details["sha256"], details["stored"] = stored.pdf, stored.sha256, True
    else:
        marks = _lifecycle_marks(invoice, "issued" if invoice.status == "issued" else state)
        locale = current_app.config["BILLING_ENVIRONMENT"].locale
        content = render_document(_document(invoice), fmt, locale=locale, **marks) if fmt == "pdf" else \
            render_document(_document(invoice), fmt, number=invoice.number)
        details["stored"] = False
    auditing.record("invoice.download", resource, details=details)
    db_session().commit()
    unnumbered = "draft" if invoice.status != "issued" else invoice.id
    name = invoice.number or f"{invoice.customer}-{invoice.period}-{unnumbered}"
    return _attachment(content, f"{name}.{fmt}", fmt)


def _credit_note_pdf(invoice: Invoice, number: str) -> Response:
    note = db_session().scalar(select(CreditNote).where(CreditNote.invoice_id == invoice.id,
                                                        CreditNote.number == number))
    resource = invoice_resource(invoice.customer, invoice.period, invoice.id)
    if note is None:
        auditing.record("invoice.download", resource, outcome=FAILURE,
                        details={"format": "pdf", "credit_note": number, "reason": "no such credit note"})
        db_session().commit()
        abort(404)
    if hashlib.sha256(note.pdf).hexdigest() != note.sha256:
        auditing.record("invoice.download", resource, outcome=FAILURE,
                        details={"format": "pdf", "credit_note": number,
                                 "reason": "the stored PDF does not match its SHA-256"})
        db_session().commit()
        abort(500, "The stored PDF of this credit note does not match its SHA-256; it is not sent.")
    auditing.record("invoice.download", resource,
                    details={"format": "pdf", "credit_note": number, "sha256": note.sha256, "stored": True})
    db_session().commit()
    return _attachment(note.pdf, f"{note.number}.pdf", "pdf")


def _attachment(content: str | bytes, filename: str, fmt: str) -> Response:
    response = Response(content, content_type=CONTENT_TYPES[fmt])
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"
    return response


def _voided(invoices) -> set[int]:
    """The ids of those that were issued and then voided (the row keeps status 'issued'; a void is its own row)."""
    ids = [invoice.id for invoice in invoices if invoice.status == "issued"]
    return set(db_session().scalars(select(InvoiceVoid.invoice_id).where(InvoiceVoid.invoice_id.in_(ids))))
