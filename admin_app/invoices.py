"""Invoices, for finance (every invoice) and customer finance (their customer's issued invoices only).

    GET  /invoices?status=draft&customer=acme-health&period=2026-06&sort=total&dir=desc&page=2
                                            the invoices the user may see: filtered, sorted and paged by the
                                            database (PAGE_SIZE a page), so a list of thousands stays quick
    POST /invoices/close                    finance: close a period, for one customer or every one billing it
    GET  /invoices/<id>                     the invoice as its PDF shows it; a draft or approved one says whether
                                            it is out of date and why (lifecycle.transitions.why_stale), and its
                                            last reconciliation; ?confirm=approve|issue|void|credit asks to
                                            confirm that step (finance)
    POST /invoices/<id>/refresh             finance: close the invoice's period again (a stale draft recomputed,
                                            a void one's replacement made), then reconcile it
    POST /invoices/<id>/approve | issue | void | credit                finance; lifecycle/transitions.py's steps
                                            and lifecycle/credit_notes.py's credit note
    GET  /invoices/<id>/pdf | csv           issued: the stored PDF (its SHA-256 checked); draft and approved:
                                            rendered now and marked DRAFT; ?credit_note=NUMBER: a credit note's PDF

Closing is `lifecycle.transitions.close_and_reconcile`, the function `billing close`
runs: the draft created or recomputed, then the period's reconciliation stored
and audited (`reconciliation.run`); the portal records `invoice.close` beside it,
and a refused close as a failure. A failed reconciliation keeps the draft and is
shown on its page with its discrepancies.

The customer scope is a condition of the query (`visible_invoices`), never a
filter in a template: a customer_finance user's query cannot return another
customer's row. Every list, view and download is recorded in the audit log, and
so is a refused one (outcome `denied` when the invoice exists but is not theirs).
The steps record themselves (lifecycle/transitions.py, lifecycle/credit_notes.py)
when they succeed; a refused step is recorded here as a failure with its reason.
A voided invoice stays visible to whoever saw it issued, marked void. No text
typed into an invoice form may hold a NUL (PostgreSQL's text cannot): the form
says so and shows the text again without it.

The preview renders templates/invoice_body.html with invoicing/pdf.py's
`invoice_view` of the stored document, as the PDF does, so the two show the
same figures.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from decimal import Decimal

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import Numeric, Select, case, cast, exists, func, select
from wtforms import RadioField, SelectChoice, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional, Regexp, ValidationError

from admin_app import auditing
from admin_app.access import allow
from admin_app.database import db_session
from admin_app.forms import ActionForm
from admin_app.listing import PAGE_SIZE, Listing, asked_page, asked_sort, page_count
from admin_app.portal import money
from admin_app.refusals import beside_field, not_done, refusal_text, sentence
from admin_app.sessions import SignedIn, now
from audit.log import DENIED, FAILURE, details, invoice_resource, refusal_details
from engine.evaluate import OutsideContract
from engine.periods import Period
from engine.refusal import Refusal, Refused
from identity.accounts import CUSTOMER_ROLE
from invoicing.pdf import invoice_view
from invoicing.render import render_document
from invoicing.stored import invoice_from_document
from ledger.invoices import Selector, find, frozen_mismatch, status_of
from ledger.models import Contract, Invoice, InvoiceVoid, in_force
from lifecycle.credit_notes import Remaining, credit, notes_of
from lifecycle.credit_notes import remaining as remaining_of
from lifecycle.models import CreditNote
from lifecycle.transitions import (
    Closed,
    approve,
    close_and_reconcile,
    customers_billed_in,
    issue,
    stale_now,
    stored_pdf,
    void,
)
from review.models import Reconciliation, ReconciliationExplanation
from review.reconcile import DISCREPANCY, Report, Threshold, headline, latest

blueprint = Blueprint("invoices", __name__)

STATUSES = ("draft", "approved", "issued", "void")
STATUS_LABELS = {"draft": "Draft", "approved": "Approved", "issued": "Issued", "void": "Void"}
STATUS_CHOICES = [SelectChoice("", "Any status")] + [SelectChoice(s, STATUS_LABELS[s]) for s in STATUSES]
# What finance may do to an invoice of each status (the confirmation step of each is ?confirm=<action>).
ACTIONS = {"draft": ("approve",), "approved": ("issue",), "issued": ("void", "credit"), "void": ()}
# Which statuses closing the period again changes: a draft or approved one recomputed, a void one replaced.
REFRESHED = {"draft": "Refresh the draft", "approved": "Recompute (back to draft if it changed)",
             "void": "Make the replacement draft"}
CONTENT_TYPES = {"pdf": "application/pdf", "csv": "text/csv; charset=utf-8"}
NUL_MESSAGE = ("A NUL character cannot be kept in this text: it was taken out of what you typed; "
               "check the text and send it again.")


def without_nul(form, field) -> None:
    """Refuses a text holding a NUL (PostgreSQL's text cannot store one) and shows it again without it.
    After DataRequired, which clears the errors before it (a NUL is not blank to it)."""
    if isinstance(field.data, str) and "\x00" in field.data:
        field.data = field.data.replace("\x00", "")
        raise ValidationError(NUL_MESSAGE)


class InvoiceFilterForm(FlaskForm):
    class Meta:
        csrf = False   # a search over GET changes nothing

    status = SelectField("Status", choices=STATUS_CHOICES, validate_choice=False, validators=[Optional()])
    customer = SelectField("Customer", choices=[], validate_choice=False, validators=[Optional()])
    period = StringField("Period", validators=[Optional(), Regexp(r"^\d{4}-\d{2}$", message="Write it as YYYY-MM.")],
                         render_kw={"placeholder": "YYYY-MM", "inputmode": "numeric", "size": 8})


class ClosePeriodForm(FlaskForm):
    period = StringField("Period to close", validators=[DataRequired("Give the period to close."), without_nul,
                                                        Regexp(r"^\d{4}-\d{2}$", message="Write it as YYYY-MM.")],
                         render_kw={"placeholder": "YYYY-MM", "inputmode": "numeric", "size": 8})
    customer = SelectField("Customers", choices=[], validate_choice=False,
                           description="Every customer whose contract bills the period, or one.")


class VoidForm(FlaskForm):
    reason = TextAreaField("Reason for the void", validators=[DataRequired("Give the reason for the void."), without_nul,
                                                               Length(max=2000)],
                           description="Kept with the void and in the audit log; the customer sees the invoice void.")


class CreditForm(FlaskForm):
    scope = RadioField("What to credit", choices=[SelectChoice("all", "Everything that remains creditable"),
                                                  SelectChoice("sites", "Stated amounts per site and account line")],
                       default="all")
    reason = TextAreaField("Reason", validators=[DataRequired("Give the reason for the credit note."), without_nul,
                                                 Length(max=2000)],
                           description="Printed on the credit note and kept in the audit log.")


def _scope(user: SignedIn) -> tuple:
    """The conditions every query of this user's invoices carries."""
    if user.role == CUSTOMER_ROLE:
        return (Invoice.customer == user.customer, Invoice.status == "issued")
    return ()


def visible_invoices(user: SignedIn) -> Select:
    return select(Invoice).where(*_scope(user))


def _voided_condition():
    return (Invoice.status == "issued") & exists().where(InvoiceVoid.invoice_id == Invoice.id)


STATUS_CONDITIONS = {"draft": lambda: Invoice.status == "draft", "approved": lambda: Invoice.status == "approved",
                     "issued": in_force, "void": _voided_condition}


@dataclass(frozen=True)
class Listed:
    """One row of the list: what it shows, read from the database without the invoice's whole document."""

    id: int
    customer: str
    name: str
    period: Period
    status: str
    number: str | None
    issued_at: object
    total: str
    currency: str


def _sorts() -> dict:
    """Each column the list sorts by, as the database orders it; ties fall to the period, customer and id."""
    voided = exists().where(InvoiceVoid.invoice_id == Invoice.id)
    return {
        "customer": Invoice.document["customer"].as_string(),
        "period": Invoice.period,
        "status": case((Invoice.status == "draft", 0), (Invoice.status == "approved", 1),
                       ((Invoice.status == "issued") & voided, 3), else_=2),
        "issued": Invoice.issued_at,
        "total": cast(Invoice.document["totals"]["total"].as_string(), Numeric(20, 6)),
        "number": Invoice.number,
    }


SORT_LABELS = {"customer": "Customer", "period": "Period", "status": "Status", "issued": "Issued (UTC)",
               "total": "Total", "number": "Number"}
FIRST_DIRECTION = {"period": "desc", "issued": "desc", "total": "desc"}   # the others start ascending


def _listing(conditions: list, filters: dict) -> Listing:
    sorts = _sorts()
    sort, direction = asked_sort(request.args, sorts, "period", FIRST_DIRECTION)
    session = db_session()
    count = session.scalar(select(func.count(Invoice.id)).where(*conditions))
    pages = page_count(count, PAGE_SIZE)
    page = min(asked_page(request.args), pages)
    column = sorts[sort]
    order = [column.desc() if direction == "desc" else column.asc()]
    order += [Invoice.period.desc(), Invoice.customer, Invoice.id]
    # The page's ids first, sorted on their keys alone; then what they show, read from those rows' documents
    # only (a database sorting whole rows would read every document on every page).
    ids = session.scalars(select(Invoice.id).where(*conditions).order_by(*order)
                          .limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)).all()
    voided = exists().where(InvoiceVoid.invoice_id == Invoice.id)
    shown = {row[0]: Listed(*row) for row in session.execute(
        select(Invoice.id, Invoice.customer, Invoice.document["customer"].as_string(), Invoice.period,
               case(((Invoice.status == "issued") & voided, "void"), else_=Invoice.status), Invoice.number,
               Invoice.issued_at, Invoice.document["totals"]["total"].as_string(),
               Invoice.document["currency"].as_string()).where(Invoice.id.in_(ids)))}
    rows = [shown[i] for i in ids]
    args = {**filters, "sort": sort, "dir": direction}
    return Listing("invoices.index", rows, page, pages, count, sort, direction, args, FIRST_DIRECTION)


