"""Contract text to evaluation plan: parse, check, then lay out the steps per site.

    result = compile_source(path.read_bytes(), "contract.pricing")
    result.diagnostics   # every error and warning, in text order
    result.plan          # engine.plan.Plan, or None when there are errors
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

from dsl.checks import run_checks
from dsl.parse import parse
from dsl.resolve import effective_rules
from dsl.syntax import Contract, RateOverride, Site
from engine.account import invoice_total_step
from engine.money import Money, is_currency
from engine.plan import Plan, SitePlan, Source, Step, Terms, order_steps
from engine.steps import classify_step, meter_step, total_step
from rules.diagnostics import Diagnostic, Span, error, has_errors, ordered
from rules.primitive import Context
from rules.registry import primitive


@dataclass(frozen=True)
class Compiled:
    filename: str
    text: str
    contract: Contract | None
    diagnostics: tuple[Diagnostic, ...]
    plan: Plan | None

    @property
    def ok(self) -> bool:
        return not has_errors(self.diagnostics)


def compile_file(path: str | Path) -> Compiled:
    """Raises OSError when the file cannot be read; everything else is a diagnostic."""
    path = Path(path)
    return compile_source(path.read_bytes(), str(path))


def compile_source(data: bytes, filename: str = "<contract>") -> Compiled:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        diagnostic = error("not-utf8", Span(line, column, line, column), "the file is not UTF-8 text; save it as UTF-8")
        return Compiled(filename, "", None, (diagnostic,), None)
    contract, diagnostics = parse(text)
    if contract is None:
        return Compiled(filename, text, None, tuple(diagnostics), None)
    ctx = _context(contract, text)
    diagnostics = ordered(run_checks(contract, ctx))
    plan = None if has_errors(diagnostics) else build_plan(contract, ctx, hashlib.sha256(data).hexdigest())
    return Compiled(filename, text, contract, tuple(diagnostics), plan)


def _context(contract: Contract, text: str) -> Context:
    currency = contract.header("currency")
    rounding = contract.header("rounding")
    money = (
        Money.of(currency.value, rounding.value if rounding else "half_up")
        if currency and is_currency(currency.value)
        else None
    )
    labels = {c.id: c.label for c in contract.categories}
    return Context(contract.category_ids, labels, money, text, "contract")


def build_plan(contract: Contract, ctx: Context, version: str) -> Plan:
    timezone = contract.header("timezone")
    ends = contract.header("ends")
    terms = Terms(
        contract_id=contract.id,
        customer=contract.header("customer").value,
        money=ctx.money,
        starts=contract.header("starts").value.value,
        ends=ends.value.value if ends else None,
        timezone=timezone.value if timezone else "UTC",
        categories=tuple((c.id, c.label) for c in contract.categories),
        version=version,
    )
    sites = tuple(
        SitePlan(site.id, site.name, order_steps(_site_steps(contract, site, ctx))) for site in contract.sites
    )
    contract_source = Source(contract.span.line, contract.span.column, f'contract "{contract.id}"', "contract")
    return Plan(terms, (classify_step(terms, contract_source),), sites, _account_steps(contract, ctx))


def _account_steps(contract: Contract, ctx: Context) -> tuple[Step, ...] | None:
    """The account phase (its rules in their primitives' order, whatever the written one), then the invoice total."""
    if contract.account is None:
        return None
    account = ctx.in_block("account")
    steps = [step for node in contract.account.rules
             for step in _runnable(primitive(node.primitive).steps(node, (), account))]
    return order_steps([*steps, invoice_total_step()])


def _site_steps(contract: Contract, site: Site, ctx: Context) -> Iterator[Step]:
    view = effective_rules(contract, site)
    yield meter_step(site.id)
    for category in contract.categories:
        price, block = category.price, f"category {category.id}"
        for rule in view:
            if isinstance(rule.node, RateOverride) and category.id in rule.categories:
                price, block = rule.node.price, rule.block
        yield from _runnable(primitive(price.primitive).steps(price, (category.id,), ctx.in_block(block, site.id)))
    for rule in view:
        if rule.kind == "rate":
            continue
        node = rule.node
        yield from _runnable(primitive(node.primitive).steps(node, rule.categories, ctx.in_block(rule.block, site.id)))
    yield total_step(site.id)


def _runnable(steps) -> Iterator[Step]:
    """Each step with the runner of the primitive it names: the evaluator needs nothing else."""
    for step in steps:
        yield step if step.run is not None else replace(step, run=primitive(step.primitive).run)

