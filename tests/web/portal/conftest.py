"""Fixtures for the finance portal: the app on a fresh database (SQLite, and PostgreSQL when
BILLING_TEST_POSTGRES_URL is set, through tests/db's `db_url`) holding the two example contracts,
their usage, issued invoices and a draft, one user of every role and a customer user of another
customer; a clock the tests can move; clients signed in as any of them.

    portal_client                     # anonymous
    signed_in_client("finance")       # a client with a live session of that user (both sign-in steps done)
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

import pyotp
import pytest
from db.conftest import db_url, postgres_database  # noqa: F401  (tests/db/conftest.py: one database per test)

from admin_app import create_app
from audit.log import Actor
from dsl.compile import compile_file
from engine.periods import Period
from identity import accounts
from identity.accounts import User
from identity.signin import open_session
from ingest.pipeline import ingest_events
from ledger.contracts import save_contract
from ledger.issuing import record_issued_invoice
from ledger.models import Invoice
from metering.events import read_events
from storage import db, schema

CONTRACTS = Path(__file__).resolve().parents[3] / "contracts"
UTC = dt.timezone.utc
PASSWORD = "correct horse battery staple"
CUSTOMER, OTHER_CUSTOMER = "acme-health", "northwind"
# Who the matrix asks: every role, a customer user of the other customer, and nobody signed in.
PRINCIPALS = ("anonymous", "admin", "deal_desk", "finance", "customer_finance", "other_customer")
TEST_ACTOR = Actor("cli:test", "test")


@dataclass
class PortalClock:
    """The app's clock (PORTAL_CLOCK): still unless a test moves it."""

    now: dt.datetime

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta) -> None:
        self.now += dt.timedelta(**delta)


@dataclass(frozen=True)
class PortalUser:
    id: int
    email: str
    role: str
    customer: str | None
    secret: str

    def code(self, at: dt.datetime) -> str:
        return pyotp.TOTP(self.secret).at(at)


@pytest.fixture(autouse=True)
def quick_password_hashes(monkeypatch):
    """scrypt with n=2**10 instead of 2**15: the same code path, a hundredth of the time."""
    monkeypatch.setattr(accounts, "PASSWORD_METHOD", "scrypt:1024:8:1")


@pytest.fixture
def portal_sessions(db_url):
    engine = db.connect(db_url)
    schema.upgrade(engine)
    sessions = db.session_factory(engine)
    with sessions.begin() as session:
        for contract in ("acme-health", "northwind-cap"):
            save_contract(session, compile_file(str(CONTRACTS / f"{contract}.pricing")), author="test")
    for contract in ("acme-health", "northwind-cap"):
        for _ in ingest_events(sessions, read_events(str(CONTRACTS / f"{contract}.events.jsonl"))):
            pass
    with sessions.begin() as session:
        record_issued_invoice(session, CUSTOMER, Period(2026, 4))
        record_issued_invoice(session, CUSTOMER, Period(2026, 5))
        record_issued_invoice(session, OTHER_CUSTOMER, Period(2026, 2))
        issued = session.get(Invoice, 1)
        session.add(Invoice(customer=CUSTOMER, period=Period(2026, 6), status="draft", document=issued.document,
                            contract_sha=issued.contract_sha, cap_counts_before=[], cap_counts=[],
                            usage_hash=issued.usage_hash, created_at=dt.datetime.now(UTC)))
    yield sessions
    engine.dispose()


@pytest.fixture
def invoice_ids(portal_sessions) -> dict[str, int]:
    """customer, other customer (issued ones) and draft (the customer's draft) → invoice id."""
    with portal_sessions() as session:
        rows = {(row.customer, row.status, str(row.period)): row.id for row in session.query(Invoice)}
    return {"customer": rows[(CUSTOMER, "issued", "2026-04")], "other": rows[(OTHER_CUSTOMER, "issued", "2026-02")],
            "draft": rows[(CUSTOMER, "draft", "2026-06")]}


def add_portal_user(sessions, email: str, role: str, customer: str | None = None, *, enrolled: bool = True,
                    password: str = PASSWORD) -> PortalUser:
    with sessions.begin() as session:
        user, _ = accounts.add_user(session, TEST_ACTOR, email, role, customer=customer, password=password)
        secret = pyotp.random_base32()
        if enrolled:
            user.totp_secret, user.enrolled = secret, True
        return PortalUser(user.id, user.email, role, customer, secret)


@pytest.fixture
def users(portal_sessions) -> dict[str, PortalUser]:
    """One enrolled user per principal that can sign in (all but anonymous)."""
    made = {role: add_portal_user(portal_sessions, f"{role.replace('_', '.')}@example.com", role,
                                  CUSTOMER if role == "customer_finance" else None)
            for role in accounts.ROLES}
    made["other_customer"] = add_portal_user(portal_sessions, "northwind.finance@example.com", "customer_finance",
                                             OTHER_CUSTOMER)
    return made


@pytest.fixture
def portal_clock() -> PortalClock:
    return PortalClock(dt.datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def portal_app(db_url, portal_sessions, portal_clock, monkeypatch):
    monkeypatch.setenv("BILLING_SECRET_KEY", "test-only")
    app = create_app({"TESTING": True, "BILLING_ENV": "test", "DATABASE_URL": db_url, "PORTAL_CLOCK": portal_clock})
    yield app
    app.extensions["billing.engine"].dispose()


@pytest.fixture
def portal_client(portal_app):
    return portal_app.test_client()


@pytest.fixture
def signed_in_client(portal_app, portal_sessions, users, portal_clock):
    """A new client with a live session of `users[name]`, as if both sign-in steps were done."""

    def sign_in(name: str):
        client = portal_app.test_client()
        if name == "anonymous":
            return client
        with portal_sessions.begin() as session:
            token, _ = open_session(session, session.get(User, users[name].id), "127.0.0.1", portal_clock())
        with client.session_transaction() as cookie:
            cookie["_user_id"] = token
            cookie["_fresh"] = True
        return client

    return sign_in


def csrf_token(html: str) -> str:
    return re.search(r'name="csrf_token"(?: type="hidden")? value="([^"]+)"', html).group(1)


def form_post(client, path: str, data: dict, *, page: str | None = None, **kwargs):
    """POST `data` with the CSRF token of the form on `page` (default: `path`), as a browser would."""
    token = csrf_token(client.get(page or path).get_data(as_text=True))
    return client.post(path, data={**data, "csrf_token": token}, **kwargs)
