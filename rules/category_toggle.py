"""Category toggle: `disable` / `enable` categories at a site (or in defaults).

    defaults { disable review }
    site "lon-01" { enable review }      # billed here, and only here

A disabled category's usage stays on the invoice with its quantity, amount 0
and `billed: false`; its tiers show what it would have cost. It counts 0
towards minimums and caps.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Iterable

from engine.plan import Phase, Step
from rules.diagnostics import Span
from rules.primitive import Primitive
from rules.written import Ref


@dataclass(frozen=True)
class Toggle:
    enabled: bool
    refs: tuple[Ref, ...]
    span: Span

    @property
    def primitive(self) -> str:
        return "enable" if self.enabled else "disable"

    @property
    def categories(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.refs)


@dataclass(frozen=True)
class DisableParams:
    category: str

    def as_dict(self) -> dict:
        return {"category": self.category, "billed": False}


def steps(node: Toggle, categories, ctx) -> Iterable[Step]:
    if node.enabled:
        return
    for category in categories:
        yield Step(
            Phase.RATE,
            "disable",
            f"{category} is disabled here: its usage is shown with amount 0, not billed",
            reads=(f"usage:{category}",),
            writes=(f"usage:{category}",),
            params=DisableParams(category),
            source=ctx.source(node),
            stage=2,
        )


def run(step: Step, sheet) -> None:
    category = step.params.category
    sheet.disabled.add(category)
    for index, line in enumerate(sheet.lines):
        if line.kind == "usage" and line.category == category:
            sheet.lines[index] = replace(
                line, amount=sheet.money.round(Decimal(0)), billed=False, disabled_by=step.source
            )


def build(enabled: bool):
    return lambda children, span: Toggle(enabled, tuple(children), span)


PRIMITIVES = tuple(
    Primitive(name=name, kind="toggle", build=build(name == "enable"), steps=steps, run=run, inherit="category")
    for name in ("disable", "enable")
)
