"""The demonstration database behind `billing demo`: the product in one command.

    summary = build_demo("sqlite:///billing-demo.db", contracts_dir, today=dt.date(2026, 11, 24))

It holds the example contracts (contracts/*.pricing), usage generated for every
day from each contract's start to yesterday (the same every time: a seeded
generator, stored through the ingestion service), and invoices made the way
finance makes them (store/lifecycle.py): every finished period but the last
closed, approved and issued, with its number and stored PDF; the last finished
period a draft (the first contract's approved, waiting to be issued); the
current period a draft of the month so far. The first contract gets a second
version, an amendment in effect from the first period not yet issued, so its
history and comparison have something to show. Each customer has a complete
billing profile, saved the hour after its contract is signed: acme-health a UK
customer with VAT (GBP), globex an EU business under the reverse charge (EUR, its
VAT number), northwind a US customer with no tax (USD); northwind has a credit
grant partly drawn by its last issued invoice, acme-health one its approved
invoice draws. One user of every role is
already enrolled: their passwords, TOTP secrets and recovery codes are printed,
with an API key for the event API. Everything is recorded in the audit log as
done by `cli:billing demo`, at the moment the demonstration says it happened.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pyotp

from audit.log import Actor, contract_resource, record
from billing.refusals import refusal_text
from dsl.compile import Compiled, compile_file, compile_source
from engine.periods import Period
from engine.refusal import Refused
from identity import accounts
from identity.apikeys import create_api_key
from identity.signin import new_recovery_codes
from ingest.pipeline import ACCEPTED, ingest_events
from ledger.contracts import save_contract
from ledger.grants import add_grant
from ledger.profiles import save_profile
from lifecycle import transitions as lifecycle
from metering.events import Event, EventData
from review.reconcile import Threshold
from rules.activity_window import WindowParams
from rules.category_toggle import DisableParams
from settings.environment import load as load_environment
from storage import db, schema

UTC = dt.timezone.utc
ENVIRONMENT = "test"
AUTHOR = "billing demo"
SOURCE = "platform/demo"
API_SOURCE = "platform/eu-west"     # the source the printed API key may post for
SEED = 20260401
CUSTOMER_USER_OF = "acme-health"
AMENDED_CONTRACT = "acme-health"
AMENDMENT = ("category standard  \"Standard processing\"  rate 0.85",
             "category standard  \"Standard processing\"  rate 0.80   # amendment 1: volume discount")
AMENDMENT_COMMENT = "amendment 1: standard processing at 0.80 (volume discount)"
# Who each contract bills and how it is taxed, saved the hour after it is signed: a UK customer with VAT, an EU
# business under the reverse charge (its VAT number), a US customer with no tax.
PROFILES = {
    "acme-health": {"name": "Acme Health Ltd", "address": ["1 Harley Street", "London", "W1G 9QD", "United Kingdom"],
                    "tax_id": "GB123456789", "tax_treatment": "uk_standard", "purchase_order": "PO-7781",
                    "terms_days": 30},
    "globex": {"name": "Globex Research GmbH", "address": ["Friedrichstraße 100", "10117 Berlin", "Germany"],
               "tax_id": "DE811907980", "tax_treatment": "reverse_charge", "terms_days": 45},
    "northwind": {"name": "Northwind Imaging Inc.",
                  "address": ["500 Market Street", "San Francisco, CA 94105", "United States"],
                  "tax_treatment": "none", "purchase_order": "NW-2026-114"},
}
# Credits finance granted (customer, from period, granted on, terms): northwind's is partly drawn by its last
# issued invoice (that invoice's net is then 0), acme-health's by its approved invoice, not yet issued.
GRANTS = (
    ("northwind", "2026-09", dt.date(2026, 9, 21),
     {"amount": Decimal("1200.00"), "expires": dt.date(2027, 3, 31), "reason": "service credit: scanner outage"}),
    ("acme-health", "2026-10", dt.date(2026, 10, 15),
     {"amount": Decimal("250.00"), "expires": None, "reason": "goodwill credit: late reports in September"}),
)
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
    recovery_codes: tuple[str, ...]


@dataclass(frozen=True)
class DemoInvoice:
    period: Period
    status: str                    # issued | approved | draft
    number: str | None = None
    refusal: str | None = None     # why a step the demonstration meant to take was refused


@dataclass(frozen=True)
class DemoContract:
    contract_id: str
    customer: str
    events: int
    invoices: tuple[DemoInvoice, ...]
    amendment: Period | None = None     # the period the second version takes effect

    def with_status(self, status: str) -> tuple[DemoInvoice, ...]:
        return tuple(invoice for invoice in self.invoices if invoice.status == status)


@dataclass(frozen=True)
class DemoApiKey:
    customer: str
    source: str
    key: str


@dataclass(frozen=True)
class DemoSummary:
    contracts: tuple[DemoContract, ...]
    users: tuple[DemoUser, ...]
    api_key: DemoApiKey


def build_demo(url: str, contracts_dir: Path, today: dt.date) -> DemoSummary:
    environment = load_environment(ENVIRONMENT)
    engine = db.connect(url)
    try:
        schema.upgrade(engine)
        sessions = db.session_factory(engine)
        who = Actor(f"cli:{AUTHOR}", ENVIRONMENT)
        compiled = [compile_file(str(path)) for path in sorted(contracts_dir.glob("*.pricing"))]
        for contract in sorted(compiled, key=_signed):
            _save(sessions, who, contract, "demonstration contract", None, _signed(contract))
        events = {contract.plan.terms.contract_id: _ingest(sessions, contract, today) for contract in compiled}
        steps = sorted((step for contract in compiled for step in _steps(contract, today)), key=lambda s: s.at)
        refusals = {}
        for step in steps:
            try:
                with sessions.begin() as session:
                    step.run(session, who, environment)
            except Refused as refused:
                refusals.setdefault((step.customer, step.period), refusal_text(refused.refusal))
        with sessions() as session:
            contracts = tuple(_outcome(session, contract, events, steps, refusals) for contract in compiled)
        with sessions.begin() as session:
            users = tuple(_user(session, who, email, role) for email, role in USERS)
            issued = create_api_key(session, CUSTOMER_USER_OF, API_SOURCE)
            record(session, who, "apikey.create", f"apikey:{issued.row.prefix}",
                   details={"customer": CUSTOMER_USER_OF, "source": API_SOURCE})
        return DemoSummary(contracts, users, DemoApiKey(CUSTOMER_USER_OF, API_SOURCE, issued.key))
    finally:
        engine.dispose()


@dataclass(frozen=True)
class Step:
    """One thing finance did, at the moment the demonstration says it was done."""

    at: dt.datetime
    customer: str
    period: Period
    action: str                    # a key of STEPS: close | approve | issue | amend | profile | grant
    contract: Compiled | None = None

    details: dict | None = None    # a profile's fields, a grant's terms

    def run(self, session, who: Actor, environment) -> None:
        STEPS[self.action](self, session, who, environment)


def _close(step: Step, session, who: Actor, environment) -> None:
    """As `billing close` does: the draft, then its reconciliation, stored (lifecycle's close_and_reconcile)."""
    lifecycle.close_and_reconcile(session, step.customer, step.period, who, threshold=Threshold.of(environment),
                                  seller=environment.seller, now=step.at)


def _approve(step: Step, session, who: Actor, environment) -> None:
    lifecycle.approve(session, lifecycle.Selector(step.customer, step.period), who,
                      threshold=Threshold.of(environment), seller=environment.seller, now=step.at)


def _issue(step: Step, session, who: Actor, environment) -> None:
    lifecycle.issue(session, lifecycle.Selector(step.customer, step.period), who, threshold=Threshold.of(environment),
                    prefix=environment.invoice_prefix, locale=environment.locale, seller=environment.seller,
                    now=step.at)


def _amend(step: Step, session, who: Actor, environment) -> None:
    _record_save(session, who, step.contract, AMENDMENT_COMMENT, step.period, step.at)


def _profile(step: Step, session, who: Actor, environment) -> None:
    """As `billing customer set` does (and the portal's Customers page): audited as customer.profile."""
    save_profile(session, step.customer, who, dict(step.details), treatments=environment.tax_treatments, now=step.at)


def _grant(step: Step, session, who: Actor, environment) -> None:
    """As `billing grant add` does: audited as grant.add."""
    terms = step.details
    add_grant(session, step.customer, terms["amount"], who, from_period=step.period, expires=terms["expires"],
              reason=terms["reason"], now=step.at)


STEPS = {"close": _close, "approve": _approve, "issue": _issue, "amend": _amend, "profile": _profile,
         "grant": _grant}


def _steps(contract: Compiled, today: dt.date) -> list[Step]:
    """Every finished period but the last closed two days after it ends, approved the day after, issued the
    day after that; the first contract amended from the first period not issued, whose draft it approves;
    the other open periods closed as drafts (the current one as of today)."""
    terms = contract.plan.terms
    current = Period.of(today)
    last = Period.of(terms.ends) if terms.ends else current
    finished = []
    period = Period.of(terms.starts)
    while period < current and period <= last:
        finished.append(period)
        period = period.shift(1)
    steps = [Step(_later(_signed(contract), hours=1), terms.contract_id, Period.of(terms.starts), "profile",
                  details=PROFILES[terms.contract_id])] if terms.contract_id in PROFILES else []
    steps += [Step(_moment(granted), terms.contract_id, Period.parse(period), "grant", details=grant)
              for customer, period, granted, grant in GRANTS if customer == terms.contract_id and granted < today]
    for period in finished[:-1]:
        closed_at = _moment(period.shift(1).first_day + dt.timedelta(days=2))
        steps += [Step(closed_at, terms.contract_id, period, "close"),
                  Step(_later(closed_at, days=1), terms.contract_id, period, "approve"),
                  Step(_later(closed_at, days=2), terms.contract_id, period, "issue")]
    open_periods = finished[-1:] + ([current] if current <= last else [])
    amended = terms.contract_id == AMENDED_CONTRACT and bool(open_periods)
    if amended:
        first = open_periods[0]
        steps.append(Step(_moment(first.first_day), terms.contract_id, first, "amend", _amended(contract)))
    for position, period in enumerate(open_periods):
        closed_at = _moment(min(period.shift(1).first_day + dt.timedelta(days=2), today))
        steps.append(Step(closed_at, terms.contract_id, period, "close"))
        if amended and position == 0 and period < current:
            steps.append(Step(_later(closed_at, hours=1), terms.contract_id, period, "approve"))
    return steps


def _ingest(sessions, contract: Compiled, today: dt.date) -> int:
    events = enumerate(generated_usage(contract, today))
    return sum(outcome.status == ACCEPTED for _, _, outcome in ingest_events(sessions, events))


def _outcome(session, contract: Compiled, events: dict, steps: list[Step], refusals: dict) -> DemoContract:
    terms = contract.plan.terms
    periods = sorted({step.period for step in steps if step.customer == terms.contract_id and step.action == "close"})
    invoices = []
    for period in periods:
        row = lifecycle.find(session, lifecycle.Selector(terms.contract_id, period))
        status = lifecycle.status_of(session, row) if row is not None else "none"
        invoices.append(DemoInvoice(period, status, row.number if row is not None else None,
                                    refusals.get((terms.contract_id, period))))
    amendment = next((step.period for step in steps if step.customer == terms.contract_id and step.action == "amend"),
                     None)
    return DemoContract(terms.contract_id, terms.customer, events[terms.contract_id], tuple(invoices), amendment)


def _save(sessions, who: Actor, contract: Compiled, comment: str, effective: Period | None,
          at: dt.datetime) -> None:
    with sessions.begin() as session:
        _record_save(session, who, contract, comment, effective, at)


def _record_save(session, who: Actor, contract: Compiled, comment: str, effective: Period | None,
                 at: dt.datetime) -> None:
    saved = save_contract(session, contract, effective=effective, comment=comment, author=AUTHOR, now=at)
    record(session, who, "contract.save", contract_resource(saved.contract_id, saved.sha256),
           details={"result": saved.outcome, "in_effect_from": str(saved.effective), "comment": comment}, at=at)


def _amended(contract: Compiled) -> Compiled:
    before, after = AMENDMENT
    if before not in contract.text:
        raise ValueError(f"{contract.filename}: the demonstration's amendment expects `{before}` in it")
    amended = compile_source(contract.text.replace(before, after, 1).encode("utf-8"), contract.filename)
    if not amended.ok:
        raise ValueError(f"{contract.filename}: the demonstration's amendment does not compile")
    return amended


def _signed(contract: Compiled) -> dt.datetime:
    """The first version is saved a fortnight before the contract starts."""
    return _moment(contract.plan.terms.starts - dt.timedelta(days=14))


def _moment(day: dt.date) -> dt.datetime:
    """09:00 UTC that day, but never later than now: the demonstration does not record the future."""
    return min(dt.datetime.combine(day, dt.time(9), UTC), dt.datetime.now(UTC))


def _later(moment: dt.datetime, **delta) -> dt.datetime:
    return min(moment + dt.timedelta(**delta), dt.datetime.now(UTC))


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
    """Added and enrolled as if they had scanned the QR code: the secret and recovery codes are printed."""
    customer = CUSTOMER_USER_OF if role == accounts.CUSTOMER_ROLE else None
    user, password = accounts.add_user(session, who, email, role, customer=customer)
    user.totp_secret, user.enrolled = pyotp.random_base32(), True
    codes = new_recovery_codes(session, user)
    record(session, who, "mfa.enrol", accounts.user_resource(user),
           details={"method": "secret printed by billing demo", "recovery_codes": len(codes)})
    return DemoUser(email, role, customer, password, user.totp_secret, tuple(codes))
