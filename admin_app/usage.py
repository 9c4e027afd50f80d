"""Usage exports, for a customer's finance team and for finance: a customer's usage per site, category and local
day, as its invoices bill it (review/usage_export.py), for any range of days.

    GET /usage?customer=acme-health&since=2026-05-01&until=2026-05-31     the form and the sums it would export
    GET /usage/<customer>/csv?since=2026-05-01&until=2026-05-31           the CSV (default: last month)

A customer finance user sees only their own customer: another customer's export
is 404, and the refusal is recorded (`usage.download`, denied). Every download is
in the audit log like an invoice's (`usage.download`, with the range and the
number of rows), and so is every view of the sums (`usage.view`).
"""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, Response, abort, render_template, request
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import DateField, SelectChoice, SelectField
from wtforms.validators import Optional, ValidationError

from admin_app import auditing
from admin_app.access import allow
from admin_app.database import db_session
from admin_app.sessions import now
from audit.log import DENIED, FAILURE
from identity.accounts import CUSTOMER_ROLE
from ledger.models import Contract
from review.usage_export import (
    BILLED,
    BILLED_LATE,
    UsageExport,
    usage_csv,
    usage_export,
)

blueprint = Blueprint("usage", __name__)


class UsageForm(FlaskForm):
    class Meta:
        csrf = False   # a GET that changes nothing

    customer = SelectField("Customer", choices=[], validate_choice=False)
    since = DateField("From (local day)", validators=[Optional()],
                      description="Days in the contract's time zone, as the invoice bills them.")
    until = DateField("To (local day, included)", validators=[Optional()])

    def validate_until(self, field) -> None:
        if field.data and self.since.data and field.data < self.since.data:
            raise ValidationError("The last day comes before the first: swap them.")


def usage_resource(customer: str, since: dt.date, until: dt.date) -> str:
    return f"usage:{customer}/{since.isoformat()}..{until.isoformat()}"


def _last_month() -> tuple[dt.date, dt.date]:
    first_of_this = now().date().replace(day=1)
    last = first_of_this - dt.timedelta(days=1)
    return last.replace(day=1), last


def _visible_customers() -> list[tuple[str, str]]:
    query = select(Contract.id, Contract.customer).order_by(Contract.customer, Contract.id)
    if current_user.role == CUSTOMER_ROLE:
        query = query.where(Contract.id == current_user.customer)
    return list(db_session().execute(query))


def _range(form: UsageForm) -> tuple[dt.date, dt.date]:
    since, until = _last_month()
    return form.since.data or since, form.until.data or until


@blueprint.get("/usage")
@allow("admin", "finance", "customer_finance")
def index():
    form = UsageForm(request.args)
    customers = _visible_customers()
    form.customer.choices = [SelectChoice(id_, f"{name} ({id_})") for id_, name in customers]
    if current_user.role == CUSTOMER_ROLE:
        form.customer.data = current_user.customer
    elif not form.customer.data and customers:
        form.customer.data = customers[0][0]
    export, status = None, 200
    if form.validate() and form.customer.data in {id_ for id_, _ in customers}:
        since, until = _range(form)
        form.since.data, form.until.data = since, until
        export = usage_export(db_session(), form.customer.data, since, until)
        auditing.record("usage.view", usage_resource(export.customer, since, until),
                        details={"rows": len(export.rows)})
        db_session().commit()
    elif form.errors:
        status = 400
    return render_template("portal/usage.html", form=form, export=export, summary=_summary(export) if export else [],
                           BILLED=BILLED, BILLED_LATE=BILLED_LATE), status


@blueprint.get("/usage/<customer>/csv")
@allow("admin", "finance", "customer_finance")
def download(customer: str):
    form = UsageForm(request.args)
    if not form.validate():
        abort(400, " ".join(error for errors in form.errors.values() for error in errors))
    since, until = _range(form)
    resource = usage_resource(customer, since, until)
    if customer not in {id_ for id_, _ in _visible_customers()}:
        exists = db_session().get(Contract, customer) is not None
        auditing.record("usage.download", resource, outcome=DENIED if exists else FAILURE,
                        details={"reason": "not visible to this user" if exists else "no such customer"})
        db_session().commit()
        abort(404)
    export = usage_export(db_session(), customer, since, until)
    auditing.record("usage.download", resource, details={"format": "csv", "rows": len(export.rows),
                                                         "time_zone": export.zone})
    db_session().commit()
    response = Response(usage_csv(export), content_type="text/csv; charset=utf-8")
    response.headers["Content-Disposition"] = f'attachment; filename="{export.filename}"'
    response.headers["Cache-Control"] = "no-store"
    return response


def _summary(export: UsageExport) -> list[tuple[str, str, str, object, int]]:
    """(site, category, status, quantity, events) summed over the days: what the CSV adds up to."""
    sums: dict[tuple[str, str, str], list] = {}
    for row in export.rows:
        cell = sums.setdefault((row.site, row.category, row.status), [0, 0])
        cell[0] += row.quantity
        cell[1] += row.events
    return [(site, category, status, quantity, events)
            for (site, category, status), (quantity, events) in sorted(sums.items())]
