"""The finance dashboard: a customer's current period per site, near-real-time, from the invoice's own engine.

    GET /dashboard                       finance: every customer's current period; customer finance: their own
    GET /dashboard/<customer>            one customer's period (?period=YYYY-MM for another one)
    GET /dashboard/<customer>/data       the same figures as JSON, for the page's refresh every 15 s

The figures are store/dashboard.py's (the draft invoice computed now from the
rollups), kept in memory by store/dashboard_cache.py until the data under them
changes. The customer scope is a condition of the contract query
(`visible_contracts`): a customer_finance user asking for another customer gets
404, and the refusal is audited. Every page view is audited (`dashboard.view`,
`dashboard.list`); the refresh endpoint records `dashboard.refresh` once per
signed-in session, customer and period (in this process's memory), not once per
poll, so a page left open does not fill the audit log with one entry every 15 s.

The page's rendered figures are kept with the cached figures (per day, since the
page says how far into the period today is), so a request that finds the figures
unchanged renders only the frame around them.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from decimal import Decimal
from zoneinfo import ZoneInfo

from babel import Locale
from babel.numbers import format_decimal, format_percent
from flask import Blueprint, Flask, Response, abort, current_app, render_template, request
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy import Select, create_engine, event, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import sessionmaker

from admin_app import auditing
from admin_app.access import allow
from admin_app.database import db_session
from admin_app.portal import error_page
from admin_app.sessions import SignedIn
from audit.log import DENIED
from engine.evaluate import OutsideContract
from engine.money import format_quantity
from engine.periods import Period
from identity.accounts import CUSTOMER_ROLE
from ledger.contracts import StoredVersionInvalid, load_contract
from ledger.models import Contract
from review.dashboard import Dashboard
from review.dashboard_cache import DashboardCache
from storage.db import SQLITE_BUSY_SECONDS

blueprint = Blueprint("dashboard", __name__)
CACHE, RENDERED, REFRESHES = "billing.dashboard", "billing.dashboard.rendered", "billing.dashboard.refreshes"
VISIBLE, READER = "billing.dashboard.visible", "billing.dashboard.reader"
REFRESH_SECONDS = 15
MAX_REMEMBERED = 4096


def init_app(app: Flask) -> None:
    app.extensions[CACHE] = DashboardCache()
    app.extensions[RENDERED] = Remembered(256)
    app.extensions[REFRESHES] = Remembered(MAX_REMEMBERED)
    app.extensions[VISIBLE] = Remembered(MAX_REMEMBERED)
    app.extensions[READER] = sqlite_reader(app.config["DATABASE_URL"])


def sqlite_reader(url: str) -> sessionmaker | None:
    """SQLite: sessions that only read, in deferred transactions. The app's sessions begin `BEGIN IMMEDIATE`
    (store/db.py: a writer takes the lock before it reads), so checking and computing the figures there would
    queue every dashboard request, and every ingest batch, behind each other; a reader in WAL mode sees the
    last commit and blocks nobody. PostgreSQL: None, the request's session reads without locks."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_SECONDS})

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, record):
        dbapi_connection.isolation_level = None   # transactions are begun below, not by the driver
        dbapi_connection.execute("PRAGMA query_only = ON")

    @event.listens_for(engine, "begin")
    def on_begin(connection):
        connection.exec_driver_sql("BEGIN")       # deferred: one snapshot for the whole computation

    return sessionmaker(engine)


def figures_of(customer: str, period: Period) -> Dashboard:
    """The cached figures, checked against the database (store/dashboard_cache.py)."""
    readers = current_app.extensions[READER]
    if readers is None:
        return cache().get(db_session(), customer, period)
    with readers() as session:
        return cache().get(session, customer, period)


