"""A primitive with a line of its own, added the way docs/adding-a-primitive.md says: every format renders it.

The throwaway primitive `discount P percent on C…` lowers the billed usage of its categories by P percent,
on a line of its own kind (`discount`). The grammar is a file read once, so the test adds the primitive's step
to a compiled plan itself instead of parsing the rule; everything after the plan is the product's own code.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Iterable
from zoneinfo import ZoneInfo

import pypdf
import pytest

from dsl.compile import compile_file
from engine.evaluate import Timeline, bill
from engine.lines import Broken, LineKind, Row, line_kind, register_kind, totals_titles, unregister_kind
from engine.money import Money
from engine.periods import Period
from engine.plan import Phase, Plan, SitePlan, Source, Step, order_steps
from invoicing.invoice import build_invoice, invoice_json
from invoicing.pdf import render_html
from invoicing.render import render_document
from invoicing.stored import invoice_from_document
from metering.aggregate import meter
from rules.diagnostics import Span
from rules.primitive import Context, Primitive
from rules.registry import primitive, register, unregister

EXAMPLE = Path(__file__).resolve().parent / "fixtures" / "examples" / "acme-health"
RULE = "discount 10 percent on standard, expedited"
ZERO = Decimal(0)


# --- the throwaway primitive and its line kind -----------------------------------------------------------------

@dataclass(frozen=True)
class Discount:
    percent: Decimal
    categories: tuple[str, ...]
    span: Span
    primitive = "discount"


@dataclass(frozen=True)
class DiscountParams:
    percent: Decimal
    categories: tuple[str, ...]

    def as_dict(self) -> dict:
        return {"percent": str(self.percent), "on": list(self.categories)}


@dataclass(frozen=True)
class DiscountLine:
    categories: tuple[str, ...]
    percent: Decimal
    in_scope: Decimal
    amount: Decimal          # negative
    explanation: str
    source: Source | None
    kind = "discount"


def steps(node: Discount, categories, ctx: Context) -> Iterable[Step]:
    yield Step(Phase.CAP, "discount", f"take {node.percent} percent off {', '.join(node.categories)}",
               reads=tuple(f"usage:{c}" for c in node.categories), writes=("discount",),
               params=DiscountParams(node.percent, node.categories), source=ctx.source(node), stage=1, run=run)


def run(step: Step, sheet) -> None:
    params: DiscountParams = step.params
    in_scope = sum((line.amount for line in sheet.lines
                    if line.kind == "usage" and line.category in params.categories), ZERO)
    amount = -sheet.money.round(in_scope * params.percent / 100)
    if amount:
        sheet.lines.append(DiscountLine(params.categories, params.percent, in_scope, amount,
                                        f"{params.percent} percent off {in_scope}", step.source))


def _json(line: DiscountLine, money: Money) -> dict:
    return {"categories": list(line.categories), "percent": f"{line.percent:f}", "in_scope": money.format(line.in_scope),
            "amount": money.format(line.amount), "explanation": line.explanation,
            "source": line.source.as_dict() if line.source else None}


def _from_json(data: dict) -> DiscountLine:
    source = data["source"]
    return DiscountLine(tuple(data["categories"]), Decimal(data["percent"]), Decimal(data["in_scope"]),
                        Decimal(data["amount"]), data["explanation"],
                        Source(source["line"], source["column"], source["text"], source["block"]) if source else None)


def _row(line: DiscountLine, money: Money) -> Row:
    return Row(f"Discount on {', '.join(line.categories)}", "Discount", line.amount, line.categories, line.source,
               explanation=line.explanation, figures={"in_scope": money.format(line.in_scope)})


def _difference(old, new, period, money) -> list:
    amount = (new.amount if new else ZERO) - (old.amount if old else ZERO)
    line = new or old
    return [DiscountLine(line.categories, line.percent, line.in_scope, amount,
                         f"late usage for {period}: discount", line.source)] if amount else []


def _invariants(line: DiscountLine) -> Iterable[Broken]:
    if line.amount > 0:
        yield Broken("a discount only reduces", ZERO, line.amount, line.explanation)


DISCOUNT_KIND = LineKind(name="discount", line=DiscountLine, title="Discount", plural="Discounts",
                         to_json=_json, from_json=_from_json, row=_row, match_key=lambda line: line.categories,
                         difference=_difference, invariants=_invariants)
DISCOUNT = Primitive(name="discount", kind="discount", build=lambda children, span: Discount(*children, span),
                     steps=steps, run=run)


@pytest.fixture
def discount_registered():
    register(DISCOUNT)
    register_kind(DISCOUNT_KIND)
    yield
    unregister("discount")
    unregister_kind("discount")


# --- an invoice with a discount line ---------------------------------------------------------------------------

def _with_discount(plan: Plan, site: str) -> Plan:
    """The plan with the rule `discount 10 percent on standard, expedited` written in `site`'s block."""
    terms = plan.terms
    node = Discount(Decimal(10), ("standard", "expedited"), Span(1, 1, 1, len(RULE) + 1))
    ctx = Context(terms.category_ids, dict(terms.categories), terms.money, RULE + "\n", f"site {site}", site)
    sites = tuple(SitePlan(s.site, s.name, order_steps(s.steps + tuple(DISCOUNT.steps(node, node.categories, ctx))))
                  if s.site == site else s for s in plan.sites)
    return Plan(terms, plan.steps, sites)