@blueprint.get("/invoices")
@allow("finance", "customer_finance")
def index(close_form: ClosePeriodForm | None = None, status: int = 200):
    form = InvoiceFilterForm(request.args)
    customers = _customers()
    form.customer.choices = [SelectChoice("", "Any customer")] + [SelectChoice(i, f"{n} ({i})") for i, n in customers]
    if current_user.role == CUSTOMER_ROLE:
        form.status.choices = [c for c in STATUS_CHOICES if c.value in ("", "issued", "void")]
    form.validate()
    conditions = list(_scope(current_user))
    filters = {}
    if form.status.data in STATUS_CONDITIONS:
        conditions.append(STATUS_CONDITIONS[form.status.data]())
        filters["status"] = form.status.data
    if form.customer.data and current_user.role != CUSTOMER_ROLE:
        if form.customer.data in dict(customers):
            conditions.append(Invoice.customer == form.customer.data)
            filters["customer"] = form.customer.data
        else:
            form.customer.errors = ["There is no such customer."]
    if form.period.data and not form.period.errors:
        try:
            conditions.append(Invoice.period == Period.parse(form.period.data))
            filters["period"] = form.period.data
        except ValueError as exc:
            form.period.errors = [sentence(str(exc))]
    listing = _listing(conditions, filters)
    auditing.record("invoice.list", "invoice:" + (current_user.customer or "*"),
                    details={"shown": len(listing.rows), "filters": filters, "page": listing.page,
                             "of": listing.count, "sort": f"{listing.sort} {listing.direction}"})
    db_session().commit()
    if close_form is None and current_user.role == "finance":
        close_form = _close_form(customers, formdata=None)
    return render_template("portal/invoices.html", listing=listing, form=form, close_form=close_form,
                           filtered=bool(filters), sort_labels=SORT_LABELS, status_labels=STATUS_LABELS,
                           credited=notes_of(db_session(), [row.id for row in listing.rows])), status


