"""The worksheet of one site for one period: what the steps of a plan read and write."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Callable

from engine.lines import TierShare
from engine.money import Money
from engine.periods import Period
from engine.usage import Tally

# A pricer turns a quantity into (exact amount, tier shares): a category's price at a site.
Pricer = Callable[[Decimal], tuple[Decimal, tuple[TierShare, ...]]]


@dataclass(frozen=True)
class AccountCounts:
    """What the account rules (spec §4.9) carry from period to period within a contract year."""

    cap: Decimal = Decimal(0)     # what the account cap counted
    drawn: Decimal = Decimal(0)   # the prepaid commitment's drawdowns: its balance is the commitment less this
    spent: Decimal = Decimal(0)   # Y: what the periods cost before any commitment (N summed)


@dataclass
class CapLedger:
    """What each cap counted so far in the contract year, per (site, scope as written), and the account's counts."""

    year_start: Period | None = None
    counted: dict[tuple[str, str], Decimal] = field(default_factory=dict)
    account: AccountCounts = AccountCounts()

    def enter_year(self, year_start: Period) -> None:
        if year_start != self.year_start:
            self.year_start = year_start
            self.counted.clear()
            self.account = AccountCounts()

    def before(self, site: str, scope_key: str) -> Decimal:
        return self.counted.get((site, scope_key), Decimal(0))

    def count(self, site: str, scope_key: str, amount: Decimal) -> None:
        self.counted[(site, scope_key)] = self.before(site, scope_key) + amount


@dataclass
class Sheet:
    site: str
    name: str
    period: Period
    money: Money
    labels: dict[str, str]
    ledger: CapLedger
    daily: dict[tuple[dt.date, str], Tally]      # routed usage: (local day, category)
    first_day: dt.date                            # the site's billable days in this period
    last_day: dt.date
    quantities: dict[str, Tally] = field(default_factory=dict)
    inactive: dict[str, Tally] = field(default_factory=dict)
    allowances: dict[str, tuple[Decimal, object]] = field(default_factory=dict)
    pricers: dict[str, Pricer] = field(default_factory=dict)
    disabled: set[str] = field(default_factory=set)
    lines: list = field(default_factory=list)
    total: Decimal = Decimal(0)

    @property
    def active_days(self) -> int:
        return max(0, (self.last_day - self.first_day).days + 1)

    def usage_line(self, category: str):
        return next((l for l in self.lines if l.kind == "usage" and l.category == category), None)
