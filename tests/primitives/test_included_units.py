"""`included N units monthly on C`: the first N units of C per site and period are free."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from dsl.compile import compile_source
from engine.evaluate import Timeline, bill
from engine.periods import Period
from engine.usage import Usage
from invoicing.invoice import build_invoice, invoice_json

HEADER = """contract "inc" {
    customer "Inc"
    currency USD
    starts 2026-01-01
    category review "Manual review" graduated {
        up to 1_000 at 2.00
        above       at 1.50
    }
    category scan "Scan" rate 0.10
"""


def compile_ok(body: str):
    result = compile_source((HEADER + body + "}\n").encode(), "inc.pricing")
    assert result.ok, [d.render("inc.pricing") for d in result.diagnostics]
    return result


def invoice(body: str, usage: dict[tuple[str, str], str], period: str = "2026-01") -> dict:
    plan = compile_ok(body).plan
    period = Period.parse(period)
    meter = Usage()
    for (site, category), quantity in usage.items():
        meter.add(dt.date(period.year, period.month, 3), site, category, Decimal(quantity))
    return invoice_json(build_invoice(bill(Timeline(((period, plan),)), meter, period)))


def lines(document: dict, site: str) -> list[dict]:
    return next(s for s in document["sites"] if s["site"] == site)["lines"]


def test_free_units_come_off_before_the_tiers():
    document = invoice('defaults { included 200 units monthly on review }\nsite "a" { }\n', {("a", "review"): "1500"})
    (usage,) = lines(document, "a")
    # 1,500 − 200 free = 1,300 priced: 1,000 × 2.00 + 300 × 1.50 = 2,450.00
    assert usage["quantity"] == "1500"
    assert usage["amount"] == "2450.00"
    assert [(t["quantity"], t["unit_price"], t.get("note")) for t in usage["tiers"]] == [
        ("200", "0.00", "included"),
        ("1000", "2.00", None),
        ("300", "1.50", None),
    ]


def test_an_allowance_above_the_usage_makes_the_line_free():
    document = invoice('site "a" { included 500 units monthly on scan }\n', {("a", "scan"): "120"})
    (usage,) = lines(document, "a")
    assert usage["amount"] == "0.00"
    assert usage["billed"] is True
    assert usage["tiers"] == [{"quantity": "120", "unit_price": "0.00", "amount": "0.00", "note": "included"}]


def test_a_site_replaces_the_default_allowance_for_that_category_only():
    body = (
        "defaults { included 100 units monthly on review included 1000 units monthly on scan }\n"
        'site "a" { included 0 units monthly on review }\n'
    )
    document = invoice(body, {("a", "review"): "100", ("a", "scan"): "1000"})
    review, scan = lines(document, "a")
    assert review["amount"] == "200.00"  # 100 × 2.00: the site's 0 replaced the default's 100
    assert scan["amount"] == "0.00"      # the default's 1,000 free scans still apply


def test_a_unit_minimum_is_priced_with_the_allowance_like_the_usage_line():
    body = 'site "a" { included 100 units monthly on scan minimum 1000 units monthly on scan }\n'
    document = invoice(body, {("a", "scan"): "400"})
    usage, minimum = lines(document, "a")
    # usage: (400 − 100) × 0.10 = 30.00; commitment: (1,000 − 100) × 0.10 = 90.00; true-up 60.00
    assert usage["amount"] == "30.00"
    assert minimum["kind"] == "minimum" and minimum["amount"] == "60.00"


def test_the_plan_applies_the_allowance_before_pricing():
    plan = compile_ok('site "a" { included 5 units monthly on scan }\n').plan
    names = [step.primitive for step in plan.site("a").steps]
    assert names.index("included_units") < names.index("flat_rate")


@pytest.mark.parametrize(
    ("rule", "code", "column"),
    [
        ("included -5 units monthly on scan", "negative-amount", 21),
        ("included 5 units monthly on scan, review", "included-scope", 40),
        ("included 5 units monthly on all", "included-scope", 40),
        ("included 5 units monthly on pages", "undeclared-category", 40),
    ],
)
def test_checks(rule, code, column):
    result = compile_source((HEADER + f'site "a" {{ {rule} }}\n' + "}\n").encode(), "inc.pricing")
    assert not result.ok
    found = [(d.span.line, d.span.column, d.code) for d in result.diagnostics]
    assert (10, column, code) in found  # the site is line 10


def test_included_needs_a_number_of_units():
    result = compile_source((HEADER + 'site "a" { included units monthly on scan }\n}\n').encode(), "inc.pricing")
    (diagnostic,) = result.diagnostics
    assert diagnostic.code == "syntax" and "a number" in diagnostic.message
