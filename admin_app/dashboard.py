"""The finance dashboard: a customer's current period per site, near-real-time, from the invoice's own engine.

    GET /dashboard                       finance: every customer's current period; customer finance: their own
    GET /dashboard/<customer>            one customer's period (?period=YYYY-MM for another one)
    GET /dashboard/<customer>/data       the same figures as JSON, for the page's refresh every 15 s

A period with an issued invoice shows that invoice as stored, with its number;
one whose stored document is not what was issued (ledger/invoices.py
`frozen_mismatch`) is withheld: the page and the JSON say so (500) instead of
showing it, and every such read is recorded as a failure with code `tampered`.

The figures are review/dashboard.py's (the draft invoice computed now from the
rollups), kept in memory by review/dashboard_cache.py until the data under them
changes; the page's rendered figures and the JSON (admin_app/dashboard_view.py)
are kept in the same cache entry, so a request that finds the figures unchanged
renders only the frame around them. On SQLite the figures are read in a
read-only transaction of their own (admin_app/database.py `reading`).

The customer scope is a condition of the contract query (`visible_contracts`):
a customer_finance user asking for another customer gets 404, and the refusal
is audited. Every page view is audited (`dashboard.view`, `dashboard.list`); the
refresh endpoint records `dashboard.refresh` once per signed-in session,
customer and period (in this process's memory), not once per poll, so a page
left open does not fill the audit log with one entry every 15 s.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    render_template,
    request,
)
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy import Select, select

from admin_app import auditing
from admin_app.access import allow
from admin_app.dashboard_view import Formats, view_of
from admin_app.database import db_session, reading
from admin_app.portal import error_page
from admin_app.sessions import SignedIn
from audit.log import DENIED, FAILURE
from engine.evaluate import OutsideContract
from engine.periods import Period
from identity.accounts import CUSTOMER_ROLE
from ledger.contracts import StoredVersionInvalid, load_contract
from ledger.models import Contract
from review.dashboard import Dashboard
from review.dashboard_cache import DashboardCache

blueprint = Blueprint("dashboard", __name__)
CACHE, AUDITED = "billing.dashboard", "billing.dashboard.audited_refreshes"
REFRESH_SECONDS = 15
MAX_AUDITED = 4096


def init_app(app: Flask) -> None:
    app.extensions[CACHE] = DashboardCache()
    app.extensions[AUDITED] = SeenOnce(MAX_AUDITED)


class SeenOnce:
    """Which keys were seen, in this process, forgetting the oldest beyond `size` (thread-safe)."""

    def __init__(self, size: int):
        self.size, self.keys, self.lock = size, OrderedDict(), threading.Lock()

    def first_time(self, key) -> bool:
        with self.lock:
            if key in self.keys:
                return False
            self.keys[key] = True
            while len(self.keys) > self.size:
                self.keys.popitem(last=False)
            return True


def cache() -> DashboardCache:
    return current_app.extensions[CACHE]


def figures_of(customer: str, period: Period) -> Dashboard:
    """The cached figures, checked against the database (review/dashboard_cache.py)."""
    with reading() as session:
        return cache().get(session, customer, period)


def visible_contracts(user: SignedIn) -> Select:
    query = select(Contract)
    if user.role == CUSTOMER_ROLE:
        query = query.where(Contract.id == user.customer)
    return query


def resource(customer: str, period: Period | str) -> str:
    return f"dashboard:{customer}/{period}"


def formats() -> Formats:
    return Formats(current_app.config["BILLING_ENVIRONMENT"].locale, current_app.config["PORTAL_CLOCK"]())


@blueprint.get("/dashboard")
@allow("finance", "customer_finance")
def index():
    if current_user.role == CUSTOMER_ROLE:   # one customer: their dashboard is the page
        return show(current_user.customer)
    session = db_session()
    rows = []
    for contract in session.scalars(visible_contracts(current_user).order_by(Contract.customer, Contract.id)):
        period, board, problem = None, None, None
        try:
            period = current_period(contract)
            board = figures_of(contract.id, period)
        except (OutsideContract, StoredVersionInvalid) as exc:
            problem = str(exc)
        rows.append((contract, period, board, problem))
    auditing.record("dashboard.list", "dashboard:*", details={"shown": len(rows)})
    session.commit()
    return render_template("portal/dashboard/index.html", rows=rows, fmt=formats())


@blueprint.get("/dashboard/<customer>")
@allow("finance", "customer_finance")
def show(customer: str):
    try:
        contract, period, board = _asked(customer, "dashboard.view")
    except Unavailable as exc:
        return error_page(400, "Period not available", str(exc))
    if board.withheld:
        _audit_withheld(board, "dashboard.view")
    if board.tampered:
        return error_page(500, "Invoice withheld", f"{board.tampered}; it is not shown. Tell the engineers: the "
                                                   "database was changed outside the application.")
    auditing.record("dashboard.view", resource(contract.id, period),
                    details={"total": str(board.totals["total"]), "currency": board.money.currency,
                             **({"invoice": board.issued.number} if board.issued else {})})
    db_session().commit()
    site = _site(board)
    return render_template("portal/dashboard/show.html", board=board, figures=rendered(board, formats(), site),
                           site=site, refresh=REFRESH_SECONDS, default_period=request.args.get("period") is None)


@blueprint.get("/dashboard/<customer>/data")
@allow("finance", "customer_finance")
def data(customer: str):
    try:
        contract, period, board = _asked(customer, "dashboard.refresh")
    except Unavailable as exc:
        return {"error": str(exc)}, 400
    if board.withheld:
        _audit_withheld(board, "dashboard.refresh")
    if board.tampered:
        return {"error": f"{board.tampered}; it is not shown", "status": "withheld"}, 500
    _audit_refresh_once(contract, period)
    body = board_json(board, formats(), _site(board))
    return Response(body, mimetype="application/json", headers={"Cache-Control": "no-store"})


def _audit_withheld(board: Dashboard, action: str) -> None:
    """Each issued invoice the figures read that is not what was issued: a failure in the audit log, every time."""
    for period, reason in board.withheld:
        auditing.record(action, resource(board.customer, period), outcome=FAILURE,
                        details={"reason": reason, "code": "tampered"})
    db_session().commit()


def _audit_refresh_once(contract: Contract, period: Period) -> None:
    if current_app.extensions[AUDITED].first_time((current_user.session_id, contract.id, period)):
        auditing.record("dashboard.refresh", resource(contract.id, period),
                        details={"recorded": "once per session, customer and period"})
        db_session().commit()


def _end_reads() -> None:
    """Ends the request's transaction before the figures are fetched and drawn: on SQLite every transaction of
    the app's sessions holds the write lock (storage/db.py), and 20 clients polling would queue behind each
    other's page building. The audit entry that follows is a transaction of its own."""
    db_session().commit()