def _customers() -> list[tuple[str, str]]:
    return [tuple(row) for row in db_session().execute(select(Contract.id, Contract.customer).order_by(Contract.id))]


def _close_form(customers, **kwargs) -> ClosePeriodForm:
    form = ClosePeriodForm(**kwargs)
    form.customer.choices = [SelectChoice("", "Every customer billing the period")] + \
        [SelectChoice(i, f"{n} ({i})") for i, n in customers]
    return form


@blueprint.post("/invoices/close")
@allow("finance")
def close_period():
    """Closes a period as `billing close --period P [--customer ID]` does, each customer in its own transaction."""
    customers = _customers()
    form = _close_form(customers)
    if not form.validate_on_submit():
        if form.csrf_token.errors:
            abort(400)
        return index(close_form=form, status=400)
    if form.customer.data and form.customer.data not in dict(customers):
        form.customer.errors = ["There is no such customer."]
        return index(close_form=form, status=400)
    try:
        period = Period.parse(form.period.data)
    except ValueError as exc:
        form.period.errors = [sentence(str(exc))]
        return index(close_form=form, status=400)
    chosen = [form.customer.data] if form.customer.data else customers_billed_in(db_session(), period)
    if not chosen:
        form.period.errors = [f"No contract bills {period}: nothing was closed."]
        return index(close_form=form, status=400)
    closed, refused = [], []
    for customer in chosen:
        outcome = _close(customer, period)
        (closed if isinstance(outcome, Closed) else refused).append((customer, outcome))
    _say_closed(period, closed, refused)
    if len(chosen) == 1 and closed:
        return redirect(url_for("invoices.show", invoice_id=closed[0][1].invoice.id))
    return redirect(url_for("invoices.index", period=str(period)))


