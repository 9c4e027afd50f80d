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
from rules.diagnostics import Diagnostic, Span, error
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


def check_block(toggles: list[Toggle]) -> Iterable[Diagnostic]:
    """One block may not both disable and enable a category."""
    toggled = {}
    for rule in toggles:
        for ref in rule.refs:
            first = toggled.get(ref.name)
            if first is not None and first[0] != rule.enabled:
                yield error(
                    "disabled-and-enabled",
                    ref.span,
                    f"category '{ref.name}' is both disabled and enabled in this block "
                    f"(see line {first[1].line}); keep one",
                )
            toggled.setdefault(ref.name, (rule.enabled, ref.span))


def build(enabled: bool):
    return lambda children, span: Toggle(enabled, tuple(children), span)


PRIMITIVES = tuple(
    Primitive(name=name, kind="toggle", build=build(name == "enable"), steps=steps, run=run, inherit="category",
              governs=lambda node: node.categories, check_block=check_block, stops_billing=name == "disable")
    for name in ("disable", "enable")
)
