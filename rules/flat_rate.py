"""Flat rate: every unit at one price.

    category standard "Standard processing" rate 0.85

1,200 units of `standard` give the usage line 1,200 × 0.85 = 1,020.00, with one
tier row (1200 at 0.85).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from engine.lines import TierShare
from rules.diagnostics import Span
from rules.pricing import Price, check_not_negative, rate_steps, run_rate
from rules.primitive import Primitive
from rules.written import Amount


@dataclass(frozen=True)
class FlatRate(Price):
    rate: Amount
    span: Span
    primitive = "flat_rate"

    def describe(self, mode: str = "flat_rate") -> str:
        return f"rate {self.rate.value}"

    def shares(self, quantity: Decimal):
        exact = quantity * self.rate.value
        return exact, ((TierShare(quantity, self.rate.value, exact),) if quantity else ())


PRIMITIVES = (
    Primitive(
        name="flat_rate",
        kind="price",
        build=lambda children, span: FlatRate(children[0], span),
        check=lambda node, ctx: check_not_negative(node.rate, "the rate"),
        steps=rate_steps("flat_rate"),
        run=run_rate,
    ),
)
