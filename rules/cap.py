"""Annual cap: a limit on what a site is billed for some lines in a contract year.

    cap 10_000.00 yearly on all

If 9,000.00 was counted in earlier periods of the contract year and this
period's in-scope lines come to 3,000.00, the reduction is
min(3,000.00, max(0, 9,000.00 + 3,000.00 − 10,000.00)) = 2,000.00: a line
`cap all  limit 10,000.00  counted before 9,000.00  amount −2,000.00`.
In scope: the usage lines of its categories and the true-ups of minimums whose
scope lies wholly inside it. The count is kept per site and scope as written.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Iterable

from engine.lines import CapLine
from engine.plan import Phase, Step
from rules.diagnostics import Span
from rules.pricing import check_not_negative
from rules.primitive import Primitive
from rules.scoped import check_currency_places, governed, scope_label, scope_reads, sum_amounts
from rules.written import Amount, Scope


@dataclass(frozen=True)
class Cap:
    amount: Amount
    scope: Scope
    span: Span
    primitive = "cap"


@dataclass(frozen=True)
class CapParams:
    limit: Decimal
    scope: Scope
    categories: frozenset[str]

    def as_dict(self) -> dict:
        return {"limit": str(self.limit), "on": list(self.scope.written), "counted_per": "site and contract year"}


def check(node: Cap, ctx) -> Iterable:
    yield from check_not_negative(node.amount, "the cap")
    yield from check_currency_places(node.amount, ctx, "cap")


def steps(node: Cap, categories, ctx) -> Iterable[Step]:
    yield Step(
        Phase.CAP,
        "cap",
        f"limit {scope_label(node.scope)} to {node.amount.value} per contract year, "
        f"minimum true-ups inside that scope included",
        reads=(*scope_reads(node.scope), *scope_reads(node.scope, "minimum"), "cap count"),
        writes=(f"cap:{scope_label(node.scope)}", "cap count"),
        params=CapParams(node.amount.value, node.scope, node.scope.categories(ctx.declared)),
        source=ctx.source(node),
    )


def run(step: Step, sheet) -> None:
    params: CapParams = step.params
    in_scope = [
        line
        for line in sheet.lines
        if (line.kind == "usage" and line.category in params.categories)
        or (line.kind == "minimum" and line.scope <= params.categories)
    ]
    now = sum_amounts(in_scope)
    before = sheet.ledger.before(sheet.site, params.scope.key)
    limit = sheet.money.round(params.limit)  # as the too-many-decimals warning says
    reduction = min(now, max(Decimal(0), before + now - limit))
    money = sheet.money   # figures in the explanation as amounts: a count carried as 0 reads 0.00
    sheet.ledger.count(sheet.site, params.scope.key, now - reduction)
    if not reduction:
        return
    sheet.lines.append(
        CapLine(
            categories=params.scope.written,
            limit=limit,
            counted_before=before,
            in_scope=now,
            amount=-reduction,
            explanation=f"annual cap {money.format(limit)} on {scope_label(params.scope)}; "
            f"{money.format(before)} counted before this period, {money.format(now)} in scope now; "
            f"reduction {money.format(reduction)}",
            source=step.source,
        )
    )


PRIMITIVES = (
    Primitive(
        name="cap",
        kind="cap",
        build=lambda children, span: Cap(children[0], children[1], span),
        check=check,
        steps=steps,
        run=run,
        governs=governed,
        overlap_code="overlapping-caps",
        cap_limit=lambda node: node.amount.value,
    ),
)
