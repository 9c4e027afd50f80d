"""Graduated tiers: each tier's units at that tier's price.

    category review "Manual review" graduated {
        up to 1_000 at 2.00
        up to 5_000 at 1.50
        above       at 1.10
    }

6,200 units: 1,000 × 2.00 + 4,000 × 1.50 + 1,200 × 1.10 = 9,320.00, one tier row each.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from engine.lines import TierShare
from rules.pricing import Tiered, build_tiered, check_tiers, rate_steps, run_rate
from rules.primitive import Primitive

ZERO = Decimal(0)


@dataclass(frozen=True)
class Graduated(Tiered):
    primitive = "graduated"

    def shares(self, quantity: Decimal):
        exact, rows, floor = ZERO, [], ZERO
        for bound, price in self.bounded():
            top = quantity if bound is None else min(quantity, bound)
            if top > floor:
                part = top - floor
                exact += part * price
                rows.append(TierShare(part, price, part * price))
                floor = top
            if bound is not None and quantity <= bound:
                break
        return exact, tuple(rows)


PRIMITIVES = (
    Primitive(
        name="graduated",
        kind="price",
        build=build_tiered(Graduated),
        check=check_tiers,
        steps=rate_steps("graduated"),
        run=run_rate,
    ),
)
