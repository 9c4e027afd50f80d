"""The audit log viewer, for admins and finance: filtered by actor, action, resource and UTC dates, sorted by
any column, a hundred a page; the database filters, sorts and cuts each page (audit/log.py `search`: keyset
pages, so the thousandth page costs what the first does; bench/list_audit.py measures it on a year of log).

    GET /audit?actor=ana&action=login&resource=invoice:&since=2026-05-01&until=2026-05-31&sort=actor&order=asc
    GET /audit?…&after=81234          the page after the entry numbered 81234 in that order

Looking at the log is itself recorded (action `audit.view`, with the filters).
"""

from __future__ import annotations

from flask import Blueprint, render_template, request
from wtforms import IntegerField, SelectChoice, SelectField
from wtforms.validators import Optional

from admin_app import auditing
from admin_app.access import allow
from admin_app.database import db_session
from admin_app.forms import AuditFilterForm
from audit.log import SORTS, AuditQuery, search

blueprint = Blueprint("audit", __name__)
PAGE = 100
ORDERS = {"desc": "descending", "asc": "ascending"}


class AuditForm(AuditFilterForm):
    sort = SelectField("Sort by", choices=[SelectChoice(name, name) for name in SORTS], default="when")
    order = SelectField("Order", choices=[SelectChoice(value, label) for value, label in ORDERS.items()],
                        default="desc")
    after = IntegerField(validators=[Optional()])


@blueprint.get("/audit")
@allow("admin", "finance")
def index():
    form = AuditForm(request.args)
    entries = []
    if form.validate():
        query = AuditQuery(actor=form.actor.data or "", action=form.action.data or "",
                           resource=form.resource.data or "", since=form.since.data, until=form.until.data,
                           sort=form.sort.data, descending=form.order.data == "desc", after=form.after.data,
                           limit=PAGE)
        entries = search(db_session(), query)
        auditing.record("audit.view", "audit_log", details={
            name: value for name, value in (("actor", query.actor), ("action", query.action),
                                            ("resource", query.resource), ("since", request.args.get("since")),
                                            ("until", request.args.get("until")), ("sort", query.sort),
                                            ("order", form.order.data), ("after", query.after)) if value
        })
        db_session().commit()
    filters = {name: value for name, value in request.args.items() if name not in ("after", "sort", "order") and value}
    order = {"sort": form.sort.data, "order": form.order.data}
    following = entries[-1].sequence if len(entries) == PAGE else None
    return render_template("portal/audit.html", form=form, entries=entries, filters=filters, order=order,
                           listing={**filters, **order},
                           following=following, first_page=form.after.data is None)