@blueprint.post("/invoices/<int:invoice_id>/refresh")
@allow("finance")
def refresh(invoice_id: int):
    """Closes the invoice's period again for its customer: a draft or approved invoice recomputed (an approved
    one that changed goes back to draft), a void one's replacement made; then the period is reconciled."""
    invoice = _visible_or_404(invoice_id, "invoice.close")
    if not ActionForm().validate_on_submit():
        abort(400)
    outcome = _close(invoice.customer, invoice.period)
    if not isinstance(outcome, Closed):
        flash(not_done(outcome), "error")
        return redirect(url_for("invoices.show", invoice_id=invoice_id))
    _say_closed(invoice.period, [(invoice.customer, outcome)], [], single=True)
    return redirect(url_for("invoices.show", invoice_id=outcome.invoice.id))


def _close(customer: str, period: Period) -> Closed | Refusal:
    """One customer's close and reconciliation, committed with its `invoice.close` entry; or the refusal,
    rolled back and recorded as a failure."""
    env = current_app.config["BILLING_ENVIRONMENT"]
    session = db_session()
    try:
        closed = close_and_reconcile(session, customer, period, auditing.actor(), threshold=Threshold.of(env),
                                     seller=env.seller, now=now())
    except Refused as refused:
        refusal = refused.refusal
    except OutsideContract as exc:
        refusal = Refusal("outside-contract", str(exc), params={"period": str(period)})
    else:
        row = closed.invoice
        auditing.record("invoice.close", invoice_resource(row.customer, row.period, row.id),
                        details=details("invoice.close", result=closed.outcome, total=row.document["totals"]["total"],
                                        reconciliation=closed.verdict))
        session.commit()
        return closed
    session.rollback()
    auditing.record("invoice.close", f"invoice:{customer}/{period}", outcome=FAILURE,
                    details=details("invoice.close", reason=refusal.message, code=refusal.code))
    session.commit()
    return refusal


def _say_closed(period: Period, closed: list, refused: list, single: bool = False) -> None:
    """What the close did, as flashed messages: each draft's outcome, then each failed reconciliation."""
    for customer, done in closed:
        row = done.invoice
        total = money(row.document["totals"]["total"], row.document["currency"])
        what = {"created": "made", "refreshed": "recomputed", "unchanged": "unchanged: nothing changed since"}
        flash(f"{row.document['customer']} {period}: draft {what[done.outcome]} (total {total}); "
              f"{_verdict(done)}", "done" if done.passed else "error")
    for customer, refusal in refused:
        flash(f"{customer} {period}: {not_done(refusal)}", "error")
    if not single and len(closed) + len(refused) > 1:
        failed = sum(not done.passed for _, done in closed)
        flash(f"Closed {period} for {len(closed)} of {len(closed) + len(refused)} customers"
              + (f"; the reconciliation of {failed} failed." if failed else "."), "error" if failed or refused else "done")


def _verdict(done: Closed) -> str:
    if done.report.passed:
        return "its reconciliation passed: it may be approved."
    if done.explanation is not None:
        return f"its reconciliation found discrepancies explained by {done.explanation.explained_by}: it may be approved."
    locale = current_app.config["BILLING_ENVIRONMENT"].locale
    return (f"its {headline(done.report, locale)}: it cannot be approved until they are resolved or explained "
            "(the invoice page lists them).")