class Remembered:
    """A small thread-safe mapping that forgets its least recently used keys."""

    def __init__(self, size: int):
        self.size, self.items, self.lock = size, OrderedDict(), threading.Lock()

    def get(self, key):
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
            return self.items.get(key)

    def put(self, key, value) -> None:
        with self.lock:
            self.items[key] = value
            self.items.move_to_end(key)
            while len(self.items) > self.size:
                self.items.popitem(last=False)

    def add_new(self, key) -> bool:
        """True the first time `key` is seen (while remembered)."""
        with self.lock:
            if key in self.items:
                return False
            self.items[key] = True
            while len(self.items) > self.size:
                self.items.popitem(last=False)
            return True


def visible_contracts(user: SignedIn) -> Select:
    query = select(Contract)
    if user.role == CUSTOMER_ROLE:
        query = query.where(Contract.id == user.customer)
    return query


def resource(customer: str, period: Period | str) -> str:
    return f"dashboard:{customer}/{period}"


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
    return render_template("portal/dashboard/index.html", rows=rows, fmt=Formats.for_app())


@blueprint.get("/dashboard/<customer>")
@allow("finance", "customer_finance")
def show(customer: str):
    contract = _contract_or_404(customer, "dashboard.view")
    period, problem = _period(contract)
    if problem:
        return problem
    _end_reads()
    try:
        board = figures_of(contract.id, period)
    except (OutsideContract, StoredVersionInvalid) as exc:
        db_session().rollback()
        return error_page(400, "Period not available", str(exc))
    auditing.record("dashboard.view", resource(contract.id, period),
                    details={"total": str(board.figures.total), "currency": board.money.currency})
    db_session().commit()
    site = _site(board)
    figures = rendered(board, Formats.for_app(), site)
    return render_template("portal/dashboard/show.html", board=board, figures=figures, site=site,
                           refresh=REFRESH_SECONDS, default_period=request.args.get("period") is None)


@blueprint.get("/dashboard/<customer>/data")
@allow("finance", "customer_finance")
def data(customer: str):
    contract = _contract_or_404(customer, "dashboard.refresh")
    period, problem = _period(contract, as_json=True)
    if problem:
        return problem
    _end_reads()
    try:
        board = figures_of(contract.id, period)
    except (OutsideContract, StoredVersionInvalid) as exc:
        db_session().rollback()
        return {"error": str(exc)}, 400
    if current_app.extensions[REFRESHES].add_new((current_user.session_id, contract.id, period)):
        auditing.record("dashboard.refresh", resource(contract.id, period),
                        details={"recorded": "once per session, customer and period"})
        db_session().commit()
    body = board_json(board, Formats.for_app(), _site(board))
    return Response(body, mimetype="application/json", headers={"Cache-Control": "no-store"})


def _end_reads() -> None:
    """Ends the request's transaction before the figures are fetched and drawn: on SQLite every transaction of
    the app's sessions holds the write lock (store/db.py), and 20 clients polling would queue behind each other's
    page building. The audit entry that follows is a transaction of its own."""
    db_session().commit()


def cache() -> DashboardCache:
    return current_app.extensions[CACHE]


@dataclass(frozen=True)
class Visible:
    """A contract the current user may see: what the views need of it."""

    id: str
    starts: dt.date


def _contract_or_404(customer: str, action: str) -> Visible:
    """The contract, if the user's scope (a condition of the query) includes it; else the refusal is audited and
    the answer is 404. A contract is never deleted, so what the query answered for a scope (every customer, or one
    customer's users) is remembered in this process and a polling page costs no query for it."""
    scope = (current_user.customer if current_user.role == CUSTOMER_ROLE else "*", customer)
    known = current_app.extensions[VISIBLE].get(scope)
    if known is not None:
        return known
    contract = db_session().scalar(visible_contracts(current_user).where(Contract.id == customer))
    if contract is None:
        exists = db_session().get(Contract, customer) is not None
        auditing.record(action, resource(customer, request.args.get("period", "current")),
                        outcome=DENIED if exists else "failure",
                        details={"reason": "not visible to this user" if exists else "no such customer"})
        db_session().commit()
        abort(404)
    visible = Visible(contract.id, contract.starts)
    current_app.extensions[VISIBLE].put(scope, visible)
    return visible