@pytest.fixture
def invoice(discount_registered):
    plan = compile_file(str(EXAMPLE / "contract.pricing")).plan
    plan = _with_discount(plan, "lon-01")
    period = Period(2026, 6)
    metered = meter([str(EXAMPLE / "events.jsonl")], plan.terms.contract_id, ZoneInfo(plan.terms.timezone),
                    lambda rejection: None, until=period)
    result = bill(Timeline(((Period(2026, 4), plan),)), metered.usage, period)
    return build_invoice(result, metered.unbilled.period(period))


def test_the_primitive_and_its_kind_are_found_while_registered_and_gone_after(discount_registered):
    assert primitive("discount") is DISCOUNT and line_kind("discount") is DISCOUNT_KIND
    assert list(totals_titles()) == ["usage", "minimum", "cap", "account", "discount"]


def test_the_json_has_the_line_and_its_total(invoice):
    document = json.loads(render_document(invoice, "json"))
    lines = [line for site in document["sites"] for line in site["lines"]]
    discounts = [line for line in lines if line["kind"] == "discount"]
    assert len(discounts) == 1
    assert discounts[0] | {"source": None} == {
        "kind": "discount", "categories": ["standard", "expedited"], "percent": "10",
        "in_scope": discounts[0]["in_scope"], "amount": discounts[0]["amount"],
        "explanation": f"10 percent off {discounts[0]['in_scope']}", "source": None}
    assert Decimal(discounts[0]["amount"]) == -(Decimal(discounts[0]["in_scope"]) / 10).quantize(Decimal("0.01"))
    assert discounts[0]["source"]["text"] == RULE and discounts[0]["source"]["block"] == "site lon-01"
    totals = {key: Decimal(value) for key, value in document["totals"].items()}
    assert list(totals) == ["usage", "minimum", "cap", "discount", "total"]
    assert totals["discount"] == Decimal(discounts[0]["amount"]) < 0
    for site in document["sites"]:
        assert sum(Decimal(line["amount"]) for line in site["lines"]) == Decimal(site["total"])
    for key in ("usage", "minimum", "cap", "discount"):
        assert totals[key] == sum(Decimal(line["amount"]) for line in lines if line["kind"] == key)
    assert totals["total"] == sum(Decimal(line["amount"]) for line in lines) == sum(
        totals[key] for key in ("usage", "minimum", "cap", "discount"))
    assert invoice_json(invoice_from_document(document, timezone=invoice.timezone)) == document


def test_the_text_titles_the_line_and_adds_up(invoice):
    text = render_document(invoice, "text")
    totals = invoice.totals
    discount = invoice.money.format(totals["discount"])
    assert re.search(rf"^  Discount on standard, expedited \[line 1\] +{re.escape(discount)}$", text, re.M)
    assert "      10 percent off " in text
    summary = {m[1]: Decimal(m[2]) for m in re.finditer(r"^(Usage|Minimum true-ups|Cap reductions|Discounts|"
                                                        r"Total GBP) +(-?[\d.]+)$", text, re.M)}
    assert summary["Discounts"] == totals["discount"]
    assert summary["Total GBP"] == totals["total"] == sum(value for key, value in summary.items() if key != "Total GBP")


def test_the_csv_has_the_line_and_a_total_row_for_its_kind(invoice):
    rows = list(csv.DictReader(io.StringIO(render_document(invoice, "csv"))))
    discount = [row for row in rows if row["kind"] == "discount"]
    assert [(row["site"], row["categories"], row["description"], row["in_scope (GBP)"], row["contract_line"])
            for row in discount] == [("lon-01", "standard expedited", "Discount", discount[0]["in_scope (GBP)"], "1")]
    totals = {row["description"]: Decimal(row["amount (GBP)"]) for row in rows if row["kind"] == "invoice total"}
    assert list(totals) == ["usage", "minimum", "cap", "discount", "total"]
    for key in ("usage", "minimum", "cap", "discount"):
        assert totals[key] == sum(Decimal(row["amount (GBP)"]) for row in rows if row["kind"] == key)
    line_kinds = ("usage", "minimum", "cap", "discount")
    assert totals["total"] == sum(Decimal(row["amount (GBP)"]) for row in rows if row["kind"] in line_kinds)
    assert totals["total"] == sum(Decimal(row["amount (GBP)"]) for row in rows if row["kind"] == "site total")


def test_the_pdf_prints_the_line_its_column_and_its_check(invoice):
    data = render_document(invoice, "pdf")
    text = " ".join(" ".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(data)).pages).split())
    amount = f"{invoice.totals['discount']:,.2f}"
    assert "Discount on standard, expedited" in text
    assert f"Discounts {amount} Total due" in text                       # the summary
    assert f"Discounts of the 2 sites {amount} Discounts {amount} agrees" in text   # the verification page
    assert "Usage + minimum true-ups + cap reductions + discounts" in text
    assert render_html(invoice).count('<col class="c-kind">') == 4   # the table of sites: a column per kind