@blueprint.get("/invoices/<int:invoice_id>")
@allow("finance", "customer_finance")
def show(invoice_id: int):
    invoice = _visible_or_404(invoice_id, "invoice.view")
    auditing.record("invoice.view", invoice_resource(invoice.customer, invoice.period, invoice.id),
                    details=details("invoice.view", status=status_of(db_session(), invoice), format="html",
                                    computed=False))
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
                                              seller=env.seller, now=now(), locale=env.locale),
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
        return _moot(invoice, "void") or _page(invoice, "void", {"void": form, "credit": CreditForm(formdata=None)}, 400)
    return _step(invoice_id, "void",
                 lambda invoice, who: void(db_session(), _selector(invoice), who, form.reason.data,
                                           charges_vat=_charges_vat(current_app.config["BILLING_ENVIRONMENT"]),
                                           now=now()),
                 "Voided. Closing the period again makes its replacement draft.", form=form)


@blueprint.post("/invoices/<int:invoice_id>/credit")
@allow("finance")
def credit_invoice(invoice_id: int):
    """A credit note as `billing credit` makes it: everything that remains, or the amounts typed beside the
    invoice's sites (`amount-<site>`) and account lines (`amount-account-<kind>`), each refusal beside its field."""
    form = CreditForm()
    invoice = _visible_or_404(invoice_id, "credit_note.issue")
    amounts, account = None, []
    if form.scope.data == "sites":
        amounts = [(site, text) for site, text in
                   ((site["site"], request.form.get(f"amount-{site['site']}", "").strip())
                    for site in invoice.document["sites"]) if text]
        account = [(kind, text) for kind, text in
                   ((kind, request.form.get(f"amount-{_account_field(kind)}", "").strip())
                    for kind in _account_kinds(invoice.document)) if text]
    forms = {"void": VoidForm(formdata=None), "credit": form}
    with_nul = {key[7:]: NUL_MESSAGE for key, value in request.form.items()
                if key.startswith("amount-") and "\x00" in value}
    if not form.validate_on_submit() or with_nul:
        return _moot(invoice, "credit") or _page(invoice, "credit", forms, 400, site_errors=with_nul)
    env = current_app.config["BILLING_ENVIRONMENT"]
    try:
        # the same call as `billing credit`: sites and account lines stated, or neither for all that remains
        note = credit(db_session(), invoice, auditing.actor(), form.reason.data,
                      amounts, account=account,
                      prefix=env.invoice_prefix, locale=env.locale, now=now())
    except Refused as refused:
        db_session().rollback()
        refusal = refused.refusal
        _record_refusal("credit_note.issue", invoice, refusal)
        if refusal.field == "amount":   # beside the line's amount, or beside the choice when no line is named
            form.scope.data = "sites"
            if "site" in refusal.params:
                return _page(invoice, "credit", forms, 400, site_errors={refusal.params["site"]: refusal_text(refusal)})
            if "account" in refusal.params:
                return _page(invoice, "credit", forms, 400,
                             site_errors={_account_field(refusal.params["account"]): refusal_text(refusal)})
            form.scope.errors = [refusal_text(refusal)]
            return _page(invoice, "credit", forms, 400)
        if not beside_field(form, refusal):
            flash(not_done(refusal), "error")
        return _page(invoice, "credit", forms, 400)
    db_session().commit()
    tax = Decimal(note.tax["amount"]) if note.tax else Decimal(0)
    flash(f"Credit note {note.number} issued: {money(note.total, note.currency)} credited"
          + (f" ({money(note.total - tax, note.currency)} net + {money(tax, note.currency)} tax)." if tax else "."),
          "done")
    return redirect(url_for("invoices.show", invoice_id=invoice_id))


def _account_kinds(document: dict) -> list[str]:
    """The kinds of the invoice's account lines, in its order (none when it has no account block)."""
    return [line["kind"] for line in (document.get("account") or {}).get("lines", ())]


def _account_field(kind: str) -> str:
    """What follows `amount-` in the name of an account line's amount field (and keys its error)."""
    return f"account-{kind}"


@dataclass(frozen=True)
class CreditableAccountLine:
    """An account line as the credit form offers it: its title from the line-kind registry (lifecycle's
    `Remaining.names`), its amount on the invoice, and what remains creditable on it (None: it reduces the
    invoice or charges nothing, so it has nothing to credit)."""

    kind: str
    field: str
    title: str
    charged: Decimal
    creditable: Decimal | None


def _creditable_account_lines(document: dict, left: Remaining) -> list[CreditableAccountLine]:
    lines = []
    for kind in _account_kinds(document):
        key = ("account", kind)
        charged = left.charged[key]
        lines.append(CreditableAccountLine(kind, _account_field(kind), left.names[key], charged,
                                           left.of(key) if charged > 0 else None))
    return lines


