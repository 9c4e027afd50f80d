"""What the three price primitives share: checks of amounts and tiers, and the rate step.

A price node answers `shares(quantity) -> (exact amount, tier shares)`; the rate
step turns that into a category's usage line, after any included allowance.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Iterable

from engine.lines import TierShare, UsageLine
from engine.plan import Phase, Step
from rules.diagnostics import Diagnostic, Span, error
from rules.written import Amount

ZERO = Decimal(0)


def check_not_negative(amount: Amount, what: str) -> Iterable[Diagnostic]:
    if amount.value < 0:
        yield error("negative-amount", amount.span, f"{what} {amount.value} is negative; write it as 0 or more")


@dataclass(frozen=True)
class Tier:
    bound: Amount | None  # None for `above`
    price: Amount
    span: Span


class Price:
    """What a price node answers besides `shares(quantity)`: its amount once `free` of `quantity` are included.
    A rate or graduated price applies to the billed units alone, tiers counted from the first of them (§4.2)."""

    def shares_after(self, quantity: Decimal, free: Decimal):
        return self.shares(quantity - free)


@dataclass(frozen=True)
class Tiered(Price):
    """`graduated { … }` or `volume { … }`: tiers with strictly increasing bounds."""

    tiers: tuple[Tier, ...]
    span: Span

    def describe(self, mode: str) -> str:
        parts = [
            f"up to {t.bound.value} at {t.price.value}" if t.bound else f"above at {t.price.value}"
            for t in self.tiers
        ]
        return f"{mode} {{ {'; '.join(parts)} }}"

    def bounded(self) -> Iterable[tuple[Decimal, Decimal]]:
        for tier in self.tiers:
            yield (tier.bound.value if tier.bound else None), tier.price.value


def build_tiered(cls):
    def build(children: list, span: Span):
        return cls(tuple(children), span)

    return build


def check_tiers(node: Tiered, ctx) -> Iterable[Diagnostic]:
    previous = None
    for tier in node.tiers:
        yield from check_not_negative(tier.price, "the tier price")
        if tier.bound is None:
            continue
        yield from check_not_negative(tier.bound, "the tier bound")
        if previous is not None and tier.bound.value <= previous:
            yield error(
                "tiers-not-increasing",
                tier.bound.span,
                f"tier bounds must be strictly increasing: 'up to {tier.bound.value}' follows "
                f"'up to {previous}'; list the tiers from the smallest bound up",
            )
        previous = tier.bound.value


@dataclass(frozen=True)
class RateParams:
    category: str
    price: Any
    primitive: str

    def as_dict(self) -> dict:
        return {"category": self.category, "price": self.price.describe(self.primitive)}


def rate_steps(primitive_name: str):
    """The rate step of a category priced by this primitive."""

    def steps(price, categories: tuple[str, ...], ctx) -> Iterable[Step]:
        for category in categories:
            yield Step(
                Phase.RATE,
                primitive_name,
                f"price {category} at {price.describe(primitive_name)}",
                reads=(f"quantity:{category}",),
                writes=(f"usage:{category}",),
                params=RateParams(category, price, primitive_name),
                source=ctx.source(price),
                stage=1,
            )

    return steps


def run_rate(step: Step, sheet) -> None:
    """Register the category's pricer at this site, then write its usage line if it had usage."""
    category, price = step.params.category, step.params.price
    allowance = sheet.allowances.get(category, (ZERO, None))[0]

    def pricer(quantity: Decimal):
        free = min(quantity, allowance) if allowance > 0 else ZERO
        exact, shares = price.shares_after(quantity, free)
        if free:
            nothing = sheet.money.round(ZERO)
            shares = (TierShare(free, nothing, nothing, "included"), *shares)
        return exact, shares

    sheet.pricers[category] = pricer
    tally = sheet.quantities.get(category)
    if tally is None:
        return
    exact, shares = pricer(tally.quantity)
    sheet.lines.append(
        UsageLine(
            category=category,
            label=sheet.labels[category],
            quantity=tally.quantity,
            events=tally.events,
            amount=sheet.money.round(exact),
            billed=True,
            tiers=shares,
            source=step.source,
        )
    )
