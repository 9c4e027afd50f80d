"""Where the database is and how to talk to it.

The URL (any SQLAlchemy URL) is handed in by the caller: the command line and
the web app take it from the environment's settings (settings/environment.py),
so nothing here reads the process environment. SQLite (`sqlite:///billing.db`,
created on first use) is the embedded default; PostgreSQL
(`postgresql+psycopg://…`) is the production choice.

    engine = connect(url)               # DatabaseUnavailable: one clear sentence, no traceback
    sqlite_file(url)                    # "billing.db" for sqlite:///billing.db: a command that only reads checks it exists
    sessions = session_factory(engine)
    with sessions.begin() as session:   # one transaction
        ...

SQLite transactions begin with `BEGIN IMMEDIATE`: a writer takes the write lock
before it reads, so two processes never both read and then both try to write
(they queue on the lock for up to `SQLITE_BUSY_SECONDS` instead). Within one
process (the threads of `billing serve`), writers queue on a lock of the engine
first: a thread that waits there wakes the moment the transaction before it
ends, where SQLite's busy handler would sleep and retry (up to 100 ms a try).
Each SQLite connection also gets `decimal_add(a, b)`, exact addition of decimals
stored as text.
"""

from __future__ import annotations

import threading
from decimal import Decimal

from sqlalchemy import Table, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.orm import sessionmaker

from engine.money import EXACT
from storage.types import decimal_text

SQLITE_BUSY_SECONDS = 120
CONNECT_TIMEOUT_SECONDS = 10


class DatabaseUnavailable(Exception):
    """The database cannot be reached or used; the message says which one and why."""


def shown(url) -> str:
    """The URL as it may be printed: without its password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return str(url)


def create(url: str) -> Engine:
    """An engine for `url`; nothing is opened yet."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseUnavailable(f"{url!r} is not a database URL "
                                  "(for example sqlite:///billing.db or postgresql+psycopg://user@host/db)") from None
    try:
        if parsed.get_backend_name() == "sqlite":
            engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_SECONDS})
            _sqlite_transactions(engine)
        elif parsed.get_backend_name() == "postgresql":
            engine = create_engine(parsed, connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS})
        else:
            engine = create_engine(parsed)
    except Exception as exc:  # a missing driver, an unknown dialect: all a matter of the URL
        raise DatabaseUnavailable(f"cannot use the database {shown(parsed)}: {exc}") from None
    return engine


def _sqlite_transactions(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, record):
        dbapi_connection.isolation_level = None   # transactions are begun below, not by the driver
        dbapi_connection.create_function("decimal_add", 2, _decimal_add, deterministic=True)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_SECONDS * 1000}")
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode = WAL")   # readers do not wait for an ingest
        cursor.close()

    writers = threading.RLock()   # re-entrant: a thread's second connection waits in SQLite, as it did before

    @event.listens_for(engine, "begin")
    def on_begin(connection):
        writers.acquire()
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            writers.release()
            raise

    @event.listens_for(engine, "commit")
    @event.listens_for(engine, "rollback")
    def on_end(connection):
        # ConnectionEvents fire before the driver's COMMIT or ROLLBACK: the next thread's BEGIN IMMEDIATE may
        # then meet the lock for the instant of the commit, which SQLite's first 1 ms retry covers.
        writers.release()


def _decimal_add(a: str | None, b: str | None) -> str | None:
    """SQLite's missing exact addition, for decimals stored as text (storage/types.py ExactDecimal)."""
    if a is None or b is None:
        return None
    if a.isdigit() and b.isdigit():   # whole numbers, the common case: no Decimal needed
        return str(int(a) + int(b))
    return decimal_text(EXACT.add(Decimal(a), Decimal(b)))


def sqlite_file(url: str) -> str | None:
    """The file of a SQLite URL (as SQLite will open it, relative to the working directory), else None:
    another database, or SQLite in memory."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return parsed.database


def connect(url: str) -> Engine:
    """An engine whose database answered; DatabaseUnavailable otherwise."""
    engine = create(url)
    try:
        with engine.connect():
            pass
    except DBAPIError as exc:
        engine.dispose()
        raise DatabaseUnavailable(f"cannot reach the database {shown(engine.url)}: {reason(exc)}") from None
    return engine


def reason(exc: DBAPIError) -> str:
    """The driver's own message, on one line."""
    text = str(exc.orig) if exc.orig is not None else str(exc)
    return " ".join(text.split()) or type(exc.orig).__name__


def session_factory(engine: Engine) -> sessionmaker:
    return sessionmaker(engine, expire_on_commit=False)


def dialect_insert(connection, table: Table):
    """An INSERT that knows ON CONFLICT, for the two databases this project supports."""
    dialects = {"postgresql": postgresql, "sqlite": sqlite}
    if connection.dialect.name not in dialects:
        raise DatabaseUnavailable(f"the {connection.dialect.name} database is not supported: use PostgreSQL or SQLite")
    return dialects[connection.dialect.name].insert(table)
