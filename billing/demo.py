"""The demonstration database behind `billing demo`: the product in one command.

    summary = build_demo("sqlite:///billing-demo.db", contracts_dir, today=dt.date(2026, 11, 24))

It holds the example contracts (contracts/*.pricing), usage generated for every
day from each contract's start to yesterday (the same every time: a seeded
generator, stored through the ingestion service), issued invoices for every
finished period but the last (left for closing), the current period open, and
one user of every role with a printed password and TOTP secret (already
enrolled, so a newcomer types the secret into an authenticator and signs in).
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pyotp

from dsl.compile import Compiled, compile_file
from engine.periods import Period
from engine.primitives.activity_window import WindowParams
from engine.primitives.category_toggle import DisableParams
from metering.events import Event, EventData
from store import accounts, db, schema
from store.audit import Actor, record
from store.contracts import save_contract
from store.ingest import ACCEPTED, ingest_events
from store.issuing import record_issued_invoice

UTC = dt.timezone.utc
ENVIRONMENT = "test"
SOURCE = "platform/demo"
SEED = 20260401
CUSTOMER_USER_OF = "acme-health"
USERS = (   # email, role
    ("admin@demo.example", "admin"),
    ("deal.desk@demo.example", "deal_desk"),
    ("finance@demo.example", "finance"),
    ("acme.finance@demo.example", "customer_finance"),
)


@dataclass(frozen=True)
class DemoUser:
    email: str
    role: str
    customer: str | None
    password: str
    totp_secret: str


@dataclass(frozen=True)
class DemoContract:
    contract_id: str
    customer: str
    events: int
    issued: tuple[Period, ...]
    closed: Period | None          # finished, not invoiced yet
    open: Period


@dataclass(frozen=True)
class DemoSummary:
    contracts: tuple[DemoContract, ...]
    users: tuple[DemoUser, ...]


def build_demo(url: str, contracts_dir: Path, today: dt.date) -> DemoSummary:
    engine = db.connect(url)
    try:
        schema.upgrade(engine)
        sessions = db.session_factory(engine)
        who = Actor("cli:billing demo", ENVIRONMENT)
        compiled = [compile_file(str(path)) for path in sorted(contracts_dir.glob("*.pricing"))]
        with sessions.begin() as session:
            for contract in compiled:
                save_contract(session, contract, author="billing demo", comment="demonstration contract")
        contracts = tuple(_usage_and_invoices(sessions, contract, today) for contract in compiled)
        with sessions.begin() as session:
            users = tuple(_user(session, who, email, role) for email, role in USERS)
        return DemoSummary(contracts, users)
    finally:
        engine.dispose()


def _usage_and_invoices(sessions, contract: Compiled, today: dt.date) -> DemoContract:
    terms = contract.plan.terms
    events = list(generated_usage(contract, today))
    accepted = sum(outcome.status == ACCEPTED for _, _, outcome in ingest_events(sessions, enumerate(events)))
    current = Period.of(today)
    last = Period.of(terms.ends) if terms.ends else current
    finished = []
    period = Period.of(terms.starts)
    while period < current and period <= last:
        finished.append(period)
        period = period.shift(1)
    issued = tuple(finished[:-1])
    for period in issued:
        issued_at = min(dt.datetime.combine(period.shift(1).first_day + dt.timedelta(days=2), dt.time(9), UTC),
                        dt.datetime.now(UTC))
        with sessions.begin() as session:
            record_issued_invoice(session, terms.contract_id, period, now=issued_at)
    return DemoContract(terms.contract_id, terms.customer, accepted, issued, finished[-1] if finished else None,
                        current)


def generated_usage(contract: Compiled, today: dt.date):
    """A few events a day per active site and billed category, from the contract's start to yesterday
    (or its end)."""
    terms = contract.plan.terms
    zone = ZoneInfo(terms.timezone)
    rng = random.Random(f"{SEED}:{terms.contract_id}")
    number = 0
    day = terms.starts
    end = min(today, terms.ends + dt.timedelta(days=1)) if terms.ends else today
    while day < end:
        for site in contract.plan.sites:
            if not _active(site, day):
                continue
            disabled = {step.params.category for step in site.steps if isinstance(step.params, DisableParams)}
            for position, category in enumerate(terms.category_ids):
                if category in disabled:
                    continue
                for _ in range(rng.randint(1, 2) if day.weekday() < 5 else rng.randint(0, 1)):
                    number += 1
                    local = dt.datetime.combine(day, dt.time(rng.randint(7, 19), rng.randint(0, 59)), zone)
                    quantity = Decimal(rng.randint(10, 60) if position == 0 else rng.randint(5, 40))
                    yield Event("1.0", f"demo-{terms.contract_id}-{number:06d}", SOURCE, "unit.processed",
                                local.astimezone(UTC), EventData(terms.contract_id, site.site, category, quantity))
        day += dt.timedelta(days=1)


def _active(site, day: dt.date) -> bool:
    for step in site.steps:
        if isinstance(step.params, WindowParams):
            edge, date = step.params.edge, step.params.date
            if (edge == "from" and day < date) or (edge == "until" and day > date):
                return False
    return True


def _user(session, who: Actor, email: str, role: str) -> DemoUser:
    customer = CUSTOMER_USER_OF if role == accounts.CUSTOMER_ROLE else None
    user, password = accounts.add_user(session, who, email, role, customer=customer)
    user.totp_secret, user.enrolled = pyotp.random_base32(), True
    record(session, who, "mfa.enrol", accounts.user_resource(user), details={"method": "secret printed by billing demo"})
    return DemoUser(email, role, customer, password, user.totp_secret)
