"""The registry of rule primitives: the one place the compiler and the evaluator find them.

A primitive is one module that says, for one kind of rule in the language:
how its syntax node is built (`build`), what is wrong with it on its own
(`check`), which plan steps it contributes at a site (`steps`) and what such a
step does to the site's worksheet (`run`). Adding one touches grammar.lark, a
new module, the tuple below and its tests: see docs/adding-a-primitive.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

from dsl.diagnostics import Diagnostic, Span
from engine.money import Money
from engine.plan import Source, Step


@dataclass(frozen=True)
class Context:
    """What a primitive may know while it is checked or compiled."""

    declared: tuple[str, ...]        # category ids, in declaration order
    labels: dict[str, str]
    money: Money | None              # None when the currency itself is wrong
    text: str                        # the contract source, to quote rules
    block: str                       # "defaults", "site lon-01", "category review"
    site: str | None = None

    def source(self, node) -> Source:
        span: Span = node.span
        return Source(span.line, span.column, span.text(self.text), self.block)

    def in_block(self, block: str, site: str | None = None) -> "Context":
        return Context(self.declared, self.labels, self.money, self.text, block, site)


def no_checks(node, ctx: Context) -> Iterable[Diagnostic]:
    return ()


@dataclass(frozen=True)
class Primitive:
    name: str      # the grammar alternative (`-> name`) and the step's name in a plan
    kind: str      # price | minimum | cap | toggle | window | allowance
    build: Callable[[list, Span], Any]
    steps: Callable[[Any, tuple[str, ...], Context], Iterable[Step]]
    run: Callable[[Step, Any], None]
    check: Callable[[Any, Context], Iterable[Diagnostic]] = no_checks
    # How a site's rule replaces the defaults: "kind" (one rule of the kind in a
    # site replaces every default of that kind) or "category" (per category).
    inherit: str = "kind"


def _collect() -> dict[str, Primitive]:
    from engine.primitives import (
        activity_window,
        cap,
        category_toggle,
        flat_rate,
        graduated,
        included_units,
        spend_minimum,
        unit_minimum,
        volume,
    )

    modules = (
        flat_rate,
        graduated,
        volume,
        spend_minimum,
        unit_minimum,
        cap,
        category_toggle,
        activity_window,
        included_units,
    )
    return {p.name: p for module in modules for p in module.PRIMITIVES}


_REGISTRY: dict[str, Primitive] | None = None


def registry() -> dict[str, Primitive]:
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = _collect()
    return _REGISTRY


def primitive(name: str) -> Primitive:
    return registry()[name]
