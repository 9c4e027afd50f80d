"""What a rule says, as written: amounts, dates, category mentions and scopes, each with its span.

The rule primitives (rules/) are built from these; the contract's own structure
(headers, categories, sites) is in dsl/syntax.py.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from rules.diagnostics import Span


@dataclass(frozen=True)
class Amount:
    """A decimal as written (`1_000.00`), kept exact."""

    value: Decimal
    span: Span

    @property
    def places(self) -> int:
        return max(0, -self.value.as_tuple().exponent)


@dataclass(frozen=True)
class DateLiteral:
    text: str
    span: Span

    @property
    def value(self) -> dt.date | None:
        """The date, or None when the text names no real calendar date."""
        try:
            return dt.date.fromisoformat(self.text)
        except ValueError:
            return None


@dataclass(frozen=True)
class Ref:
    """A mention of a category id."""

    name: str
    span: Span


@dataclass(frozen=True)
class Scope:
    """`all`, or a list of category ids, as written."""

    is_all: bool
    refs: tuple[Ref, ...]
    span: Span

    @property
    def written(self) -> tuple[str, ...]:
        return ("all",) if self.is_all else tuple(r.name for r in self.refs)

    def categories(self, declared: tuple[str, ...]) -> frozenset[str]:
        return frozenset(declared) if self.is_all else frozenset(r.name for r in self.refs)

    @property
    def key(self) -> str:
        """Identity of a scope as written, order aside: a cap's count is kept per site and key."""
        return "all" if self.is_all else ",".join(sorted({r.name for r in self.refs}))
