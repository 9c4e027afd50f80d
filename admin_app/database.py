"""The app's database: one engine per app (app.config["DATABASE_URL"]), one SQLAlchemy session per request.

    session = db_session()          # the request's session, closed (and rolled back if not committed) at its end
    session.commit()

The event API (admin_app/api.py) finds the same engine and session factory under
the same app.extensions keys.
"""

from __future__ import annotations

from flask import Flask, current_app, g
from sqlalchemy.orm import Session

from storage import db

ENGINE, SESSIONS = "billing.engine", "billing.sessions"


def init_app(app: Flask) -> None:
    if SESSIONS not in app.extensions:
        app.extensions[ENGINE] = db.create(app.config["DATABASE_URL"])
        app.extensions[SESSIONS] = db.session_factory(app.extensions[ENGINE])
    app.teardown_appcontext(_close)


def db_session() -> Session:
    if "db_session" not in g:
        g.db_session = current_app.extensions[SESSIONS]()
    return g.db_session


def _close(_exception: BaseException | None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()
