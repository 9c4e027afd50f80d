"""The account phase (spec §4.6 step 6, §4.9): once per period, after every site, then the invoice total.

The account rules act on S, the sum of the period's site totals, through a
worksheet of their own: each rule's step (rules/account_minimum.py,
account_cap.py, commitment.py) reads what the steps before it wrote and adds its
lines; the invoice-total step closes the period. What carries to the next
period of the contract year (the account cap's count, the commitment's
drawdowns, the year's spend Y) is in the cap ledger, beside the site caps'
counts, so an issued invoice can freeze it. The phase costs one pass per
period, whatever the number of events.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from engine import account_lines  # noqa: F401  (registers the account line kinds)
from engine.money import Money
from engine.periods import Period, contract_year_start
from engine.plan import Phase, Plan, Step
from engine.sheet import CapLedger

ZERO = Decimal(0)


@dataclass
class AccountSheet:
    """What the account steps of one period read and write."""

    period: Period
    money: Money
    ledger: CapLedger
    site_totals: Decimal          # S: the site totals of the invoice, late lines included
    ends: dt.date | None          # the contract's last billed day
    first_of_year: bool           # the contract year's first billed period
    last_of_year: bool            # its last billed period: the twelfth, or the one holding `ends`
    lines: list = field(default_factory=list)
    total: Decimal = ZERO         # the account lines' sum
    invoice_total: Decimal = ZERO

    def amount(self, *kinds: str) -> Decimal:
        """The sum of the account lines of these kinds written so far."""
        return sum((line.amount for line in self.lines if line.kind in kinds), ZERO)


@dataclass(frozen=True)
class AccountResult:
    lines: tuple
    total: Decimal


def account_sheet(period: Period, money: Money, starts: dt.date, ends: dt.date | None, ledger: CapLedger,
                  site_totals: Decimal) -> AccountSheet:
    year_start = ledger.year_start
    last = year_start.shift(11)
    if ends is not None:
        last = min(last, Period.of(ends))
    return AccountSheet(period, money, ledger, site_totals, ends, period == max(year_start, Period.of(starts)),
                        period == last)


@dataclass(frozen=True)
class NoParams:
    def as_dict(self) -> dict:
        return {}


def invoice_total_step() -> Step:
    return Step(
        Phase.INVOICE_TOTAL,
        "invoice_total",
        "invoice total = the sum of the site totals plus the account lines",
        reads=("site totals", "account lines"),
        writes=("invoice total",),
        params=NoParams(),
        run=run_invoice_total,
    )


def run_invoice_total(step: Step, sheet: AccountSheet) -> None:
    sheet.total = sum((line.amount for line in sheet.lines), ZERO)
    sheet.invoice_total = sheet.site_totals + sheet.total


def commitment_of(plan: Plan) -> tuple[Decimal, str] | None:
    """(amount, prepaid | in arrears) of the plan's `commit`, or None."""
    step = plan.account_step("commitment")
    return (step.params.amount, step.params.billing) if step is not None else None


def commitment_refused_until(starts: dt.date, before: Plan | None, plan: Plan, effective: Period) -> Period | None:
    """When `plan`, in effect from `effective` after `before`, changes the `commit` other than at a contract year's
    start (spec §4.9): the first period it could take effect from. None when it may."""
    if before is None or commitment_of(before) == commitment_of(plan):
        return None
    year_start = contract_year_start(starts, effective)
    return None if year_start == effective else year_start.shift(12)


def describe_commitment(plan: Plan) -> str:
    commitment = commitment_of(plan)
    return f"commit {commitment[0]} yearly {commitment[1]}" if commitment else "no commit"
