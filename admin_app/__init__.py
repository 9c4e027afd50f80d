"""The web app: event API and finance portal on one Flask app (application factory).

    app = create_app({"TESTING": True, "DATABASE_URL": "sqlite:///…"})

Holds the HTTP layer only: each view calls a service that the command line calls
too, and knows nothing of how a figure is computed or stored. The environment is
read here, once (settings/environment.py), and kept in app.config; the database is
installed before any area (database.py), so the order of BLUEPRINTS does not
matter. Each route declares who may reach it (access.py); anything undeclared is
refused. Must not import `billing` (the command line sits above it).

The areas (BLUEPRINTS), one blueprint each:
    auth.py            sign-in, TOTP, sign-out, password change (with sessions.py, forms.py)
    portal.py          the frame: home page, environment colours, error pages
    invoices.py        invoices: list, view, approve, issue, void, credit
    contracts.py       the contract editor, plan and versions
    whatif.py          what-if pricing of a draft contract
    dashboard.py       the finance dashboard (its view model in dashboard_view.py)
    reconciliation.py  reconciliation reports and the events behind them
    admin.py           user administration
    audit_view.py      the audit log viewer
    api.py             the event API (its OpenAPI document in openapi.py)
    operations.py      health and readiness probes, metrics, a JSON log line per request
    usage.py           usage exports: a customer's usage per site, category and local day, as CSV
    customers.py       billing profiles (with their history) and credit grants (their ledger)
and what they share: database.py (engines, sessions), access.py, auditing.py (the
audit log's web side), listing.py (a list page: its sort, page and links, with
templates/portal/_pager.html), security.py (cookies, secret key, headers),
refusals.py (a refusal as a page says it).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

# The areas, each a module of this package with a `blueprint` and optionally `init_app(app)`.
# Named, not imported here: importing admin_app loads neither Flask nor every page until create_app runs.
BLUEPRINTS: tuple[str, ...] = (
    "auth", "portal", "invoices", "contracts", "whatif", "dashboard", "reconciliation", "admin", "audit_view", "api",
    "operations", "customers", "usage",
)


def create_app(test_config: dict | None = None) -> Flask:
    from flask import Flask

    from admin_app import access, database, security
    from engine.lines import totals_titles
    from invoicing.pdf import TEMPLATES
    from settings import environment

    env = environment.load((test_config or {}).get("BILLING_ENV"))
    app = Flask(__name__, template_folder=str(TEMPLATES))
    app.config.update(
        BILLING_ENVIRONMENT=env,
        DATABASE_URL=env.database_url,
        MAX_CONTENT_LENGTH=5 * 1024 * 1024,
    )
    security.configure(app, env)
    if test_config:
        app.config.update(test_config)
    database.init_app(app)
    app.before_request(access.check_access)
    for module in (importlib.import_module(f"{__name__}.{name}") for name in BLUEPRINTS):
        if hasattr(module, "init_app"):
            module.init_app(app)
        app.register_blueprint(module.blueprint)

    @app.context_processor
    def environment_banner():
        return {"environment": app.config["BILLING_ENVIRONMENT"]}

    # The invoice's `totals` entries of lines with their titles, in order: pages list kinds from the registry.
    app.jinja_env.globals["totals_titles"] = totals_titles

    return app
