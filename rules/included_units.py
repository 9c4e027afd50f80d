"""Included units: the first N units of a category are free, per site and period.

    category review "Manual review" graduated {
        up to 1_000 at 2.00
        above       at 1.50
    }
    defaults { included 200 units monthly on review }

1,500 units of review: 200 are free, the other 1,300 go through the tiers:
1,000 × 2.00 + 300 × 1.50 = 2,450.00. The usage line keeps quantity 1,500 and
shows the tier rows (200 at 0.00 included), (1,000 at 2.00), (300 at 1.50).
Applied in the rate phase, before the tiers; a site's `included … on C`
replaces the default's for C only.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Iterable

from engine.plan import Phase, Step
from rules.diagnostics import Span
from rules.pricing import check_not_negative
from rules.primitive import Primitive
from rules.scoped import check_single_category, governed
from rules.written import Amount, Scope


@dataclass(frozen=True)
class IncludedUnits:
    units: Amount
    scope: Scope
    span: Span
    primitive = "included_units"


@dataclass(frozen=True)
class IncludedParams:
    units: Decimal
    category: str

    def as_dict(self) -> dict:
        return {"units": str(self.units), "on": self.category}


def check(node: IncludedUnits, ctx) -> Iterable:
    yield from check_not_negative(node.units, "the included allowance")
    yield from check_single_category(node.scope, "included-scope", "included allowance")


def steps(node: IncludedUnits, categories, ctx) -> Iterable[Step]:
    for category in categories:
        yield Step(
            Phase.RATE,
            "included_units",
            f"the first {node.units.value} units of {category} each month are free",
            reads=(f"quantity:{category}",),
            writes=(f"quantity:{category}",),
            params=IncludedParams(node.units.value, category),
            source=ctx.source(node),
            stage=0,
        )


def run(step: Step, sheet) -> None:
    sheet.allowances[step.params.category] = (step.params.units, step.source)


PRIMITIVES = (
    Primitive(
        name="included_units",
        kind="allowance",
        build=lambda children, span: IncludedUnits(children[0], children[1], span),
        check=check,
        steps=steps,
        run=run,
        inherit="category",
        governs=governed,
    ),
)
