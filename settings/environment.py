"""Environments: `BILLING_ENV` (test, us-prod, uk-prod, …) selects a configuration file.

Each environment has its own database, invoice-number prefix, locale and banner
colour, shown on every page and written into every audit entry. Files live in
settings/environments/NAME.toml. Two values come from the process environment
only, because they are secrets or differ per machine: `BILLING_DATABASE_URL`
overrides the file's database (that is where a password goes: never into a file
in this repository), and `BILLING_SECRET_KEY` signs the portal's cookies.

This is the only module that reads the process environment. The command line and
the web app call `load()` once and hand each service the value it needs: the
database URL to storage.db, the threshold to the reconciliation and the approval
gate, the prefix and locale to issuing.

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
    # Reverse proxies in front of `billing serve` whose X-Forwarded-For is trusted (0: use the peer address).
    trusted_proxies: int = 0
    # BILLING_SECRET_KEY; None outside production lets the portal keep a key in its instance folder.
    secret_key: str | None = None


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
    return Environment(**settings)
