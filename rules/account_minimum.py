"""Account minimum: what the whole account pays at least each month, over all its sites (spec §4.9).

    account {
        minimum 3_000.00 monthly
    }

With site totals S = 2,550.00 the invoice's account section gets
`account_minimum  commitment 3,000.00  amount 450.00`. In the period holding the
contract's `ends` (when it is not the month's last day) the minimum is prorated
by the days up to `ends`, as a site minimum is.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Iterable

from engine.account_lines import AccountMinimumLine
from engine.periods import Period
from engine.plan import Phase, Step
from rules.account_amounts import check_account_amount
from rules.diagnostics import Span
from rules.primitive import Primitive
from rules.written import Amount


@dataclass(frozen=True)
class AccountMinimum:
    amount: Amount
    span: Span
    primitive = "account_minimum"


@dataclass(frozen=True)
class AccountMinimumParams:
    commitment: Decimal

    def as_dict(self) -> dict:
        return {"commitment": str(self.commitment), "on": "the site totals"}


def check(node: AccountMinimum, ctx) -> Iterable:
    yield from check_account_amount(node.amount, ctx, "minimum")


def steps(node: AccountMinimum, categories, ctx) -> Iterable[Step]:
    yield Step(
        Phase.ACCOUNT,
        "account_minimum",
        f"true up the sum of the site totals to {node.amount.value} a month (prorated in the month of `ends`)",
        reads=("site totals",),
        writes=("account_minimum",),
        params=AccountMinimumParams(node.amount.value),
        source=ctx.source(node),
        stage=0,
    )


def run(step: Step, sheet) -> None:
    params: AccountMinimumParams = step.params
    money, period, ends = sheet.money, sheet.period, sheet.ends
    commitment, prorated = money.round(params.commitment), ""
    if ends is not None and Period.of(ends) == period and ends != period.last_day:
        commitment = money.round(params.commitment * ends.day / period.days)
        prorated = f" (prorated: {ends.day} of {period.days} days of {params.commitment})"
    true_up = money.round(max(Decimal(0), commitment - sheet.site_totals))
    if true_up:
        sheet.lines.append(AccountMinimumLine(
            commitment, true_up,
            f"account monthly minimum {commitment}{prorated}; site totals {sheet.site_totals}; true-up {true_up}",
            step.source,
        ))


PRIMITIVES = (
    Primitive(
        name="account_minimum",
        kind="account_minimum",
        build=lambda children, span: AccountMinimum(children[0], span),
        check=check,
        steps=steps,
        run=run,
        monthly_spend=lambda node: node.amount.value,
    ),
)