def _moot(invoice: Invoice, action: str) -> Response | None:
    """A form refused for a step the invoice can no longer take (voided meanwhile, …): what to correct is not
    the text but the step, said above the page as the lifecycle's refusal would be."""
    state = status_of(db_session(), invoice)
    if action in ACTIONS[state]:
        return None
    flash(f"Not done: the invoice is {state}: it cannot take this step.", "error")
    return redirect(url_for("invoices.show", invoice_id=invoice.id))


@blueprint.get("/invoices/<int:invoice_id>/pdf")
@allow("finance", "customer_finance")
def pdf(invoice_id: int):
    invoice = _visible_or_404(invoice_id, "invoice.download")
    number = request.args.get("credit_note", "").replace("\x00", "")
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
                        details=refusal_details(action, "not visible to this user" if row else "no such invoice"))
        db_session().commit()
        abort(404)
    mismatch = frozen_mismatch(db_session(), invoice)
    if mismatch:   # recorded, and nothing of it shown or sent as if it were what was issued
        auditing.record(action, invoice_resource(invoice.customer, invoice.period, invoice.id), outcome=FAILURE,
                        details=refusal_details(action, mismatch, "tampered"))
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
    auditing.record_refusal(action, invoice_resource(invoice.customer, invoice.period, invoice.id), refusal)


def _page(invoice: Invoice, confirm: str, forms: dict, status: int = 200, site_errors: dict | None = None):
    session = db_session()
    state = status_of(session, invoice)
    finance = current_user.role == "finance"
    actions = ACTIONS[state] if finance else ()
    notes = notes_of(session, [invoice.id]).get(invoice.id, [])
    left = remaining_of(session, invoice) if state == "issued" else None
    remaining = {ref: left.of((on, ref)) for on, ref in left.lines if on == "site"} if left else {}
    account_lines = _creditable_account_lines(invoice.document, left) if left else []
    # what a credit note may still credit in all: each line's remainder, never more than the net that remains
    remaining_total = min(sum(remaining.values(), Decimal(0))
                          + sum((line.creditable for line in account_lines if line.creditable), Decimal(0)),
                          left.left.net) if left else Decimal(0)
    return render_template(
        "portal/invoice.html", invoice=invoice, document=invoice.document, status=state, actions=actions,
        confirm=confirm if confirm in actions else "", forms=forms, notes=notes, remaining=remaining,
        remaining_total=remaining_total, account_lines=account_lines, site_errors=site_errors or {},
        amounts={key[7:]: value.replace("\x00", "") for key, value in request.form.items() if key.startswith("amount-")},
        void=session.get(InvoiceVoid, invoice.id), view=_view(invoice, state),
        refresh=REFRESHED.get(state) if finance else None,
        freshness=_freshness(invoice, state) if finance else None,
        reconciliation=_reconciliation(invoice) if finance else None,
    ), status


@dataclass(frozen=True)
class Freshness:
    """Whether an open invoice is what closing its period now would make: `stale` says why not, `refused`
    why it cannot be computed now (lifecycle.transitions.stale_now, which the approval gate runs too)."""

    stale: object = None
    refused: str | None = None


def _freshness(invoice: Invoice, state: str) -> Freshness | None:
    if state not in ("draft", "approved"):
        return None
    env = current_app.config["BILLING_ENVIRONMENT"]
    try:
        return Freshness(stale=stale_now(db_session(), invoice, seller=env.seller, now=now()))
    except Refused as refused:
        return Freshness(refused=refusal_text(refused.refusal))


@dataclass(frozen=True)
class LastReconciliation:
    row: Reconciliation
    report: Report
    discrepancies: tuple
    explanation: ReconciliationExplanation | None
    of_this_invoice: bool


def _reconciliation(invoice: Invoice) -> LastReconciliation | None:
    """The period's last stored reconciliation, and its discrepancies, when it concerns an open invoice."""
    if invoice.status not in ("draft", "approved"):
        return None
    row = latest(db_session(), invoice.customer, invoice.period)
    if row is None:
        return None
    report = Report.from_json(row.report)
    return LastReconciliation(row, report, tuple(f for f in report.findings if f.status == DISCREPANCY),
                              db_session().get(ReconciliationExplanation, row.id), row.invoice_id == invoice.id)


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
