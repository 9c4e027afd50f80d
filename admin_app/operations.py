"""What an operator's tools ask of the app: health, readiness, metrics, and one log line per request.

    GET /healthz   200 {"status": "ok"}: the process answers (it touches nothing else)
    GET /readyz    200 {"status": "ready", "schema": "0012"}: the database answers and its schema is the
                   migrations' head; else 503 {"status": "not ready", "reason": "…"}
    GET /metrics   the Prometheus text format, when the environment names `metrics_path` (test); production
                   names a `metrics_port` instead, which `billing serve` serves on 127.0.0.1 (billing/serving.py)

The probes are public, read no user session, set no cookie and record nothing
in the audit log: a load balancer asks them every few seconds. Every request
gets a request id (the client's X-Request-ID when it sent a sane one), echoed
in the answer and carried by every log line written while serving it
(telemetry.logs.REQUEST_ID), and is counted in billing_http_request_seconds by
its URL rule (a bounded set, unlike raw paths). An error's traceback goes to the
log, the answer says only that something failed.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
import uuid

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import DBAPIError

from admin_app import database
from admin_app.access import public
from review.open_periods import open_period_ages
from storage import schema
from telemetry.logs import REQUEST_ID, stamp_request_id
from telemetry.metrics import HTTP_SECONDS, app_registry

blueprint = Blueprint("operations", __name__)
log = logging.getLogger("billing.http")
PROBES = frozenset({"operations.healthz", "operations.readyz", "metrics"})
REQUEST_ID_SHAPE = re.compile(r"[A-Za-z0-9._:-]{1,128}")
API_KEY_PREFIX = re.compile(r"Bearer\s+(bk_[0-9a-f]{12})_", re.IGNORECASE)   # identity/apikeys.py: bk_PREFIX_SECRET
METRICS, SCHEMA_HEAD = "billing.metrics", "billing.schema_head"
UTC = dt.timezone.utc


def init_app(app: Flask) -> None:
    app.extensions[SCHEMA_HEAD] = schema.head()
    # SQLite: a reader's session (database.sqlite_readers), so that a scrape never takes the writers' lock
    sessions = app.extensions[database.READERS] or app.extensions[database.SESSIONS]

    def ages():
        with sessions() as session:
            return open_period_ages(session, dt.datetime.now(UTC))

    app.extensions[METRICS] = app_registry(ages)
    path = app.config["BILLING_ENVIRONMENT"].metrics_path
    if path:
        app.add_url_rule(path, "metrics", public(metrics))   # on the app, not the blueprint: only this app has it
    app.session_interface = _without_cookie_for_probes(app.session_interface)
    for logger in (log, app.logger):   # the request lines, and Flask's lines for an error with its traceback
        if stamp_request_id not in logger.filters:
            logger.addFilter(stamp_request_id)
    app.before_request_funcs.setdefault(None, []).insert(0, _start)   # before access checks, which may refuse
    app.after_request(_finish)
    app.teardown_request(_forget)


@blueprint.get("/healthz")
@public
def healthz():
    return jsonify(status="ok")


@blueprint.get("/readyz")
@public
def readyz():
    head = current_app.extensions[SCHEMA_HEAD]
    try:
        with current_app.extensions[database.ENGINE].connect() as connection:
            revision = schema.current(connection)
    except DBAPIError:
        log.warning("readiness: the database does not answer", exc_info=True)
        return jsonify(status="not ready", reason="the database does not answer"), 503
    if revision != head:
        reason = "the database has no billing schema" if revision is None else \
            f"the database's schema is at revision {revision}, this version needs {head}: run `billing db upgrade`"
        return jsonify(status="not ready", reason=reason), 503
    return jsonify(status="ready", schema=revision)


def metrics():
    return Response(generate_latest(current_app.extensions[METRICS]), mimetype=CONTENT_TYPE_LATEST)


def _start() -> None:
    g.started = time.perf_counter()
    presented = request.headers.get("X-Request-ID", "")
    g.request_id = presented if REQUEST_ID_SHAPE.fullmatch(presented) else uuid.uuid4().hex
    g.request_id_token = REQUEST_ID.set(g.request_id)


def _finish(response: Response) -> Response:
    seconds = time.perf_counter() - g.get("started", time.perf_counter())
    route = request.url_rule.rule if request.url_rule is not None else "unmatched"
    HTTP_SECONDS.labels(route, request.method, str(response.status_code)).observe(seconds)
    response.headers["X-Request-ID"] = g.get("request_id", "")
    log.info("request", extra={"route": route, "method": request.method, "status": response.status_code,
                               "latency_ms": round(seconds * 1000, 3), "actor": _actor(), "ip": request.remote_addr})
    return response


def _forget(_exception: BaseException | None) -> None:
    token = g.pop("request_id_token", None)
    if token is not None:
        REQUEST_ID.reset(token)


def _actor() -> str:
    """Who was served, as far as the request found out: the signed-in user's email (from what flask-login
    loaded already: never loaded here, a probe must not touch the user sessions), the public prefix of the API
    key presented (whether or not it was valid: the status says), else anonymous."""
    user = g.get("_login_user")
    if getattr(user, "email", None):
        return user.email
    presented = API_KEY_PREFIX.match(request.headers.get("Authorization", ""))
    return f"apikey:{presented.group(1)}" if presented else "anonymous"


def _without_cookie_for_probes(interface):
    class WithoutCookieForProbes(type(interface)):
        def should_set_cookie(self, app, session) -> bool:
            return request.endpoint not in PROBES and super().should_set_cookie(app, session)

    return WithoutCookieForProbes()
