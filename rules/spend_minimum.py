"""Spend minimum: a monthly commitment on the billed usage of some categories.

    minimum 5_000.00 monthly on standard, expedited

With standard 1,785.00 and expedited 560.00 billed, the site gets the line
`minimum standard, expedited  commitment 5,000.00  amount 2,655.00`. In a month
the site is billed for only in part (`active from`/`until`, the contract's
`ends`), the commitment is prorated by days and rounded as an amount.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Iterable

from engine.lines import MinimumLine
from engine.plan import Phase, Step
from rules.diagnostics import Span
from rules.pricing import check_not_negative
from rules.primitive import Primitive
from rules.scoped import check_currency_places, governed, scope_label, scope_reads, sum_amounts
from rules.written import Amount, Scope


@dataclass(frozen=True)
class SpendMinimum:
    amount: Amount
    scope: Scope
    span: Span
    primitive = "spend_minimum"


@dataclass(frozen=True)
class SpendMinimumParams:
    commitment: Decimal
    scope: Scope
    categories: frozenset[str]

    def as_dict(self) -> dict:
        return {"commitment": str(self.commitment), "on": list(self.scope.written)}


def check(node: SpendMinimum, ctx) -> Iterable:
    yield from check_not_negative(node.amount, "the minimum")
    yield from check_currency_places(node.amount, ctx, "minimum")


def steps(node: SpendMinimum, categories, ctx) -> Iterable[Step]:
    yield Step(
        Phase.MINIMUM,
        "spend_minimum",
        f"true up the billed usage of {scope_label(node.scope)} to {node.amount.value} a month "
        f"(prorated by active days)",
        reads=scope_reads(node.scope),
        writes=(f"minimum:{scope_label(node.scope)}",),
        params=SpendMinimumParams(node.amount.value, node.scope, node.scope.categories(ctx.declared)),
        source=ctx.source(node),
    )


def run(step: Step, sheet) -> None:
    params: SpendMinimumParams = step.params
    money, period = sheet.money, sheet.period
    commitment = money.round(params.commitment * sheet.active_days / period.days)
    basis = money.round(sum_amounts(l for l in sheet.lines if l.kind == "usage" and l.category in params.categories))
    true_up = money.round(max(Decimal(0), commitment - basis))
    if not true_up:
        return
    prorated = "" if sheet.active_days == period.days else (
        f" (prorated: {sheet.active_days} of {period.days} days of {params.commitment})"
    )
    sheet.lines.append(
        MinimumLine(
            categories=params.scope.written,
            scope=params.categories,
            commitment=commitment,
            unit="spend",
            basis=basis,
            amount=true_up,
            explanation=f"monthly minimum {commitment}{prorated} on {scope_label(params.scope)}; "
            f"billed usage {basis}; true-up {true_up}",
            source=step.source,
        )
    )


PRIMITIVES = (
    Primitive(
        name="spend_minimum",
        kind="minimum",
        build=lambda children, span: SpendMinimum(children[0], children[1], span),
        check=check,
        steps=steps,
        run=run,
        governs=governed,
        overlap_code="category-in-two-minimums",
        inside_caps=True,
        monthly_spend=lambda node: node.amount.value,
        when_disabled="the minimum will always be billed in full",
    ),
)
