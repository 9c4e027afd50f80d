"""Invoice lines: what the phases write. Totals are sums of these, nothing else."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from engine.plan import Source


@dataclass(frozen=True)
class TierShare:
    """One tier's part of a usage line (amount rounded for display only)."""

    quantity: Decimal
    unit_price: Decimal
    amount: Decimal
    note: str = ""


@dataclass(frozen=True)
class UsageLine:
    category: str
    label: str
    quantity: Decimal
    events: int
    amount: Decimal
    billed: bool
    tiers: tuple[TierShare, ...]
    source: Source | None                 # the price that made the amount
    disabled_by: Source | None = None     # the toggle that set it to 0, when not billed
    kind = "usage"


@dataclass(frozen=True)
class MinimumLine:
    categories: tuple[str, ...]   # scope as written
    scope: frozenset[str]         # the categories it covers
    commitment: Decimal           # spend (prorated) or unit count
    unit: str                     # "spend" or "units"
    basis: Decimal                # what was measured against the commitment
    amount: Decimal
    explanation: str
    source: Source | None
    kind = "minimum"


@dataclass(frozen=True)
class CapLine:
    categories: tuple[str, ...]
    limit: Decimal
    counted_before: Decimal
    in_scope: Decimal             # this period's in-scope amount before the cap
    amount: Decimal               # negative
    explanation: str
    source: Source | None
    kind = "cap"


LINE_KINDS = ("usage", "minimum", "cap")
