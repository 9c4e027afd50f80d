"""The app's database, installed by create_app before any area: the only place the app makes engines.

    session = db_session()          # the request's session, closed (and rolled back if not committed) at its end
    session.commit()
    with reading() as session:      # a long read that must not hold SQLite's write lock (the dashboard)
        ...

One engine per app (app.config["DATABASE_URL"], from the environment's settings),
one SQLAlchemy session per request; the event API (admin_app/api.py) takes its
own transactions from the same session factory (`session_factory()`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask, current_app, g
from sqlalchemy import create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from audit.anchors import Anchoring, watch
from storage import db

ENGINE, SESSIONS, READERS = "billing.engine", "billing.sessions", "billing.readers"


def init_app(app: Flask) -> None:
    url = app.config["DATABASE_URL"]
    app.extensions[ENGINE] = db.create(url)
    app.extensions[SESSIONS] = db.session_factory(app.extensions[ENGINE])
    env = app.config.get("BILLING_ENVIRONMENT")   # none in an app a test assembles from parts
    anchoring = env and Anchoring.configured(env.audit_anchor_file, env.audit_key, env.name)
    if anchoring:   # the audit chain's head, signed outside the database at each close and issue
        watch(app.extensions[SESSIONS], anchoring)
    app.extensions[READERS] = sqlite_readers(url)
    app.teardown_appcontext(_close)


def session_factory() -> sessionmaker:
    """The app's session factory, for a view that runs transactions of its own."""
    return current_app.extensions[SESSIONS]


def db_session() -> Session:
    if "db_session" not in g:
        g.db_session = session_factory()()
    return g.db_session


@contextmanager
def reading() -> Iterator[Session]:
    """A session for a read that may take a while: on SQLite a reader's own (see `sqlite_readers`), elsewhere
    the request's."""
    readers = current_app.extensions[READERS]
    if readers is None:
        yield db_session()
        return
    with readers() as session:
        yield session


def sqlite_readers(url: str) -> sessionmaker | None:
    """SQLite: sessions that only read, in deferred transactions. The app's sessions begin `BEGIN IMMEDIATE`
    (storage/db.py: a writer takes the lock before it reads), so computing the dashboard's figures there would
    queue every dashboard request, and every ingest batch, behind each other; a reader in WAL mode sees the
    last commit and blocks nobody. PostgreSQL: None, the request's session reads without locks."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    engine = create_engine(parsed, connect_args={"timeout": db.SQLITE_BUSY_SECONDS})

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, record):
        dbapi_connection.isolation_level = None   # transactions are begun below, not by the driver
        dbapi_connection.execute("PRAGMA query_only = ON")

    @event.listens_for(engine, "begin")
    def on_begin(connection):
        connection.exec_driver_sql("BEGIN")       # deferred: one snapshot for the whole computation

    return sessionmaker(engine)


def _close(_exception: BaseException | None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()
