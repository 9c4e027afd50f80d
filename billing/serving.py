"""What `billing serve` checks before it serves, and the metrics listener it starts beside the app.

    problems = refusals(app, engine)   # a production environment on a test secret or another's database
    start_metrics(app)                 # production: metrics on metrics_host:metrics_port, off the public listener

An environment's database is its own: every audit entry and invoice counter
names the environment that wrote it, so a database holding another
environment's is refused (this is how us-prod started on the test database is
caught, whatever its URL looks like).
"""

from __future__ import annotations

from flask import Flask
from prometheus_client import start_http_server
from sqlalchemy import select
from sqlalchemy.engine import Engine

from admin_app.operations import METRICS
from billing.contracts import UsageError
from audit.log import AuditEntry
from lifecycle.models import InvoiceCounter
from settings.environment import serving_problems


def refusals(app: Flask, engine: Engine) -> list[str]:
    env = app.config["BILLING_ENVIRONMENT"]
    problems = serving_problems(env)
    with engine.connect() as connection:
        others = {connection.scalar(select(table.environment).where(table.environment != env.name).limit(1))
                  for table in (AuditEntry, InvoiceCounter)} - {None}
    if others:
        problems.append(f"the database holds the records of environment {', '.join(sorted(others))}: "
                        f"{env.name} needs its own (BILLING_DATABASE_URL)")
    return problems


def start_metrics(app: Flask) -> str | None:
    """Serves the metrics on the environment's metrics port, in a thread of this process; where, or None."""
    env = app.config["BILLING_ENVIRONMENT"]
    if not env.metrics_port:
        return None
    try:
        start_http_server(env.metrics_port, env.metrics_host, registry=app.extensions[METRICS])
    except OSError as exc:   # the port is taken (two environments on one host need BILLING_METRICS_PORT)
        raise UsageError(f"cannot serve the metrics on {env.metrics_host}:{env.metrics_port}: "
                         f"{exc.strerror or exc}") from None
    return f"http://{env.metrics_host}:{env.metrics_port}/metrics"
