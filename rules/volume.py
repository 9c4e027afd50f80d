"""Volume tiers: every unit at the price of the tier the whole quantity falls in.

    category pages "Pages" volume {
        up to 1_000 at 0.10
        above       at 0.08
    }

1,000 units cost 1,000 × 0.10 = 100.00; 1,001 units cost 1,001 × 0.08 = 80.08.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from engine.lines import TierShare
from rules.pricing import ZERO, Tiered, build_tiered, check_tiers, rate_steps, run_rate
from rules.primitive import Primitive


@dataclass(frozen=True)
class Volume(Tiered):
    primitive = "volume"

    def shares(self, quantity: Decimal):
        return self.shares_after(quantity, ZERO)

    def shares_after(self, quantity: Decimal, free: Decimal):
        """The tier comes from the whole quantity, its price charged for the billed units (§4.2): counting the
        tier from the billed units alone would let a larger allowance raise the line."""
        billed = quantity - free
        for bound, price in self.bounded():
            if bound is None or quantity <= bound:
                exact = billed * price
                return exact, ((TierShare(billed, price, exact),) if billed else ())
        raise AssertionError("a volume price always ends with an `above` tier")


PRIMITIVES = (
    Primitive(
        name="volume",
        kind="price",
        build=build_tiered(Volume),
        check=check_tiers,
        steps=rate_steps("volume"),
        run=run_rate,
    ),
)
