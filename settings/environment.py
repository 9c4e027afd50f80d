"""Environments: `BILLING_ENV` (test, us-prod, uk-prod, …) selects a configuration file.

Each environment has its own database, invoice-number prefix, locale and banner
colour, shown on every page and written into every audit entry. Files live in
settings/environments/NAME.toml. Some values come from the process environment
only, because they are secrets or differ per machine: `BILLING_DATABASE_URL`
overrides the file's database (that is where a password goes: never into a file
in this repository), and `BILLING_SECRET_KEY` signs the portal's cookies;
`BILLING_METRICS_PORT` overrides the metrics port, `BILLING_LOG_FILE` names the
log file, `BILLING_AUDIT_KEY` signs the audit chain's anchors (written to the
file `audit_anchor_file` names, or `BILLING_AUDIT_ANCHOR_FILE`). `serving_problems` says why a production environment must not be served
as configured (a test or weak secret, a shared database, no trusted proxy address).

This is the only module that reads the process environment. The command line and
the web app call `load()` once and hand each service the value it needs: the
database URL to storage.db, the threshold to the reconciliation and the approval
gate, the prefix and locale to issuing, the account codes to the journal.

    environment = load()                  # BILLING_ENV, else "test"
    engine = storage.db.connect(environment.database_url)
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ENVIRONMENTS = Path(__file__).with_name("environments")
DEFAULT_ENVIRONMENT = "test"


class UnknownEnvironment(Exception):
    pass


@dataclass(frozen=True)
class Environment:
    name: str
    title: str
    database_url: str
    invoice_prefix: str
    locale: str
    banner_colour: str
    production: bool
    # Reconciliation (review/reconcile.py): a difference above both is a discrepancy that blocks approval.
    reconcile_threshold_amount: str = "0.00"     # in the contract's currency
    reconcile_threshold_percent: str = "0"       # of the larger of the two figures compared
    # Reverse proxies in front of `billing serve` whose X-Forwarded-For is trusted (0: use the peer address), and
    # the address the nearest one connects from: waitress believes the headers of that peer only, and clears
    # them on every other connection, so a client that reaches the app directly cannot name its own address.
    trusted_proxies: int = 0
    trusted_proxy: str | None = None
    # BILLING_SECRET_KEY; None outside production lets the portal keep a key in its instance folder.
    secret_key: str | None = None
    # Metrics (docs/deployment.md): on the app at `metrics_path`, or on a listener of their own at
    # metrics_host:metrics_port; production keeps them off the public listener (`serving_problems`).
    metrics_path: str | None = None
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    # BILLING_LOG_FILE: where the JSON log lines go (docs/deployment.md); None: `billing serve` writes them to
    # standard error, the other commands write none (their standard error is for the person at the terminal).
    log_file: str | None = None
    # The audit chain's anchors (audit/anchors.py): the append-only file outside the database they are written to
    # (BILLING_AUDIT_ANCHOR_FILE overrides it), and BILLING_AUDIT_KEY, the key that signs them.
    audit_anchor_file: str | None = None
    audit_key: str | None = None
    # Who bills (interfaces §4): the legal entity (name, company_number, address, tax_id, bank, payment_terms_days,
    # timezone) printed on every document, and the tax treatments its invoices may carry.
    seller: Mapping | None = None
    tax_treatments: tuple[str, ...] = ()
    # The accountant's journal (docs/journal.md): the ledger account codes its lines post to ([accounts]: receivable,
    # revenue, tax_payable, customer_credits, credit_notes; revenue per line kind and per category; names).
    accounts: Mapping | None = None


# A secret made for a test environment starts with this mark (deploy/environments/test.env), so that production,
# which never knows the test environment's secret itself, can still tell one apart and refuse it.
TEST_SECRET_MARK = "test-"
# 32 random bytes, the least a production secret may hold: 43 characters of base64 (token_urlsafe(32)), 64 of hex.
SECRET_KEY_MIN_LENGTH = 43
# "a" * 64 is long, not random: a random key of 43 base64 characters holds some 30 distinct ones, of 64 hex 16
SECRET_KEY_MIN_DISTINCT = 10


def serving_problems(env: Environment) -> list[str]:
    """Why `billing serve` must not start this environment as configured (none outside production): a test
    secret, a test database, metrics on the public listener. The database's own records are checked by the
    caller, which can open it."""
    if not env.production:
        return []
    problems = []
    key = env.secret_key
    if key and key.startswith(TEST_SECRET_MARK):
        problems.append(f"BILLING_SECRET_KEY is a test secret (it starts with {TEST_SECRET_MARK!r}): "
                        "production needs its own")
    elif key and (len(key) < SECRET_KEY_MIN_LENGTH or len(set(key)) < SECRET_KEY_MIN_DISTINCT):
        problems.append(f"BILLING_SECRET_KEY is too weak: production needs at least 32 random bytes "
                        f"({SECRET_KEY_MIN_LENGTH} characters of base64, made by "
                        "`python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`)")
    if not (env.audit_key and env.audit_anchor_file):
        problems.append("the audit chain is not anchored outside the database: production needs an "
                        "audit_anchor_file and BILLING_AUDIT_KEY (docs/security.md)")
    elif env.audit_key == key:
        problems.append("BILLING_AUDIT_KEY is BILLING_SECRET_KEY: the audit key must be a secret of its own")
    if env.trusted_proxies and not env.trusted_proxy:
        problems.append(f"trusted_proxies = {env.trusted_proxies} names no trusted_proxy: waitress would take "
                        "X-Forwarded-For from no one, and every client would have the proxy's address")
    others = {load(name, {}).database_url: name for name in available() if name != env.name}
    if env.database_url.startswith("sqlite") or env.database_url in others:
        problems.append(f"the database is {others.get(env.database_url, 'a SQLite file')}'s: production needs "
                        "its own PostgreSQL database (BILLING_DATABASE_URL)")
    if env.metrics_path:
        problems.append("metrics_path serves the metrics on the public listener: production names a "
                        "metrics_port (bound to metrics_host, 127.0.0.1) instead")
    return problems


def available() -> list[str]:
    return sorted(p.stem for p in ENVIRONMENTS.glob("*.toml"))


def load(name: str | None = None, environ: Mapping[str, str] = os.environ) -> Environment:
    """The environment `name` (default: BILLING_ENV, else test), with the overrides `environ` holds."""
    name = name or environ.get("BILLING_ENV") or DEFAULT_ENVIRONMENT
    path = ENVIRONMENTS / f"{name}.toml"
    if not path.is_file():
        raise UnknownEnvironment(f"BILLING_ENV={name!r} names no environment; known: {', '.join(available())}")
    settings = tomllib.loads(path.read_text(encoding="utf-8"))
    settings["database_url"] = environ.get("BILLING_DATABASE_URL") or settings["database_url"]
    settings["secret_key"] = environ.get("BILLING_SECRET_KEY") or None
    settings["log_file"] = environ.get("BILLING_LOG_FILE") or None
    settings["audit_key"] = environ.get("BILLING_AUDIT_KEY") or None
    settings["audit_anchor_file"] = environ.get("BILLING_AUDIT_ANCHOR_FILE") or settings.get("audit_anchor_file")
    settings["tax_treatments"] = tuple(settings.get("tax_treatments", ()))
    if environ.get("BILLING_METRICS_PORT"):   # two environments on one host (the rehearsal) need two ports
        settings["metrics_port"] = int(environ["BILLING_METRICS_PORT"])
    return Environment(**settings)
