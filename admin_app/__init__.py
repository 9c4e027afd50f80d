"""The web app: event API and finance portal on one Flask app (application factory).

    app = create_app({"TESTING": True, "DATABASE_URL": "sqlite:///…"})

Blueprints, one per area, are listed in BLUEPRINTS; each route declares who may
reach it (admin_app/access.py), and anything undeclared is refused.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

# The areas, each a module of this package with a `blueprint` and optionally `init_app(app)`, installed in this
# order: auth comes first, it installs the database, the sessions and CSRF protection the others rely on.
# Named, not imported here: the command line reads settings.environment without loading Flask and every page.
BLUEPRINTS: tuple[str, ...] = (
    "auth", "portal", "invoices", "contracts", "whatif", "dashboard", "reconciliation", "admin", "audit_view", "api",
)


def create_app(test_config: dict | None = None) -> Flask:
    from flask import Flask

    from admin_app import access, security
    from settings import environment

    env = environment.load((test_config or {}).get("BILLING_ENV"))
    app = Flask(__name__, template_folder=_templates_folder())
    app.config.update(
        BILLING_ENVIRONMENT=env,
        DATABASE_URL=env.database_url,
        MAX_CONTENT_LENGTH=5 * 1024 * 1024,
    )
    security.configure(app, env)
    if test_config:
        app.config.update(test_config)
    app.before_request(access.check_access)
    for module in (importlib.import_module(f"{__name__}.{name}") for name in BLUEPRINTS):
        if hasattr(module, "init_app"):
            module.init_app(app)
        app.register_blueprint(module.blueprint)

    @app.context_processor
    def environment_banner():
        return {"environment": app.config["BILLING_ENVIRONMENT"]}

    return app


def _templates_folder() -> str:
    """The repository's templates/ (a package, so an installed app finds it too)."""
    import templates

    return str(Path(templates.__file__).parent)