def _period(contract: Visible, *, as_json: bool = False):
    """(the period asked for or the current one, None) or (None, the answer that says what is wrong)."""
    asked = request.args.get("period")
    if asked is None:
        try:
            return current_period(contract), None
        except StoredVersionInvalid as exc:
            message = str(exc)
    else:
        try:
            return Period.parse(asked), None
        except ValueError as exc:
            message = f"{exc}."
    if as_json:
        return None, ({"error": message}, 400)
    return None, error_page(400, "Period not available", message)


def current_period(contract: Contract | Visible) -> Period:
    """The period of today in the contract's time zone, within the periods the contract bills."""
    stored = load_contract(db_session(), contract.id)
    today = current_app.config["PORTAL_CLOCK"]().astimezone(stored.zone).date()
    period = max(Period.of(today), Period.of(contract.starts))
    ends = stored.timeline.plan_for(period).terms.ends
    return min(period, Period.of(ends)) if ends else period


class Formats:
    """Numbers as the environment's locale writes them; money with the contract's currency and minor unit."""

    def __init__(self, locale: str, now: dt.datetime):
        self.locale, self.now = locale, now

    @classmethod
    def for_app(cls) -> "Formats":
        env = current_app.config["BILLING_ENVIRONMENT"]
        return cls(env.locale, current_app.config["PORTAL_CLOCK"]())

    def money(self, board: Dashboard, amount: Decimal) -> str:
        pattern, locale = currency_pattern(self.locale)
        return pattern.apply(board.money.round(amount), locale, currency=board.money.currency, currency_digits=True)

    def quantity(self, amount: Decimal) -> str:
        return format_decimal(amount, locale=self.locale, decimal_quantization=False)

    def count(self, number: int) -> str:
        return format_decimal(number, locale=self.locale)

    def percent(self, fraction: Decimal) -> str:
        return format_percent(fraction, locale=self.locale, decimal_quantization=True)

    def elapsed(self, board: Dashboard) -> tuple[int, int]:
        """(days of the period gone by today, days in the period) in the contract's time zone."""
        period, today = board.period, self.now.astimezone(ZoneInfo(board.timezone)).date()
        if today < period.first_day:
            return 0, period.days
        if today > period.last_day:
            return period.days, period.days
        return today.day, period.days


@functools.lru_cache(maxsize=16)
def currency_pattern(locale: str):
    """The locale's standard currency pattern, parsed once (what babel's format_currency does on every call)."""
    parsed = Locale.parse(locale)
    return parsed.currency_formats["standard"], parsed


def _site(board: Dashboard):
    """The site `?site=` names, if the period bills it: its detail is shown (one site at a time)."""
    asked = request.args.get("site")
    return next((site for site in board.sites if site.site == asked), None)


def _memo(kind: str, board: Dashboard, fmt: Formats, site, make):
    """What `make()` returns, made once per computation of the figures, locale, day and site."""
    key = (kind, board.customer, board.period, fmt.locale, fmt.elapsed(board), site.site if site else None)
    remembered = current_app.extensions[RENDERED].get(key)
    if remembered is not None and remembered[0] is board:
        return remembered[1]
    made = make()
    current_app.extensions[RENDERED].put(key, (board, made))
    return made


def rendered(board: Dashboard, fmt: Formats, site=None) -> Markup:
    """The page's figures, rendered once per computation, locale, day and site shown."""
    def make():
        view = view_of(board, fmt, site)
        return Markup(render_template("portal/dashboard/_figures.html", board=board, view=view, fmt=fmt,
                                      detail=site))
    return _memo("html", board, fmt, site, make)


def board_json(board: Dashboard, fmt: Formats, site=None) -> str:
    return _memo("json", board, fmt, site, lambda: json.dumps(view_of(board, fmt, site)))


