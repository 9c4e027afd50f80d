"""The lines of the account phase (spec §4.9) and their kinds, declared as engine/lines.py declares the others.

They stand in the invoice's `account` section, never under a site, and sum into
the `account` entry of its totals (interfaces §3):

    {"kind": "account_minimum", "commitment": "3000.00", "amount": "450.00"}
    {"kind": "account_cap", "limit": "40000.00", "counted_before": "39000.00", "amount": "-2100.00"}
    {"kind": "commitment_fee", "commitment": "12000.00", "amount": "12000.00"}
    {"kind": "commitment_drawdown", "balance_before": "8290.00", "balance_after": "5000.00", "amount": "-3290.00"}
    {"kind": "commitment_true_up", "commitment": "9000.00", "spent": "7190.00", "amount": "1810.00"}

Each kind is made by one factory from the figures it shows: they are all money,
written in the JSON and in the CSV column of the same name. Importing the
evaluator registers them, so a stored invoice with account lines reads back
wherever invoices are read.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from decimal import Decimal
from typing import Callable, Iterable

from engine.lines import Broken, LineKind, Row, register_kind, source_from_json, source_json
from engine.money import Money
from engine.periods import Period
from engine.plan import Source

ZERO = Decimal(0)
ACCOUNT = "account"   # the totals entry of every account line


@dataclass(frozen=True)
class AccountMinimumLine:
    commitment: Decimal           # M′: the month's minimum, prorated in the period holding `ends`
    amount: Decimal
    explanation: str
    source: Source | None
    kind = "account_minimum"


@dataclass(frozen=True)
class AccountCapLine:
    limit: Decimal
    counted_before: Decimal
    in_scope: Decimal             # what the cap saw this period: the site totals and the account minimum
    amount: Decimal               # negative
    explanation: str
    source: Source | None
    kind = "account_cap"


@dataclass(frozen=True)
class CommitmentFeeLine:
    commitment: Decimal
    amount: Decimal
    explanation: str
    source: Source | None
    kind = "commitment_fee"


@dataclass(frozen=True)
class CommitmentDrawdownLine:
    balance_before: Decimal
    balance_after: Decimal
    expiring: Decimal | None      # in the contract year's last billed period: what is left, unrefunded
    amount: Decimal               # negative, or 0
    explanation: str
    source: Source | None
    kind = "commitment_drawdown"


@dataclass(frozen=True)
class CommitmentTrueUpLine:
    commitment: Decimal
    spent: Decimal
    amount: Decimal
    explanation: str
    source: Source | None
    kind = "commitment_true_up"


def _figures(line, names: tuple[str, ...]) -> dict[str, Decimal]:
    return {name: getattr(line, name) for name in names if getattr(line, name) is not None}


def _declare(line_type: type, title: str, plural: str, figures: tuple[str, ...],
             invariants: Callable[[object], Iterable[Broken]]) -> LineKind:
    """A kind whose JSON and row are its money `figures`, its amount, its explanation and its contract line."""

    def to_json(line, money: Money) -> dict:
        shown = {name: money.format(value) for name, value in _figures(line, figures).items()}
        return {**shown, "amount": money.format(line.amount), "explanation": line.explanation,
                "source": source_json(line.source)}

    def from_json(data: dict):
        values = {name: Decimal(data[name]) if name in data else None for name in figures}
        return line_type(**values, amount=Decimal(data["amount"]), explanation=data["explanation"],
                         source=source_from_json(data["source"]))

    def row(line, money: Money) -> Row:
        shown = {name: money.format(value) for name, value in _figures(line, figures).items()}
        return Row(title, title, line.amount, (), line.source, explanation=line.explanation, figures=shown)

    def difference(old, new, period: Period, money: Money) -> list:
        amount = (new.amount if new else ZERO) - (old.amount if old else ZERO)
        if not amount:
            return []
        return [dataclasses.replace(new or old, amount=amount,
                                    explanation=f"late usage for {period}: {title.lower()} changed by {amount}")]

    return register_kind(LineKind(
        name=line_type.kind, line=line_type, title=title, plural=plural, to_json=to_json, from_json=from_json,
        row=row, match_key=lambda line: line.kind, difference=difference, invariants=invariants,
        totals_key=ACCOUNT,
    ))


def _not_negative(rule: str):
    def invariants(line) -> Iterable[Broken]:
        if line.amount < 0:
            yield Broken(rule, ZERO, line.amount, line.explanation)
    return invariants


def _cap_invariants(line: AccountCapLine) -> Iterable[Broken]:
    if line.amount > 0:
        yield Broken("an account cap only reduces", ZERO, line.amount, line.explanation)
    elif -line.amount > max(line.in_scope, ZERO):
        yield Broken("an account cap reduces no more than the period", line.in_scope, -line.amount, line.explanation)
    elif line.counted_before + line.in_scope + line.amount > line.limit and -line.amount != line.in_scope:
        yield Broken("an account cap keeps the year within its limit", line.limit,
                     line.counted_before + line.in_scope + line.amount, line.explanation)


def _drawdown_invariants(line: CommitmentDrawdownLine) -> Iterable[Broken]:
    if line.amount > 0 or -line.amount > line.balance_before:
        yield Broken("a drawdown takes no more than the balance", line.balance_before, -line.amount,
                     line.explanation)
    if line.balance_after != line.balance_before + line.amount:
        yield Broken("the balance after is the balance before less the drawdown",
                     line.balance_before + line.amount, line.balance_after, line.explanation)
    if line.balance_after < 0:
        yield Broken("a balance is never negative", ZERO, line.balance_after, line.explanation)


ACCOUNT_MINIMUM = _declare(AccountMinimumLine, "Account minimum true-up", "Account lines", ("commitment",),
                           _not_negative("no negative true-up"))
ACCOUNT_CAP = _declare(AccountCapLine, "Account cap reduction", "Account lines",
                       ("limit", "counted_before", "in_scope"), _cap_invariants)
COMMITMENT_FEE = _declare(CommitmentFeeLine, "Commitment fee", "Account lines", ("commitment",),
                          _not_negative("no negative fee"))
COMMITMENT_DRAWDOWN = _declare(CommitmentDrawdownLine, "Commitment drawdown", "Account lines",
                               ("balance_before", "balance_after", "expiring"), _drawdown_invariants)
COMMITMENT_TRUE_UP = _declare(CommitmentTrueUpLine, "Commitment true-up", "Account lines", ("commitment", "spent"),
                              _not_negative("no negative true-up"))
