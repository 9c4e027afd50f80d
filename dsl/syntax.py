"""The syntax tree: small frozen nodes, each with the span of text it came from.

Rule primitives (engine/primitives/) define their own nodes on the same
pattern; this module holds what every contract has whatever its rules.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from dsl.diagnostics import Span


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


@dataclass(frozen=True)
class Header:
    key: str
    value: Any  # str, DateLiteral
    value_span: Span
    span: Span


@dataclass(frozen=True)
class Category:
    id: str
    id_span: Span
    label: str
    price: Any  # a price primitive's node
    span: Span


@dataclass(frozen=True)
class RateOverride:
    """`rate ID price` in defaults or a site: that category's price there."""

    category: Ref
    price: Any
    span: Span
    kind = "rate"


@dataclass(frozen=True)
class NoRule:
    """`no minimum` / `no cap`: the site has none of that kind."""

    kind: str
    span: Span


@dataclass(frozen=True)
class Block:
    """The rules of `defaults` or of one site, in the order written."""

    name: str
    rules: tuple[Any, ...]
    span: Span


@dataclass(frozen=True)
class Site:
    id: str
    id_span: Span
    name: str
    block: Block
    span: Span


@dataclass(frozen=True)
class Contract:
    id: str
    id_span: Span
    headers: tuple[Header, ...]
    categories: tuple[Category, ...]
    defaults: Block | None
    sites: tuple[Site, ...]
    span: Span

    def header(self, key: str) -> Header | None:
        """The first header of that key (a repeat is an error the checks report)."""
        return next((h for h in self.headers if h.key == key), None)

    @property
    def category_ids(self) -> tuple[str, ...]:
        return tuple(c.id for c in self.categories)
