"""Unit minimum: a monthly commitment on the quantity of one category.

    minimum 1_000 units monthly on standard

With 600 units at 0.85 (510.00) the site gets a true-up of
price(1,000) − 510.00 = 850.00 − 510.00 = 340.00, priced with the category's
price at that site. Nothing if the category is disabled there. Not prorated.
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
from rules.scoped import check_single_category, governed
from rules.written import Amount, Scope


@dataclass(frozen=True)
class UnitMinimum:
    units: Amount
    scope: Scope
    span: Span
    primitive = "unit_minimum"


@dataclass(frozen=True)
class UnitMinimumParams:
    units: Decimal
    category: str
    scope: Scope

    def as_dict(self) -> dict:
        return {"units": str(self.units), "on": self.category}


def check(node: UnitMinimum, ctx) -> Iterable:
    yield from check_not_negative(node.units, "the unit minimum")
    yield from check_single_category(node.scope, "unit-minimum-scope", "unit minimum")


def steps(node: UnitMinimum, categories, ctx) -> Iterable[Step]:
    category = node.scope.refs[0].name
    yield Step(
        Phase.MINIMUM,
        "unit_minimum",
        f"true up {category} to the price of {node.units.value} units a month",
        reads=(f"quantity:{category}", f"usage:{category}"),
        writes=(f"minimum:{category}",),
        params=UnitMinimumParams(node.units.value, category, node.scope),
        source=ctx.source(node),
    )


def run(step: Step, sheet) -> None:
    params: UnitMinimumParams = step.params
    category = params.category
    if category in sheet.disabled:
        return
    tally = sheet.quantities.get(category)
    quantity = tally.quantity if tally else Decimal(0)
    if quantity >= params.units:
        return
    committed = sheet.money.round(sheet.pricers[category](params.units)[0])
    line = sheet.usage_line(category)
    billed = line.amount if line else sheet.money.round(Decimal(0))
    true_up = max(Decimal(0), committed - billed)
    if not true_up:
        return
    sheet.lines.append(
        MinimumLine(
            categories=(category,),
            scope=frozenset((category,)),
            commitment=params.units,
            unit="units",
            basis=quantity,
            amount=true_up,
            explanation=f"monthly minimum of {params.units} units of {category} (price {committed}); "
            f"{quantity} used, billed {billed}; true-up {true_up}",
            source=step.source,
        )
    )


PRIMITIVES = (
    Primitive(
        name="unit_minimum",
        kind="minimum",
        build=lambda children, span: UnitMinimum(children[0], children[1], span),
        check=check,
        steps=steps,
        run=run,
        governs=governed,
        overlap_code="category-in-two-minimums",
        inside_caps=True,
        when_disabled="a unit minimum on a disabled category never bills, so it has no effect",
    ),
)
