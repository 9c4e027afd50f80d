"""Yearly commitment: what the account commits to spend in a contract year, prepaid or trued up (spec §4.9).

    account {
        commit 12_000.00 yearly prepaid      # or: commit 9_000.00 yearly in arrears
    }

With N = the site totals + the account minimum + the account cap (what the
period costs before the commitment):

- `prepaid`: the year's first billed period bills `commitment_fee 12,000.00`;
  every billed period draws N down from the balance, as far as it goes:
  `commitment_drawdown  balance before 12,000.00  balance after 8,290.00  amount −3,710.00`.
  In the year's last billed period the drawdown is always shown, with the
  balance that expires unrefunded (`expiring`).
- `in arrears`: the year's last billed period (its twelfth, or the one holding
  `ends`) bills `commitment_true_up` of max(0, 9,000.00 − Y), Y the year's N summed.

A version may change the commitment only from a contract year's start
(engine.plan.commitment_changes is checked when versions are put together).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from decimal import Decimal
from typing import Iterable

from engine.account_lines import CommitmentDrawdownLine, CommitmentFeeLine, CommitmentTrueUpLine
from engine.plan import Phase, Step
from rules.account_amounts import check_account_amount
from rules.diagnostics import Span
from rules.primitive import Primitive
from rules.written import Amount

ZERO = Decimal(0)
PREPAID, IN_ARREARS = "prepaid", "in arrears"


@dataclass(frozen=True)
class Commitment:
    amount: Amount
    billing: str          # prepaid | in arrears
    span: Span
    primitive = "commitment"


@dataclass(frozen=True)
class CommitmentParams:
    amount: Decimal
    billing: str

    def as_dict(self) -> dict:
        return {"commitment": str(self.amount), "billed": self.billing, "per": "contract year"}


def build(children, span: Span) -> Commitment:
    amount, billing = children
    return Commitment(amount, " ".join(str(billing).split()), span)


def check(node: Commitment, ctx) -> Iterable:
    yield from check_account_amount(node.amount, ctx, "commitment")


def steps(node: Commitment, categories, ctx) -> Iterable[Step]:
    amount = node.amount.value
    if node.billing == PREPAID:
        summary = (f"bill {amount} in the contract year's first period, then draw each period's charges down "
                   f"from its balance; what is left at the year's last period expires")
        writes = ("commitment_fee", "commitment_drawdown", "commitment balance", "year spend")
    else:
        summary = f"true the year's spend up to {amount} in the contract year's last billed period"
        writes = ("commitment_true_up", "year spend")
    yield Step(
        Phase.ACCOUNT,
        "commitment",
        summary,
        reads=("site totals", "account_minimum", "account_cap", "commitment balance", "year spend"),
        writes=writes,
        params=CommitmentParams(amount, node.billing),
        source=ctx.source(node),
        stage=2,
    )


def run(step: Step, sheet) -> None:
    params: CommitmentParams = step.params
    money, counts = sheet.money, sheet.ledger.account
    amount = money.round(params.amount)
    cost = sheet.site_totals + sheet.amount("account_minimum", "account_cap")   # N
    spent = counts.spent + cost                                                  # Y
    if params.billing == IN_ARREARS:
        sheet.ledger.account = dataclasses.replace(counts, spent=spent)
        true_up = max(ZERO, amount - spent)
        if sheet.last_of_year and true_up:
            sheet.lines.append(CommitmentTrueUpLine(
                amount, spent, true_up,
                f"yearly commitment {amount} in arrears; spent {spent} this contract year; true-up {true_up}",
                step.source,
            ))
        return
    if sheet.first_of_year:
        sheet.lines.append(CommitmentFeeLine(amount, amount, f"yearly commitment {amount}, prepaid", step.source))
    balance = amount - counts.drawn
    drawn = max(ZERO, min(balance, cost))
    sheet.ledger.account = dataclasses.replace(counts, spent=spent, drawn=counts.drawn + drawn)
    if drawn or sheet.last_of_year:
        left = balance - drawn
        expiring = left if sheet.last_of_year else None
        expires = f"; {left} expires unrefunded" if sheet.last_of_year else ""
        sheet.lines.append(CommitmentDrawdownLine(
            balance, left, expiring, -drawn,
            f"charges {cost} drawn from the prepaid balance {balance}{expires}", step.source,
        ))


PRIMITIVES = (
    Primitive(
        name="commitment",
        kind="commitment",
        build=build,
        check=check,
        steps=steps,
        run=run,
        yearly_commitment=lambda node: node.amount.value,
    ),
)
