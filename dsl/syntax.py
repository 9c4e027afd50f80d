"""The syntax tree: small frozen nodes, each with the span of text it came from.

Rule primitives (rules/) define their own nodes on the same pattern, from the
atoms in rules/written.py; this module holds what every contract has whatever its rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rules.diagnostics import Span
from rules.written import Ref


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
class Unresolved:
    """A rule that names a category the contract does not declare, as the checks that compare rules see it:
    it still replaces the defaults of its kind (so a site keeps the rules it meant to have), but no check
    reasons about its scope, price or limit; the undeclared name is the one error reported for it."""

    kind: str
    per_category: bool
    categories: tuple[str, ...]   # the declared ones among those it names
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
    account: Block | None = None   # the `account` block: rules over all sites together

    def header(self, key: str) -> Header | None:
        """The first header of that key (a repeat is an error the checks report)."""
        return next((h for h in self.headers if h.key == key), None)

    @property
    def category_ids(self) -> tuple[str, ...]:
        return tuple(c.id for c in self.categories)
