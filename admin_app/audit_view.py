"""The audit log viewer, for admins and finance: the newest entries first, filtered by actor, action,
resource and UTC dates, a hundred a page.

    GET /audit?actor=ana&action=login&resource=invoice:&since=2026-05-01&until=2026-05-31

Looking at the log is itself recorded (action `audit.view`, with the filters).
"""

from __future__ import annotations

from flask import Blueprint, render_template, request

from admin_app import auditing
from admin_app.access import allow
from admin_app.database import db_session
from admin_app.forms import AuditFilterForm
from audit.log import AuditQuery, search

blueprint = Blueprint("audit", __name__)
PAGE = 100


@blueprint.get("/audit")
@allow("admin", "finance")
def index():
    form = AuditFilterForm(request.args)
    entries, before = [], request.args.get("before", type=int)
    if form.validate():
        query = AuditQuery(actor=form.actor.data or "", action=form.action.data or "",
                           resource=form.resource.data or "", since=form.since.data, until=form.until.data,
                           before=before, limit=PAGE)
        entries = search(db_session(), query)
        auditing.record("audit.view", "audit_log", details={
            name: value for name, value in (("actor", query.actor), ("action", query.action),
                                            ("resource", query.resource), ("since", request.args.get("since")),
                                            ("until", request.args.get("until")), ("before", before)) if value
        })
        db_session().commit()
    filters = {name: value for name, value in request.args.items() if name != "before" and value}
    older = entries[-1].sequence if len(entries) == PAGE else None
    return render_template("portal/audit.html", form=form, entries=entries, filters=filters, older=older)
