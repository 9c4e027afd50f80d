"""What a rule primitive declares, and what it may know while it is checked or compiled.

A primitive is one module that says, for one kind of rule in the language:
how its syntax node is built (`build`), what is wrong with it on its own
(`check`), which plan steps it contributes at a site (`steps`) and what such a
step does to the site's worksheet (`run`). rules/registry.py lists them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

from engine.money import Money
from engine.plan import Source, Step
from rules.diagnostics import Diagnostic, Span


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