def view_of(board: Dashboard, fmt: Formats, site=None) -> dict:
    """board_view, and with a site its usage per category (`detail_usage`) and the texts of its detail under
    `display`, for both the page and the JSON (each site's usage lines for all sites would double the JSON every
    poll carries; the customer's usage per category is under `categories`)."""
    view = _memo("view", board, fmt, None, lambda: board_view(board, fmt))
    if site is None:
        return view
    amount = board.money.format
    usage = [{"category": u.category, "label": u.label, "quantity": format_quantity(u.quantity), "events": u.events,
              "amount": amount(u.amount), "billed": u.billed} for u in site.usage]
    return {**view, "display": {**view["display"], **site_display(board, site, fmt)}, "detail": site.site,
            "detail_usage": usage}


def site_display(board: Dashboard, site, fmt: Formats) -> dict[str, str]:
    """The formatted figures of one site's detail, by the keys its cells carry (`d:` …)."""
    display = {}
    for usage in site.usage:
        key = f"d:cat:{usage.category}"
        display[f"{key}:quantity"] = fmt.quantity(usage.quantity)
        display[f"{key}:events"] = fmt.count(usage.events)
        display[f"{key}:amount"] = fmt.money(board, usage.amount)
    for index, minimum in enumerate(site.minimums):
        key = f"d:min:{index}"
        if minimum.unit == "spend":
            display[f"{key}:commitment"] = fmt.money(board, minimum.commitment)
            display[f"{key}:counted"] = fmt.money(board, minimum.counted)
        else:
            display[f"{key}:commitment"] = f"{fmt.quantity(minimum.commitment)} units"
            display[f"{key}:counted"] = f"{fmt.quantity(minimum.counted)} units"
        display[f"{key}:shortfall"] = "met" if minimum.met else fmt.money(board, minimum.shortfall)
    for index, cap in enumerate(site.caps):
        key = f"d:cap:{index}"
        for name, value in (("limit", cap.limit), ("before", cap.counted_before), ("now", cap.counted_now),
                            ("reduction", -cap.reduction), ("remaining", cap.remaining)):
            display[f"{key}:{name}"] = fmt.money(board, value)
    return display


