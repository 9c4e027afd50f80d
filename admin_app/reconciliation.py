"""Reconciliation in the portal, for finance: each period's reports, their discrepancies, the events behind them.

    GET  /reconciliation                     the latest report of each customer and period: filtered (?period=,
                                             customer=, outcome=), sorted (?sort=, dir=) and paged (?page=) by the
                                             database, PAGE_SIZE a page
    GET  /reconciliation/journal?period=     the accountant's journal of the documents issued, credited and voided
                                             in that month, as CSV (docs/journal.md); without a month, a form
    GET  /reconciliation/<period>            the reports of a period, discrepancies highlighted, each linked to
                                             the raw events behind it
    GET  /reconciliation/<period>/events     those raw events (?customer=&site=&category=&from=&to=&late=&conflicts=)
    POST /reconciliation/<period>/run        run the reconciliation again (one customer, or every one)
    POST /reconciliation/<period>/explain    record why a failed reconciliation's discrepancies may stand

The reports are the ones `billing close` and `billing reconcile` store (store/reconcile.py); a page shows
them as stored and changes nothing. Running, explaining, every view and download are in the audit log. Only finance
may reach any of it (deny by default: an admin manages users, not money; customer users see invoices only).
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

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
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from wtforms import HiddenField, TextAreaField
from wtforms.validators import DataRequired, Length

from admin_app import auditing
from admin_app.access import allow
from admin_app.database import db_session
from admin_app.listing import PAGE_SIZE, Listing, asked_page, asked_sort, page_count
from admin_app.refusals import refusal_text
from audit.log import FAILURE, details
from engine.evaluate import OutsideContract
from engine.periods import Period
from engine.refusal import Refused
from invoicing.journal import Accounts, render_csv, unbalanced
from ledger.invoices import Selector, find
from lifecycle.journal import period_journal
from lifecycle.transitions import customers_billed_in
from review.models import Reconciliation, ReconciliationExplanation
from review.reconcile import (
    CHECK_TITLES,
    LIST_SORTS,
    OUTCOMES,
    EventQuery,
    NothingToExplain,
    Report,
    Threshold,
    explain,
    last_runs,
    latest_per_customer,
    reconcile,
    reconciliation_resource,
    store_report,
)

blueprint = Blueprint("reconciliation", __name__)
EVENTS_SHOWN = 500
SORT_LABELS = {"period": "Period", "customer": "Customer", "outcome": "Outcome", "difference": "Money difference",
               "ran": "Run (UTC)"}
FIRST_DIRECTION = {"period": "desc", "difference": "desc", "ran": "desc"}   # the others start ascending


class ExplanationForm(FlaskForm):
    reconciliation = HiddenField()
    text = TextAreaField("Why these discrepancies may stand", validators=[
        DataRequired("Say why these discrepancies may stand: it is kept with the report and in the audit log."),
        Length(max=2000, message="At most 2,000 characters.")],
        description="Kept with this report and in the audit log; approving and issuing then accept exactly "
                    "these discrepancies.")


class RunForm(FlaskForm):
    customer = HiddenField()


@blueprint.get("/reconciliation")
@allow("finance")
def index():
    listing = _listing()
    auditing.record("reconciliation.list", "reconciliation:*",
                    details={"shown": len(listing.rows), "of": listing.count, "page": listing.page,
                             "filters": {k: v for k, v in listing.args.items() if k not in ("sort", "dir")},
                             "sort": f"{listing.sort} {listing.direction}"})
    db_session().commit()
    return render_template("portal/reconciliation/index.html", listing=listing, sort_labels=SORT_LABELS,
                           outcomes=OUTCOMES, locale=current_app.config["BILLING_ENVIRONMENT"].locale,
                           journal_month=_today().strftime("%Y-%m"))


def _listing() -> Listing:
    arguments, errors, filters = request.args, {}, {}
    period = None
    if arguments.get("period", "").strip():
        try:
            period = Period.parse(arguments["period"].strip())
            filters["period"] = str(period)
        except ValueError:
            errors["period"] = "Write the period as YYYY-MM, for example 2026-06."
    customer = arguments.get("customer", "").strip()[:100]
    if customer:
        filters["customer"] = customer
    outcome = arguments.get("outcome", "")
    if outcome in OUTCOMES:
        filters["outcome"] = outcome
    sort, direction = asked_sort(arguments, LIST_SORTS, "period", FIRST_DIRECTION)
    page = asked_page(arguments)
    query = {"period": period, "customer": customer or None, "outcome": filters.get("outcome"), "sort": sort,
             "descending": direction == "desc", "per_page": PAGE_SIZE}
    rows, count = last_runs(db_session(), page=page, **query)
    pages = page_count(count, PAGE_SIZE)
    if page > pages:   # past the end (the list shrank): the last page
        page = pages
        rows, count = last_runs(db_session(), page=page, **query)
    return Listing("reconciliation.index", rows, page, pages, count, sort, direction,
                   {**filters, "sort": sort, "dir": direction}, FIRST_DIRECTION, errors)


@blueprint.get("/reconciliation/journal")
@allow("finance")
def journal():
    """The journal of a month as CSV; without a month (or with one that is not), the form that asks for it."""
    text = request.args.get("period", "").strip()
    if not text:
        return render_template("portal/reconciliation/journal.html", month=_today().strftime("%Y-%m"), error=None)
    try:
        period = Period.parse(text)
    except ValueError:
        return render_template("portal/reconciliation/journal.html", month=text[:20],
                               error="Write the month as YYYY-MM, for example 2026-06."), 400
    environment = current_app.config["BILLING_ENVIRONMENT"]
    resource = f"journal:{period}"
    try:
        accounts = Accounts.of(environment.accounts)
    except ValueError as exc:   # the environment's file is wrong: said, recorded, never a traceback
        return _journal_refused(period, resource, f"The environment's [accounts] table is wrong: {exc}.")
    lines = period_journal(db_session(), period, accounts, _timezone(), customer=None)
    wrong = unbalanced(lines)
    if wrong:
        return _journal_refused(period, resource, "The journal does not balance: " + "; ".join(wrong) + ".")
    auditing.record("journal.download", resource, details=details("journal.download", format="csv", lines=len(lines)))
    db_session().commit()
    response = Response(render_csv(lines), content_type="text/csv; charset=utf-8")
    response.headers["Content-Disposition"] = f'attachment; filename="journal-{environment.name}-{period}.csv"'
    response.headers["Cache-Control"] = "no-store"
    return response


def _journal_refused(period: Period, resource: str, reason: str):
    auditing.record("journal.download", resource, outcome=FAILURE,
                    details=details("journal.download", format="csv", reason=reason))
    db_session().commit()
    return render_template("portal/reconciliation/journal.html", month=str(period), error=reason), 409


def _timezone() -> str:
    return (current_app.config["BILLING_ENVIRONMENT"].seller or {}).get("timezone") or "UTC"


def _today() -> dt.date:
    return current_app.config["PORTAL_CLOCK"]().astimezone(ZoneInfo(_timezone())).date()


@blueprint.get("/reconciliation/<period>")
@allow("finance")
def show(period: str, form: ExplanationForm | None = None, form_for: int | None = None):
    billed = _period(period)
    rows = latest_per_customer(db_session(), billed)
    reports = [(row, Report.from_json(row.report)) for row in rows]
    explained = _explained([row.id for row in rows])
    explanations = {e.reconciliation_id: e for e in db_session().scalars(
        select(ReconciliationExplanation).where(ReconciliationExplanation.reconciliation_id.in_(explained)))}
    auditing.record("reconciliation.view", f"reconciliation:*/{billed}", details={"reports": len(rows)})
    db_session().commit()
    return render_template("portal/reconciliation/period.html", period=billed, reports=reports,
                           explanations=explanations, titles=CHECK_TITLES, form=form, form_for=form_for,
                           run_form=RunForm(), blank_form=ExplanationForm(formdata=None),
                           events_url=_events_url), 200 if form is None else 400


@blueprint.get("/reconciliation/<period>/events")
@allow("finance")
def events(period: str):
    billed = _period(period)
    query = _event_query(billed)
    rows = db_session().scalars(query.statement().limit(EVENTS_SHOWN + 1)).all() if query else []
    totals = _totals(query) if query else (0, 0)
    auditing.record("reconciliation.events", reconciliation_resource(query.customer if query else "*", billed),
                    details={"query": query.as_json() if query else None, "shown": min(len(rows), EVENTS_SHOWN)})
    db_session().commit()
    return render_template("portal/reconciliation/events.html", period=billed, query=query,
                           rows=rows[:EVENTS_SHOWN], more=len(rows) > EVENTS_SHOWN, totals=totals,
                           customers=_customers(billed))


@blueprint.post("/reconciliation/<period>/run")
@allow("finance")
def run(period: str):
    billed = _period(period)
    form = RunForm()
    if not form.validate_on_submit():
        abort(400)
    session = db_session()
    customers = [form.customer.data] if form.customer.data else customers_billed_in(session, billed)
    threshold = Threshold.of(current_app.config["BILLING_ENVIRONMENT"])
    failed = 0
    for customer in customers:
        try:
            report = reconcile(session, customer, billed, threshold, invoice=find(session, Selector(customer, billed)),
                               seller=current_app.config["BILLING_ENVIRONMENT"].seller,
                               now=current_app.config["PORTAL_CLOCK"]())
        except Refused as refused:   # no such contract, or a stored version that no longer compiles
            session.rollback()
            flash(f"{customer}: not reconciled: {refusal_text(refused.refusal)}", "error")
            continue
        except OutsideContract as exc:
            session.rollback()
            flash(f"{customer}: not reconciled: {exc}", "error")
            continue
        store_report(session, report, auditing.actor())
        failed += not report.passed
    session.commit()
    flash(f"Reconciled {len(customers)} customer{'s' if len(customers) != 1 else ''} for {billed}: "
          + (f"{failed} failed." if failed else "all passed."), "error" if failed else "done")
    return redirect(url_for("reconciliation.show", period=str(billed)))


@blueprint.post("/reconciliation/<period>/explain")
@allow("finance")
def record_explanation(period: str):
    billed = _period(period)
    form = ExplanationForm()
    row = _report_row(form.reconciliation.data, billed)
    if not form.validate_on_submit():
        return show(period, form=form, form_for=row.id)
    try:
        explain(db_session(), row, auditing.actor(), form.text.data, now=current_app.config["PORTAL_CLOCK"]())
    except NothingToExplain as exc:
        db_session().rollback()
        form.text.errors = [str(exc)]
        return show(period, form=form, form_for=row.id)
    db_session().commit()
    flash(f"Explanation recorded for {row.customer} {billed}: approving and issuing accept these discrepancies.",
          "done")
    return redirect(url_for("reconciliation.show", period=str(billed)) + f"#report-{row.id}")


def _period(text: str) -> Period:
    try:
        return Period.parse(text)
    except ValueError:
        abort(404)


def _report_row(value: str | None, period: Period) -> Reconciliation:
    row = db_session().get(Reconciliation, int(value)) if value and value.isdigit() else None
    if row is None or row.period != period:
        abort(404)
    return row


def _explained(ids: list[int]) -> set[int]:
    if not ids:
        return set()
    return set(db_session().scalars(select(ReconciliationExplanation.reconciliation_id)
                                    .where(ReconciliationExplanation.reconciliation_id.in_(ids))))


def _events_url(period: Period, query: EventQuery) -> str:
    arguments = {"customer": query.customer, "from": query.first_day.isoformat(), "to": query.last_day.isoformat()}
    arguments.update({name: value for name, value in (("site", query.site), ("category", query.category))
                      if value is not None})
    if query.late is not None:
        arguments["late"] = "yes" if query.late else "no"
    if query.conflicts:
        arguments["conflicts"] = "yes"
    return url_for("reconciliation.events", period=str(period), **arguments)


def _event_query(period: Period) -> EventQuery | None:
    """The query the link names; days outside the period (late events of an issued one may be linked from a
    later period) are allowed within a year; anything malformed lists nothing."""
    arguments = request.args
    customer = arguments.get("customer", "")
    if not customer:
        return None
    try:
        first = dt.date.fromisoformat(arguments.get("from") or period.first_day.isoformat())
        last = dt.date.fromisoformat(arguments.get("to") or period.last_day.isoformat())
    except ValueError:
        return None
    late = {"yes": True, "no": False}.get(arguments.get("late", ""))
    return EventQuery(customer, first, last, arguments.get("site") or None, arguments.get("category") or None,
                      late, arguments.get("conflicts") == "yes")


def _totals(query: EventQuery) -> tuple[int, object]:
    """How many events the query finds, and their quantity (summed exactly, in Python: SQLite keeps text)."""
    from decimal import Decimal

    count, quantity = 0, Decimal(0)
    for row in db_session().scalars(query.statement()):
        count += 1
        quantity += row.quantity
    return count, quantity


def _customers(period: Period) -> list[str]:
    return list(db_session().scalars(select(Reconciliation.customer).where(Reconciliation.period == period)
                                     .group_by(Reconciliation.customer).order_by(func.min(Reconciliation.customer))))
