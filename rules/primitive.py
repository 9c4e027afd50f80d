"""What a rule primitive declares, and what it may know while it is checked or compiled.

A primitive is one module that says, for one kind of rule in the language:
how its syntax node is built (`build`), what is wrong with it on its own
(`check`), which plan steps it contributes at a site (`steps`) and what such a
step does to the site's worksheet (`run`). rules/registry.py lists them. What
the compiler's checks need to know of a rule beside it (the categories it
names, whether a cap may straddle it, …) it declares too, so that dsl/ never
names a primitive. A primitive whose steps write a line of a new kind declares
that kind in its module as well (engine/lines.py `register_kind`).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
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


def no_block_checks(rules: list) -> Iterable[Diagnostic]:
    return ()


def governs_nothing(node) -> tuple[str, ...]:
    return ()


@dataclass(frozen=True)
class Primitive:
    name: str      # the grammar alternative (`-> name`) and the step's name in a plan
    kind: str      # price | minimum | cap | toggle | window | allowance | account_minimum | account_cap | commitment
    build: Callable[[list, Span], Any]
    steps: Callable[[Any, tuple[str, ...], Context], Iterable[Step]]
    run: Callable[[Step, Any], None]
    check: Callable[[Any, Context], Iterable[Diagnostic]] = no_checks
    # How a site's rule replaces the defaults: "kind" (one rule of the kind in a
    # site replaces every default of that kind) or "category" (per category).
    inherit: str = "kind"
    # What the compiler's checks and the resolution of defaults know of a rule; they name no primitive.
    governs: Callable[[Any], tuple[str, ...]] = governs_nothing   # the categories it names, as written ("all")
    check_block: Callable[[list], Iterable[Diagnostic]] = no_block_checks   # the block's rules of its kind, together
    overlap_code: str = ""       # its kind's rules at a site need disjoint scopes; the error's code when they do not
    stops_billing: bool = False  # its categories are not billed where it is in force (`disable`)
    inside_caps: bool = False    # a cap counts its lines only if its scope is inside the cap's: it may not straddle one
    cap_limit: Callable[[Any], Decimal] | None = None       # what it limits its scope to per contract year (a cap)
    monthly_spend: Callable[[Any], Decimal] | None = None   # the spend it commits a site (or the account) to monthly
    yearly_commitment: Callable[[Any], Decimal] | None = None   # what it commits the account to per contract year
    when_disabled: str = ""      # what becomes of it where all its categories are disabled (a warning says so)
