"""Activity window: `active from D` / `active until D` bound when a site is billed (inclusive).

    site "lds-02" "Leeds" { active from 2026-06-15 }

In June 2026 the site is billed for 16 of 30 days: usage before the 15th is
reported as `site inactive`, and a spend minimum is prorated to 16/30. In
months entirely outside the window the site is not on the invoice.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Iterable

from engine.plan import Phase, Step
from rules.diagnostics import Diagnostic, Span, error, later
from rules.primitive import Primitive
from rules.written import DateLiteral


@dataclass(frozen=True)
class ActiveFrom:
    date: DateLiteral
    span: Span
    edge = "from"
    primitive = "active_from"


@dataclass(frozen=True)
class ActiveUntil:
    date: DateLiteral
    span: Span
    edge = "until"
    primitive = "active_until"


@dataclass(frozen=True)
class WindowParams:
    edge: str
    date: dt.date

    def as_dict(self) -> dict:
        return {self.edge: self.date.isoformat()}


def steps(node, categories, ctx) -> Iterable[Step]:
    day = node.date.value
    before_after = "before" if node.edge == "from" else "after"
    yield Step(
        Phase.METER,
        f"active_{node.edge}",
        f"billed {node.edge} {day.isoformat()} (inclusive): usage {before_after} is reported as site inactive",
        reads=("billable days",),
        writes=("billable days",),
        params=WindowParams(node.edge, day),
        source=ctx.source(node),
    )


def run(step: Step, sheet) -> None:
    if step.params.edge == "from":
        sheet.first_day = max(sheet.first_day, step.params.date)
    else:
        sheet.last_day = min(sheet.last_day, step.params.date)


def check_block(windows: list) -> Iterable[Diagnostic]:
    """A block has at most one `active from` and one `active until`, the latter not before the former."""
    seen = {}
    for rule in windows:
        if rule.edge in seen:
            yield error(
                "repeated-active",
                rule.span,
                f"`active {rule.edge}` is repeated (first on line {seen[rule.edge].span.line}); a site has one",
            )
        else:
            seen[rule.edge] = rule
    start, end = seen.get("from"), seen.get("until")
    if start and end and start.date.value and end.date.value and end.date.value < start.date.value:
        yield error(
            "active-until-before-from",
            later(start, end),
            f"active until {end.date.text} is before active from {start.date.text}; the site would never be billed",
        )


PRIMITIVES = (
    Primitive(
        name="active_from",
        kind="window",
        build=lambda children, span: ActiveFrom(children[0], span),
        steps=steps,
        run=run,
        check_block=check_block,
    ),
    Primitive(
        name="active_until",
        kind="window",
        build=lambda children, span: ActiveUntil(children[0], span),
        steps=steps,
        run=run,
        check_block=check_block,
    ),
)
