"""Shared by primitives whose rule names a scope (`on all`, `on a, b`)."""

from __future__ import annotations

from decimal import Decimal
from typing import Iterable

from rules.diagnostics import Diagnostic, error
from rules.written import Amount, Scope


def scope_reads(scope: Scope, prefix: str = "usage") -> tuple[str, ...]:
    return (f"{prefix}:*",) if scope.is_all else tuple(f"{prefix}:{r.name}" for r in scope.refs)


def scope_label(scope: Scope) -> str:
    return ", ".join(scope.written)


def governed(node) -> tuple[str, ...]:
    """The categories a scoped rule names, as written (`Primitive.governs`)."""
    return node.scope.written


def check_single_category(scope: Scope, code: str, rule: str) -> Iterable[Diagnostic]:
    if scope.is_all or len(scope.refs) != 1:
        yield error(
            code,
            scope.span,
            f"a {rule} counts units of one category, but this one names {scope_label(scope)}; "
            f"write one {rule} line per category",
        )


def check_currency_places(amount: Amount, ctx, what: str, code: str = "too-many-decimals") -> Iterable[Diagnostic]:
    """A spend minimum, cap or account amount is money: more places than the currency has is an error (§5),
    never rounded silently, so that every step uses the figure the contract says."""
    if ctx.money is not None and amount.places > ctx.money.places:
        yield error(
            code,
            amount.span,
            f"the {what} {amount.value} has more decimal places than {ctx.money.currency} has "
            f"({ctx.money.places}); it would round to {ctx.money.round(amount.value)}: write that",
        )


def sum_amounts(lines) -> Decimal:
    return sum((line.amount for line in lines), Decimal(0))