def _contract_or_404(customer: str, action: str) -> Contract:
    """The contract, if the user's scope (a condition of the query) includes it; else the refusal is audited and
    the answer is 404."""
    contract = db_session().scalar(visible_contracts(current_user).where(Contract.id == customer))
    if contract is None:
        exists = db_session().get(Contract, customer) is not None
        auditing.record(action, resource(customer, request.args.get("period", "current")),
                        outcome=DENIED if exists else "failure",
                        details={"reason": "not visible to this user" if exists else "no such customer"})
        db_session().commit()
        abort(404)
    return contract


class Unavailable(Exception):
    """The figures asked for cannot be shown (a period that is not one, or outside the contract); says why."""


def _asked(customer: str, action: str) -> tuple[Contract, Period, Dashboard]:
    """The contract (or 404), the period and the figures the request asks for; Unavailable otherwise."""
    contract = _contract_or_404(customer, action)
    period = _period(contract)
    _end_reads()
    try:
        return contract, period, figures_of(contract.id, period)
    except (OutsideContract, StoredVersionInvalid) as exc:
        db_session().rollback()
        raise Unavailable(str(exc)) from None


def _period(contract: Contract) -> Period:
    """The period asked for (?period=), or the current one."""
    asked = request.args.get("period")
    try:
        return current_period(contract) if asked is None else Period.parse(asked)
    except StoredVersionInvalid as exc:
        raise Unavailable(str(exc)) from None
    except ValueError as exc:
        raise Unavailable(f"{exc}.") from None


def current_period(contract: Contract) -> Period:
    """The period of today in the contract's time zone, within the periods the contract bills."""
    stored = load_contract(db_session(), contract.id)
    today = current_app.config["PORTAL_CLOCK"]().astimezone(stored.zone).date()
    period = max(Period.of(today), Period.of(contract.starts))
    ends = stored.timeline.plan_for(period).terms.ends
    return min(period, Period.of(ends)) if ends else period


def _site(board: Dashboard):
    """The site `?site=` names, if the period bills it: its detail is shown (one site at a time)."""
    asked = request.args.get("site")
    return next((site for site in board.sites if site.site == asked), None)


def _kept(kind: str, board: Dashboard, fmt: Formats, site, make):
    """What `make()` returns, made once per computation of the figures, locale, day and site (kept with them)."""
    return cache().kept_with(board, (kind, fmt.locale, fmt.elapsed(board), site.site if site else None), make)


def rendered(board: Dashboard, fmt: Formats, site=None) -> Markup:
    """The page's figures."""
    return _kept("html", board, fmt, site, lambda: Markup(render_template(
        "portal/dashboard/_figures.html", board=board, view=view_of(board, fmt, site), fmt=fmt, detail=site)))


def board_json(board: Dashboard, fmt: Formats, site=None) -> str:
    return _kept("json", board, fmt, site, lambda: json.dumps(view_of(board, fmt, site)))