def board_view(board: Dashboard, fmt: Formats) -> dict:
    """The figures as JSON: exact amounts (the currency's minor unit) for programs, and under `display` and
    `bars` the page's formatted texts and bar fractions, by the keys its elements carry (dashboard.js)."""
    money = board.money
    amount = money.format
    display: dict[str, str] = {}
    bars: dict[str, float] = {}
    totals = board.totals
    for kind in ("usage", "minimum", "cap", "total"):
        display[kind] = fmt.money(board, totals[kind])
    display["events"] = fmt.count(board.events)
    display["unbilled"] = fmt.count(board.unbilled_events)
    day, days = fmt.elapsed(board)
    display["elapsed"] = f"day {day} of {days}"
    bars["elapsed"] = round(day / days, 4)
    display["computed_at"] = board.computed_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    categories = []
    largest = max((usage.amount for usage in board.categories), default=Decimal(0))
    for usage in board.categories:
        bars[f"cat:{usage.category}"] = _fraction(usage.amount, largest)
        display[f"cat:{usage.category}:amount"] = fmt.money(board, usage.amount)
        display[f"cat:{usage.category}:quantity"] = fmt.quantity(usage.quantity)
        display[f"cat:{usage.category}:events"] = fmt.count(usage.events)
        categories.append({"category": usage.category, "label": usage.label, "quantity": format_quantity(usage.quantity),
                           "events": usage.events, "amount": amount(usage.amount), "billed": usage.billed})
    sites = []
    for site in board.sites:
        prefix = f"site:{site.site}"
        display[f"{prefix}:charges"] = fmt.money(board, site.charges)
        display[f"{prefix}:events"] = fmt.count(site.events)
        for kind, value in site.kind_totals.items():
            display[f"{prefix}:{kind}"] = fmt.money(board, value)
        minimums = []
        for index, minimum in enumerate(site.minimums):
            key = f"{prefix}:min:{index}"
            bars[key] = float(round(minimum.fraction, 4))
            if minimum.unit == "spend":
                counted, commitment = fmt.money(board, minimum.counted), fmt.money(board, minimum.commitment)
            else:
                counted, commitment = fmt.quantity(minimum.counted), fmt.quantity(minimum.commitment) + " units"
            display[key] = f"{counted} of {commitment}"
            display[f"{key}:state"] = ("met" if minimum.met else f"short {fmt.money(board, minimum.shortfall)}")
            minimums.append({
                "categories": list(minimum.categories), "unit": minimum.unit,
                "commitment": _exact(minimum.commitment, minimum.unit, amount),
                "full_commitment": _exact(minimum.full_commitment, minimum.unit, amount),
                "prorated": minimum.prorated, "counted": _exact(minimum.counted, minimum.unit, amount),
                "shortfall": amount(minimum.shortfall), "met": minimum.met,
            })
        caps = []
        for index, cap in enumerate(site.caps):
            key = f"{prefix}:cap:{index}"
            bars[f"{key}:before"] = float(round(cap.fraction(cap.counted_before), 4))
            bars[f"{key}:now"] = float(round(cap.fraction(cap.counted_before + cap.counted_now), 4))
            display[key] = f"{fmt.money(board, cap.counted_before + cap.counted_now)} of {fmt.money(board, cap.limit)}"
            display[f"{key}:state"] = ("reached" if cap.reached else f"{fmt.money(board, cap.remaining)} left")
            caps.append({
                "categories": list(cap.categories), "limit": amount(cap.limit),
                "counted_before": amount(cap.counted_before), "counted_now": amount(cap.counted_now),
                "in_scope": amount(cap.in_scope), "reduction": amount(cap.reduction),
                "remaining": amount(cap.remaining), "reached": cap.reached,
            })
        sites.append({
            "site": site.site, "name": site.name, "charges": amount(site.charges), "events": site.events,
            "totals": {kind: amount(value) for kind, value in site.kind_totals.items()},
            "unbilled_events": site.unbilled_events, "minimums": minimums, "caps": caps,
        })
    history = []
    top = max((max(point.charges, point.usage) for point in board.history), default=Decimal(0))
    display["hist:top"], display["hist:mid"] = fmt.money(board, top), fmt.money(board, top / 2)
    for point in board.history:
        bars[f"hist:{point.period}:charges"] = _fraction(point.charges, top)
        bars[f"hist:{point.period}:usage"] = _fraction(point.usage, top)
        display[f"hist:{point.period}:charges"] = fmt.money(board, point.charges)
        display[f"hist:{point.period}:usage"] = fmt.money(board, point.usage)
        display[f"hist:{point.period}:events"] = fmt.count(point.events)
        history.append({"period": str(point.period), "source": point.source, "charges": amount(point.charges),
                        "usage": amount(point.usage), "events": point.events, "number": point.number})
    return {
        "customer": board.customer, "name": board.name, "period": str(board.period),
        "currency": money.currency, "status": "issued" if board.issued else "open",
        "invoice_number": board.issued.number if board.issued else None,
        "computed_at": board.computed_at.isoformat(), "elapsed_days": day, "period_days": days,
        "totals": {kind: amount(value) for kind, value in totals.items()},
        "events": board.events, "unbilled_events": board.unbilled_events,
        "categories": categories, "sites": sites, "history": history,
        "display": display, "bars": bars,
    }


def _fraction(part: Decimal, whole: Decimal) -> float:
    """For drawing only: part ÷ whole between 0 and 1, to four places."""
    if whole <= 0:
        return 0.0
    return float(round(min(Decimal(1), max(Decimal(0), part / whole)), 4))


def _exact(value: Decimal, unit: str, amount) -> str:
    return amount(value) if unit == "spend" else format_quantity(value)
