"""Environments: `BILLING_ENV` (test, us-prod, uk-prod, …) selects a configuration file.

Each environment has its own database, invoice-number prefix, locale and banner
colour, shown on every page and written into every audit entry. Files live in
admin_app/environments/NAME.toml; `BILLING_DATABASE_URL` overrides the file's
database (that is where a password goes: never into a file in this repository).
"""

from __future__ import annotations

import os
import tomllib
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
    # Reconciliation (store/reconcile.py): a difference above both is a discrepancy that blocks approval.
    reconcile_threshold_amount: str = "0.00"     # in the contract's currency
    reconcile_threshold_percent: str = "0"       # of the larger of the two figures compared
    # Reverse proxies in front of `billing serve` whose X-Forwarded-For is trusted (0: use the peer address).
    trusted_proxies: int = 0


def available() -> list[str]:
    return sorted(p.stem for p in ENVIRONMENTS.glob("*.toml"))


def load(name: str | None = None) -> Environment:
    name = name or os.environ.get("BILLING_ENV") or DEFAULT_ENVIRONMENT
    path = ENVIRONMENTS / f"{name}.toml"
    if not path.is_file():
        raise UnknownEnvironment(f"BILLING_ENV={name!r} names no environment; known: {', '.join(available())}")
    settings = tomllib.loads(path.read_text(encoding="utf-8"))
    settings["database_url"] = os.environ.get("BILLING_DATABASE_URL") or settings["database_url"]
    return Environment(**settings)
