"""The portal's frame: the home page, the environment's colours, navigation, error pages, page headers.

    GET /                  what the signed-in user's role may open
    GET /environment.css   the environment's banner colour (the CSP allows no inline style)
    GET /favicon.ico       the portal's icon (public: browsers ask for it on every page)

Navigation shows an area only to roles its route admits (admin_app/access.py),
so the menu and the access rules cannot disagree.

Money on every page is written ONE way, by the `money` template filter (and the `money`
template global for Python-side callers of render_template):

    {{ amount|money(currency) }}        ->  £7,802.00   (en_GB),  $7,802.00 (en_US)
    {{ change|money(currency, signed=true) }}  ->  +£250.00 (a difference: + when more, - when less)

It calls engine.money.display with the environment's locale (settings: `locale`), so never
write `GBP {{ x }}`, `{{ x }} {{ currency }}` or a bare `{{ x }}` for an amount. In a view,
use portal.money(amount, currency) for the same text. Amounts may be Decimal or decimal text;
None (no amount) renders as an empty string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    render_template,
    request,
    send_from_directory,
)
from flask_login import current_user
from flask_wtf.csrf import CSRFError

from admin_app import access, auditing
from admin_app.access import public, signed_in
from admin_app.database import db_session
from admin_app.refusals import refusal_text
from audit.log import DENIED
from engine.money import display
from ledger.models import Contract

blueprint = Blueprint("portal", __name__)
COLOUR = re.compile(r"#[0-9a-fA-F]{6}")


@dataclass(frozen=True)
class Area:
    endpoint: str
    title: str
    summary: str
    includes: tuple[str, ...] = ()   # other blueprints whose pages belong to this area (highlighted as it)

    def holds(self, endpoint: str | None) -> bool:
        """Whether the page of this endpoint is in this area (the navigation marks it as current)."""
        if not endpoint:
            return False
        blueprint = endpoint.split(".")[0]
        return blueprint == self.endpoint.split(".")[0] or blueprint in self.includes


AREAS = (
    Area("dashboard.index", "Dashboard", "The current period per customer and site: usage, minimums, caps, charges."),
    Area("contracts.index", "Contracts", "Edit contracts with live checks, preview, save versions, compare, backtest.",
         includes=("whatif",)),
    Area("invoices.index", "Invoices", "Issued invoices and their lines."),
    Area("usage.index", "Usage", "Usage per site, category and day, as the invoices bill it: download it as CSV."),
    Area("customers.index", "Customers", "Billing profiles (who is billed, how taxed) and credit grants."),
    Area("customers.own_grants", "Credits", "Your credit grants: what each invoice drew and what remains."),
    Area("reconciliation.index", "Reconciliation", "Each period's checks: rollups, dashboard and invoice agree."),
    Area("audit.index", "Audit log", "Who did what, when and from where; filter by actor, action, resource, date."),
    Area("admin.users", "Users", "Add users, change roles, disable, unlock, reset MFA."),
)


def init_app(app: Flask) -> None:
    app.context_processor(lambda: {"areas": areas_for_current_user(), "customer_name": customer_name})
    app.add_template_filter(refusal_text, "refusal_text")
    app.add_template_filter(money, "money")
    app.add_template_global(money, "money")

    @app.after_request
    def no_store(response):
        if response.mimetype == "text/html":   # pages may hold financial data: never kept by a browser or proxy
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.errorhandler(CSRFError)
    def csrf_refused(error):
        return error_page(400, "Form expired", "This form has expired or did not come from this site. "
                                               "Go back, reload the page and try again.")

    @app.errorhandler(403)
    def forbidden(error):
        if current_user.is_authenticated:
            auditing.record("access.denied", request.path, outcome=DENIED, details={"method": request.method})
            db_session().commit()
        return error_page(403, "Not allowed", "Your role does not give you access to this page.")

    @app.errorhandler(404)
    def not_found(error):
        return error_page(404, "Not found", "There is nothing here, or nothing you may see.")

    @app.errorhandler(405)
    def method_not_allowed(error):
        return error_page(405, "Not allowed", "This page does not take that kind of request.")


def environment_locale() -> str:
    """The locale money and dates are written in: the environment's (settings/environments/*.toml)."""
    env = current_app.config.get("BILLING_ENVIRONMENT")
    return getattr(env, "locale", None) or "en_GB"


def money(amount, currency: str, signed: bool = False) -> str:
    """An amount as people read it, in the environment's locale: `{{ amount|money(currency) }}`.
    `signed=true` for a difference: `+£250.00`, `-£12.00`, `£0.00`."""
    if amount is None or amount == "":
        return ""
    value = Decimal(str(amount))
    text = display(value, currency, environment_locale())
    return f"+{text}" if signed and text != display(Decimal(0), currency, environment_locale()) and value > 0 else text


def customer_name(customer_id: str | None) -> str:
    """A customer as people know it: the name its contract writes (`customer "Acme Health Ltd"`),
    or the id when no contract of that id is stored."""
    if not customer_id:
        return ""
    contract = db_session().get(Contract, customer_id)
    return contract.customer if contract is not None and contract.customer else customer_id


def allowed(endpoint: str, role: str | None) -> bool:
    rule = access.rule_for(endpoint)
    if rule is None:
        return False
    return rule.kind in (access.PUBLIC, access.SIGNED_IN) or role in rule.roles


def areas_for_current_user() -> tuple[Area, ...]:
    if not current_user.is_authenticated:
        return ()
    return tuple(area for area in AREAS
                 if area.endpoint in current_app.view_functions and allowed(area.endpoint, current_user.role))


def error_page(status: int, title: str, message: str):
    if request.path.startswith("/api/"):   # the event API answers in JSON, by its own rules
        return {"error": message}, status
    return render_template("portal/error.html", status=status, title=title, message=message), status


@blueprint.get("/")
@signed_in
def home():
    return render_template("portal/home.html")


@blueprint.get("/environment.css")
@public
def environment_css():
    colour = current_app.config["BILLING_ENVIRONMENT"].banner_colour
    colour = colour if COLOUR.fullmatch(colour) else "#52606d"
    return Response(f":root {{ --environment: {colour}; }}\n", mimetype="text/css",
                    headers={"Cache-Control": "public, max-age=300"})


@blueprint.get("/favicon.ico")
@public
def favicon():
    return send_from_directory(current_app.static_folder, "favicon.ico", mimetype="image/vnd.microsoft.icon",
                               max_age=86400)
