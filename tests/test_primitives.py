"""Each rule primitive by example, through the Python API: compile, meter, bill, invoice.

Every expected amount is worked out by hand in the comment beside it (pricing-language §4).
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from dsl.compile import compile_source
from engine.evaluate import OutsideContract, Timeline, bill
from engine.periods import Period
from invoicing.invoice import build_invoice, invoice_json
from metering.aggregate import meter
from rules.diagnostics import Severity


def contract(body: str, *, currency="GBP", starts="2026-01-01", rounding="half_up", timezone="UTC", ends=None,
             name="t") -> str:
    ends_line = f"    ends {ends}\n" if ends else ""
    return (
        f'contract "{name}" {{\n    customer "T Ltd"\n    currency {currency}\n    starts {starts}\n{ends_line}'
        f'    timezone "{timezone}"\n    rounding {rounding}\n{body}\n}}\n'
    )


def compiled_plan(text: str):
    result = compile_source(text.encode())
    errors = [d.render("contract") for d in result.diagnostics if d.severity.value == "error"]
    assert not errors, errors
    return result.plan


def invoice(text: str, events, period: str, *, amendments=(), tmp_path: Path, customer="t") -> dict:
    """events: (time, site, category, quantity) or (time, site, category, quantity, id)."""
    plan = compiled_plan(text)
    versions = [(Period.of(plan.terms.starts), plan)]
    versions += [(Period.parse(at), compiled_plan(amended)) for at, amended in amendments]
    path = tmp_path / "events.jsonl"
    with path.open("w") as out:
        for number, event in enumerate(events, 1):
            time, site, category, quantity, *given_id = event
            out.write(json.dumps({
                "specversion": "1.0", "id": given_id[0] if given_id else f"e{number}", "source": "test",
                "type": "unit.processed", "time": time,
                "data": {"customer": customer, "site": site, "category": category, "quantity": str(quantity)},
            }) + "\n")
    wanted = Period.parse(period)
    metered = meter([str(path)], plan.terms.contract_id, ZoneInfo(plan.terms.timezone), until=wanted)
    result = bill(Timeline(tuple(versions)), metered.usage, wanted)
    return invoice_json(build_invoice(result, metered.unbilled.period(wanted)))


def site(doc: dict, site_id: str) -> dict:
    return next(s for s in doc["sites"] if s["site"] == site_id)


def lines(doc: dict, site_id: str, kind: str) -> list[dict]:
    return [l for l in site(doc, site_id)["lines"] if l["kind"] == kind]


def usage(doc: dict, site_id: str, category: str) -> dict:
    return next(l for l in lines(doc, site_id, "usage") if l["category"] == category)


def amounts(doc: dict, site_id: str, kind: str) -> list[str]:
    return [l["amount"] for l in lines(doc, site_id, kind)]


def assert_totals_add_up(doc: dict) -> None:
    for s in doc["sites"]:
        assert Decimal(s["total"]) == sum((Decimal(l["amount"]) for l in s["lines"]), Decimal(0))
    t = doc["totals"]
    assert Decimal(t["total"]) == Decimal(t["usage"]) + Decimal(t["minimum"]) + Decimal(t["cap"])
    assert Decimal(t["total"]) == sum((Decimal(s["total"]) for s in doc["sites"]), Decimal(0))


ONE_SITE = """\
    category a "A" rate 0.85
    site "s1" { }"""


# --- flat rate ------------------------------------------------------------------------


def test_flat_rate_is_quantity_times_rate(tmp_path):
    doc = invoice(contract(ONE_SITE), [("2026-01-10T10:00:00Z", "s1", "a", 1000), ("2026-01-11T10:00:00Z", "s1", "a", 200)],
                  "2026-01", tmp_path=tmp_path)
    line = usage(doc, "s1", "a")
    # 1,200 × 0.85 = 1,020.00
    assert (line["quantity"], line["amount"], line["billed"]) == ("1200", "1020.00", True)
    assert line["tiers"] == [{"quantity": "1200", "unit_price": "0.85", "amount": "1020.00"}]
    assert doc["totals"] == {"usage": "1020.00", "minimum": "0.00", "cap": "0.00", "total": "1020.00"}
    assert_totals_add_up(doc)


def test_events_adding_up_to_zero_still_get_a_usage_line(tmp_path):
    doc = invoice(contract(ONE_SITE), [("2026-01-10T10:00:00Z", "s1", "a", 0)], "2026-01", tmp_path=tmp_path)
    line = usage(doc, "s1", "a")
    # 0 × 0.85 = 0.00
    assert (line["quantity"], line["amount"]) == ("0", "0.00")


def test_a_site_without_usage_is_listed_with_total_zero(tmp_path):
    doc = invoice(contract(ONE_SITE), [], "2026-01", tmp_path=tmp_path)
    assert doc["sites"] == [{"site": "s1", "name": "s1", "lines": [], "total": "0.00"}]
    assert doc["unbilled"] == []


def test_fractional_quantities_are_exact(tmp_path):
    doc = invoice(contract(ONE_SITE), [("2026-01-10T10:00:00Z", "s1", "a", "0.1")] * 1
                  + [("2026-01-10T11:00:00Z", "s1", "a", "0.2")], "2026-01", tmp_path=tmp_path)
    # 0.1 + 0.2 = 0.3 exactly (not 0.30000000000000004); 0.3 × 0.85 = 0.255 → half_up 0.26
    assert (usage(doc, "s1", "a")["quantity"], usage(doc, "s1", "a")["amount"]) == ("0.3", "0.26")


# --- graduated ------------------------------------------------------------------------

GRADUATED = """\
    category review "Review" graduated {
        up to 1_000 at 2.00
        up to 5_000 at 1.50
        above       at 1.10
    }
    site "s1" { }"""


def test_graduated_prices_each_tier_at_its_own_price(tmp_path):
    doc = invoice(contract(GRADUATED), [("2026-01-05T00:00:00Z", "s1", "review", 6200)], "2026-01", tmp_path=tmp_path)
    line = usage(doc, "s1", "review")
    # 1,000 × 2.00 + 4,000 × 1.50 + 1,200 × 1.10 = 2,000.00 + 6,000.00 + 1,320.00 = 9,320.00
    assert line["amount"] == "9320.00"
    assert [(t["quantity"], t["unit_price"], t["amount"]) for t in line["tiers"]] == [
        ("1000", "2.00", "2000.00"), ("4000", "1.50", "6000.00"), ("1200", "1.10", "1320.00"),
    ]


def test_graduated_quantity_exactly_on_a_bound_stays_in_that_tier(tmp_path):
    doc = invoice(contract(GRADUATED), [("2026-01-05T00:00:00Z", "s1", "review", 1000)], "2026-01", tmp_path=tmp_path)
    line = usage(doc, "s1", "review")
    # 1,000 × 2.00 = 2,000.00, one tier row
    assert line["amount"] == "2000.00"
    assert len(line["tiers"]) == 1


def test_graduated_line_is_rounded_once_not_per_tier(tmp_path):
    body = """\
    category a "A" graduated {
        up to 1 at 0.005
        above at 0.005
    }
    site "s1" { }"""
    doc = invoice(contract(body), [("2026-01-05T00:00:00Z", "s1", "a", 2)], "2026-01", tmp_path=tmp_path)
    # exact 1 × 0.005 + 1 × 0.005 = 0.010 → 0.01; rounding each tier half_up would give 0.01 + 0.01 = 0.02
    assert usage(doc, "s1", "a")["amount"] == "0.01"


# --- volume ---------------------------------------------------------------------------

VOLUME = """\
    category pages "Pages" volume {
        up to 1_000 at 0.10
        above       at 0.08
    }
    site "s1" { }"""


@pytest.mark.parametrize("quantity, amount, price", [
    (1000, "100.00", "0.10"),  # 1,000 ≤ 1,000: every unit at 0.10 → 100.00
    (1001, "80.08", "0.08"),   # 1,001 > 1,000: every unit at 0.08 → 80.08
    (1, "0.10", "0.10"),       # 1 × 0.10
])
def test_volume_prices_every_unit_at_the_tier_the_whole_quantity_falls_in(tmp_path, quantity, amount, price):
    doc = invoice(contract(VOLUME), [("2026-01-05T00:00:00Z", "s1", "pages", quantity)], "2026-01", tmp_path=tmp_path)
    line = usage(doc, "s1", "pages")
    assert line["amount"] == amount
    assert [(t["quantity"], t["unit_price"]) for t in line["tiers"]] == [(str(quantity), price)]


# --- rounding and currencies -------------------------------------------------------------


@pytest.mark.parametrize("rounding, rate, expected", [
    ("half_up", "0.125", "0.13"),    # 0.125 → half away from zero → 0.13
    ("half_even", "0.125", "0.12"),  # 0.125 → even neighbour → 0.12
    ("half_up", "0.135", "0.14"),    # 0.135 → 0.14
    ("half_even", "0.135", "0.14"),  # 0.135 → even neighbour is 0.14
])
def test_rounding_mode_decides_the_half_cent(tmp_path, rounding, rate, expected):
    body = f'    category a "A" rate {rate}\n    site "s1" {{ }}'
    doc = invoice(contract(body, rounding=rounding), [("2026-01-05T00:00:00Z", "s1", "a", 1)], "2026-01",
                  tmp_path=tmp_path)
    assert usage(doc, "s1", "a")["amount"] == expected


@pytest.mark.parametrize("rounding, expected", [("half_up", "63"), ("half_even", "62")])
def test_jpy_amounts_have_no_minor_unit(tmp_path, rounding, expected):
    body = '    category a "A" rate 12.5\n    site "s1" { }'
    doc = invoice(contract(body, currency="JPY", rounding=rounding), [("2026-01-05T00:00:00Z", "s1", "a", 5)],
                  "2026-01", tmp_path=tmp_path)
    # 5 × 12.5 = 62.5 yen → half_up 63, half_even 62; no decimal point at all
    assert usage(doc, "s1", "a")["amount"] == expected
    assert doc["totals"]["total"] == expected and doc["totals"]["cap"] == "0"


def test_jpy_minimum_true_up_in_whole_yen(tmp_path):
    body = '    category a "A" rate 12.5\n    site "s1" {\n        minimum 10_000 monthly on a\n    }'
    doc = invoice(contract(body, currency="JPY"), [("2026-01-05T00:00:00Z", "s1", "a", 5)], "2026-01",
                  tmp_path=tmp_path)
    # usage 62.5 → 63; true-up 10,000 − 63 = 9,937; total 10,000
    assert amounts(doc, "s1", "minimum") == ["9937"]
    assert lines(doc, "s1", "minimum")[0]["commitment"] == "10000"
    assert doc["totals"]["total"] == "10000"


@pytest.mark.parametrize("rounding, expected", [("half_up", "1.001"), ("half_even", "1.000")])
def test_kwd_amounts_have_three_places(tmp_path, rounding, expected):
    body = '    category a "A" rate 0.3335\n    site "s1" { }'
    doc = invoice(contract(body, currency="KWD", rounding=rounding), [("2026-01-05T00:00:00Z", "s1", "a", 3)],
                  "2026-01", tmp_path=tmp_path)
    # 3 × 0.3335 = 1.0005 dinar → half_up 1.001, half_even 1.000 (0 is even)
    assert usage(doc, "s1", "a")["amount"] == expected
    assert doc["totals"]["minimum"] == "0.000"


def test_kwd_cap_reduction_in_fils(tmp_path):
    body = '    category a "A" rate 0.125\n    site "s1" {\n        cap 1.000 yearly on all\n    }'
    doc = invoice(contract(body, currency="KWD"), [("2026-01-05T00:00:00Z", "s1", "a", 9)], "2026-01",
                  tmp_path=tmp_path)
    # 9 × 0.125 = 1.125; reduction min(1.125, max(0, 0 + 1.125 − 1.000)) = 0.125 → total 1.000
    assert amounts(doc, "s1", "cap") == ["-0.125"]
    assert site(doc, "s1")["total"] == "1.000"


# --- spend minimum --------------------------------------------------------------------

SPEND_MIN = """\
    category a "A" rate 1.00
    category b "B" rate 1.00
    site "s1" {
        minimum 500.00 monthly on a
    }"""


def test_spend_minimum_trues_up_to_the_commitment(tmp_path):
    doc = invoice(contract(SPEND_MIN), [("2026-01-05T00:00:00Z", "s1", "a", 100), ("2026-01-05T00:00:00Z", "s1", "b", 1000)],
                  "2026-01", tmp_path=tmp_path)
    # basis is a only: 100 × 1.00 = 100.00; true-up 500.00 − 100.00 = 400.00 (b's 1,000.00 is out of scope)
    minimum = lines(doc, "s1", "minimum")
    assert [(m["categories"], m["commitment"], m["amount"]) for m in minimum] == [(["a"], "500.00", "400.00")]
    # total 100.00 + 1,000.00 + 400.00 = 1,500.00
    assert site(doc, "s1")["total"] == "1500.00"
    assert_totals_add_up(doc)


def test_spend_minimum_met_adds_no_line(tmp_path):
    doc = invoice(contract(SPEND_MIN), [("2026-01-05T00:00:00Z", "s1", "a", 500)], "2026-01", tmp_path=tmp_path)
    # 500 × 1.00 = 500.00 ≥ 500.00: no true-up line at all
    assert lines(doc, "s1", "minimum") == []


def test_spend_minimum_applies_in_a_month_without_usage(tmp_path):
    doc = invoice(contract(SPEND_MIN), [], "2026-01", tmp_path=tmp_path)
    # basis 0.00 → true-up 500.00
    assert amounts(doc, "s1", "minimum") == ["500.00"]
    assert doc["totals"]["total"] == "500.00"
    # No usage line at all: the explanation still shows the basis as an amount (hypothesis found "billed usage 0")
    assert "billed usage 0.00; true-up 500.00" in lines(doc, "s1", "minimum")[0]["explanation"]


def test_spend_minimum_counts_a_disabled_category_as_zero(tmp_path):
    body = """\
    category a "A" rate 1.00
    category b "B" rate 1.00
    site "s1" {
        minimum 500.00 monthly on a, b
        disable b
    }
    site "s2" { }"""
    doc = invoice(contract(body), [("2026-01-05T00:00:00Z", "s1", "a", 100), ("2026-01-05T00:00:00Z", "s1", "b", 300)],
                  "2026-01", tmp_path=tmp_path)
    # a 100.00 billed, b 300 units disabled → 0.00; true-up 500.00 − 100.00 = 400.00
    assert usage(doc, "s1", "b")["amount"] == "0.00"
    assert amounts(doc, "s1", "minimum") == ["400.00"]


def test_spend_minimum_prorated_by_active_from(tmp_path):
    body = """\
    category a "A" rate 1.00
    site "s1" {
        active from 2026-06-15
        minimum 500.00 monthly on a
    }"""
    doc = invoice(contract(body), [("2026-06-20T12:00:00Z", "s1", "a", 10)], "2026-06", tmp_path=tmp_path)
    # June has 30 days; active 15..30 = 16 days; 500.00 × 16 / 30 = 266.666… → 266.67
    # usage 10 × 1.00 = 10.00; true-up 266.67 − 10.00 = 256.67
    minimum = lines(doc, "s1", "minimum")[0]
    assert (minimum["commitment"], minimum["amount"]) == ("266.67", "256.67")


def test_spend_minimum_prorated_by_active_until(tmp_path):
    body = """\
    category a "A" rate 1.00
    site "s1" {
        active until 2026-06-10
        minimum 500.00 monthly on a
    }"""
    doc = invoice(contract(body), [], "2026-06", tmp_path=tmp_path)
    # active 1..10 = 10 of 30 days: 500.00 × 10 / 30 = 166.666… → 166.67
    assert [(m["commitment"], m["amount"]) for m in lines(doc, "s1", "minimum")] == [("166.67", "166.67")]


def test_spend_minimum_prorated_by_contract_ends(tmp_path):
    body = """\
    category a "A" rate 1.00
    site "s1" {
        minimum 500.00 monthly on a
    }"""
    doc = invoice(contract(body, ends="2026-06-20"), [("2026-06-25T12:00:00Z", "s1", "a", 7)], "2026-06",
                  tmp_path=tmp_path)
    # billed 1..20 = 20 of 30 days: 500.00 × 20 / 30 = 333.333… → 333.33; usage after `ends` is not billed
    assert [(m["commitment"], m["amount"]) for m in lines(doc, "s1", "minimum")] == [("333.33", "333.33")]
    assert lines(doc, "s1", "usage") == []
    assert [(u["reason"], u["events"], u["quantity"]) for u in doc["unbilled"]] == [("outside contract", 1, "7")]


def test_period_after_contract_ends_is_refused(tmp_path):
    with pytest.raises(OutsideContract):
        invoice(contract(SPEND_MIN, ends="2026-06-20"), [], "2026-07", tmp_path=tmp_path)


def test_spend_minimum_proration_in_february_of_a_leap_year(tmp_path):
    body = """\
    category a "A" rate 1.00
    site "s1" {
        active from 2028-02-20
        minimum 290.00 monthly on a
    }"""
    doc = invoice(contract(body, starts="2028-01-01"), [], "2028-02", tmp_path=tmp_path)
    # February 2028 has 29 days; active 20..29 = 10 days: 290.00 × 10 / 29 = 100.00
    assert amounts(doc, "s1", "minimum") == ["100.00"]


# --- unit minimum ---------------------------------------------------------------------

UNIT_MIN = """\
    category a "A" rate 0.85
    site "s1" {
        minimum 1_000 units monthly on a
    }"""


def test_unit_minimum_trues_up_to_the_price_of_the_committed_units(tmp_path):
    doc = invoice(contract(UNIT_MIN), [("2026-01-05T00:00:00Z", "s1", "a", 600)], "2026-01", tmp_path=tmp_path)
    # usage 600 × 0.85 = 510.00; price(1,000) = 850.00; true-up 850.00 − 510.00 = 340.00
    minimum = lines(doc, "s1", "minimum")
    assert [(m["categories"], m["commitment"], m["amount"]) for m in minimum] == [(["a"], "1000", "340.00")]
    assert site(doc, "s1")["total"] == "850.00"


def test_unit_minimum_met_adds_no_line(tmp_path):
    doc = invoice(contract(UNIT_MIN), [("2026-01-05T00:00:00Z", "s1", "a", 1000)], "2026-01", tmp_path=tmp_path)
    assert lines(doc, "s1", "minimum") == []


def test_unit_minimum_without_usage_is_the_full_price(tmp_path):
    doc = invoice(contract(UNIT_MIN), [], "2026-01", tmp_path=tmp_path)
    # price(1,000) = 1,000 × 0.85 = 850.00
    assert amounts(doc, "s1", "minimum") == ["850.00"]
    assert "billed 0.00; true-up 850.00" in lines(doc, "s1", "minimum")[0]["explanation"]


def test_unit_minimum_on_a_disabled_category_is_zero(tmp_path):
    body = """\
    category a "A" rate 0.85
    site "s1" {
        minimum 1_000 units monthly on a
        disable a
    }
    site "s2" { }"""
    doc = invoice(contract(body), [("2026-01-05T00:00:00Z", "s1", "a", 600)], "2026-01", tmp_path=tmp_path)
    assert lines(doc, "s1", "minimum") == []
    assert site(doc, "s1")["total"] == "0.00"


def test_unit_minimum_uses_volume_price_of_the_committed_units(tmp_path):
    body = """\
    category pages "Pages" volume {
        up to 1_000 at 0.10
        above       at 0.08
    }
    site "s1" {
        minimum 2_000 units monthly on pages
    }"""
    doc = invoice(contract(body), [("2026-01-05T00:00:00Z", "s1", "pages", 500)], "2026-01", tmp_path=tmp_path)
    # usage 500 × 0.10 = 50.00; price(2,000) = 2,000 × 0.08 = 160.00; true-up 110.00
    assert amounts(doc, "s1", "minimum") == ["110.00"]


def test_unit_minimum_with_volume_never_goes_negative(tmp_path):
    body = """\
    category pages "Pages" volume {
        up to 1_000 at 0.10
        above       at 0.08
    }
    site "s1" {
        minimum 1_001 units monthly on pages
    }"""
    doc = invoice(contract(body), [("2026-01-05T00:00:00Z", "s1", "pages", 1000)], "2026-01", tmp_path=tmp_path)
    # usage 1,000 × 0.10 = 100.00; price(1,001) = 1,001 × 0.08 = 80.08 < 100.00 → no true-up
    assert lines(doc, "s1", "minimum") == []
    assert site(doc, "s1")["total"] == "100.00"


def test_unit_minimum_uses_the_site_rate_override(tmp_path):
    body = """\
    category a "A" rate 0.85
    site "s1" {
        rate a 1.00
        minimum 1_000 units monthly on a
    }"""
    doc = invoice(contract(body), [("2026-01-05T00:00:00Z", "s1", "a", 600)], "2026-01", tmp_path=tmp_path)
    # at the site's rate 1.00: usage 600.00, price(1,000) 1,000.00, true-up 400.00
    assert amounts(doc, "s1", "minimum") == ["400.00"]


def test_unit_minimum_is_not_prorated(tmp_path):
    body = """\
    category a "A" rate 1.00
    site "s1" {
        active from 2026-06-16
        minimum 100 units monthly on a
    }"""
    doc = invoice(contract(body), [], "2026-06", tmp_path=tmp_path)
    # half a month active, but price(100) = 100.00 in full
    assert amounts(doc, "s1", "minimum") == ["100.00"]


# --- cap ------------------------------------------------------------------------------

CAP = """\
    category a "A" rate 1.00
    category b "B" rate 1.00
    site "s1" {
        cap 1_000.00 yearly on a
    }"""


def test_cap_reduces_in_scope_usage_above_the_limit(tmp_path):
    doc = invoice(contract(CAP), [("2026-01-05T00:00:00Z", "s1", "a", 1500), ("2026-01-05T00:00:00Z", "s1", "b", 200)],
                  "2026-01", tmp_path=tmp_path)
    # reduction = min(1,500.00, max(0, 0 + 1,500.00 − 1,000.00)) = 500.00; b is out of scope
    cap = lines(doc, "s1", "cap")
    assert [(c["categories"], c["limit"], c["counted_before"], c["amount"]) for c in cap] == [
        (["a"], "1000.00", "0.00", "-500.00")
    ]
    # total 1,500.00 + 200.00 − 500.00 = 1,200.00
    assert site(doc, "s1")["total"] == "1200.00"
    assert_totals_add_up(doc)


def test_cap_accumulates_across_the_months_of_the_contract_year(tmp_path):
    events = [("2026-01-05T00:00:00Z", "s1", "a", 600), ("2026-02-05T00:00:00Z", "s1", "a", 600),
              ("2026-03-05T00:00:00Z", "s1", "a", 300)]
    text = contract(CAP)
    january = invoice(text, events, "2026-01", tmp_path=tmp_path)
    february = invoice(text, events, "2026-02", tmp_path=tmp_path)
    march = invoice(text, events, "2026-03", tmp_path=tmp_path)
    # Jan: 600 counted, no reduction
    assert lines(january, "s1", "cap") == []
    # Feb: before 600, now 600 → reduction min(600, 600 + 600 − 1,000) = 200 → total 400.00
    assert [(c["counted_before"], c["amount"]) for c in lines(february, "s1", "cap")] == [("600.00", "-200.00")]
    assert february["totals"]["total"] == "400.00"
    # Mar: before 1,000, now 300 → reduction min(300, 300) = 300 → total 0.00
    assert [(c["counted_before"], c["amount"]) for c in lines(march, "s1", "cap")] == [("1000.00", "-300.00")]
    assert march["totals"]["total"] == "0.00"


def test_cap_cancels_minimum_true_ups_inside_its_scope(tmp_path):
    body = """\
    category a "A" rate 1.00
    site "s1" {
        minimum 500.00 monthly on a
        cap 1_000.00 yearly on all
    }"""
    events = [("2026-01-05T00:00:00Z", "s1", "a", 900), ("2026-02-05T00:00:00Z", "s1", "a", 100)]
    text = contract(body)
    february = invoice(text, events, "2026-02", tmp_path=tmp_path)
    march = invoice(text, events, "2026-03", tmp_path=tmp_path)
    # Jan: 900 ≥ 500, counted 900. Feb: usage 100 + true-up 400 = 500 in scope;
    # reduction min(500, 900 + 500 − 1,000) = 400 → total 100.00
    assert amounts(february, "s1", "minimum") == ["400.00"]
    assert amounts(february, "s1", "cap") == ["-400.00"]
    assert february["totals"]["total"] == "100.00"
    # Mar: true-up 500; before 1,000 → reduction 500 → total 0.00
    assert amounts(march, "s1", "minimum") == ["500.00"]
    assert amounts(march, "s1", "cap") == ["-500.00"]
    assert march["totals"]["total"] == "0.00"


def test_cap_does_not_reduce_a_minimum_outside_its_scope(tmp_path):
    body = """\
    category a "A" rate 1.00
    category b "B" rate 1.00
    site "s1" {
        minimum 500.00 monthly on b
        cap 100.00 yearly on a
    }"""
    doc = invoice(contract(body), [("2026-01-05T00:00:00Z", "s1", "a", 300)], "2026-01", tmp_path=tmp_path)
    # a 300.00 → capped: reduction min(300, 300 − 100) = 200; b minimum 500.00 untouched; total 300 − 200 + 500 = 600
    assert amounts(doc, "s1", "cap") == ["-200.00"]
    assert amounts(doc, "s1", "minimum") == ["500.00"]
    assert site(doc, "s1")["total"] == "600.00"


def test_cap_resets_at_the_contract_year_anniversary(tmp_path):
    body = """\
    category a "A" rate 1.00
    site "s1" {
        cap 1_000.00 yearly on all
    }"""
    events = [("2026-04-05T00:00:00Z", "s1", "a", 1000), ("2027-03-05T00:00:00Z", "s1", "a", 300),
              ("2027-04-05T00:00:00Z", "s1", "a", 300)]
    text = contract(body, starts="2026-04-01")
    march = invoice(text, events, "2027-03", tmp_path=tmp_path)
    april = invoice(text, events, "2027-04", tmp_path=tmp_path)
    # 2027-03 is month 12 of year one: before 1,000 → reduction 300 → total 0.00
    assert march["contract_year_start"] == "2026-04-01"
    assert march["totals"]["total"] == "0.00"
    # 2027-04 starts year two: before 0 → 300.00, no cap line
    assert april["contract_year_start"] == "2027-04-01"
    assert lines(april, "s1", "cap") == []
    assert april["totals"]["total"] == "300.00"


def test_cap_lowered_by_an_amendment_below_the_count_cancels_further_charges(tmp_path):
    v1 = contract('    category a "A" rate 1.00\n    site "s1" {\n        cap 1_000.00 yearly on all\n    }')
    v2 = contract('    category a "A" rate 1.00\n    site "s1" {\n        cap 500.00 yearly on all\n    }')
    events = [("2026-01-05T00:00:00Z", "s1", "a", 800), ("2026-02-05T00:00:00Z", "s1", "a", 100)]
    doc = invoice(v1, events, "2026-02", amendments=[("2026-02", v2)], tmp_path=tmp_path)
    # Jan under v1: 800 counted. Feb under v2 (same scope `all`, so the count carries):
    # reduction min(100, max(0, 800 + 100 − 500)) = 100 → total 0.00
    cap = lines(doc, "s1", "cap")
    assert [(c["limit"], c["counted_before"], c["amount"]) for c in cap] == [("500.00", "800.00", "-100.00")]
    assert doc["totals"]["total"] == "0.00"


def test_cap_raised_by_an_amendment_keeps_its_count(tmp_path):
    v1 = contract('    category a "A" rate 1.00\n    site "s1" {\n        cap 1_000.00 yearly on all\n    }')
    v2 = contract('    category a "A" rate 1.00\n    site "s1" {\n        cap 1_200.00 yearly on all\n    }')
    events = [("2026-01-05T00:00:00Z", "s1", "a", 1000), ("2026-02-05T00:00:00Z", "s1", "a", 500)]
    doc = invoice(v1, events, "2026-02", amendments=[("2026-02", v2)], tmp_path=tmp_path)
    # before 1,000, now 500, limit 1,200 → reduction min(500, 300) = 300 → total 200.00
    assert amounts(doc, "s1", "cap") == ["-300.00"]
    assert doc["totals"]["total"] == "200.00"


def test_cap_scope_change_starts_a_new_count(tmp_path):
    v1 = contract('    category a "A" rate 1.00\n    site "s1" {\n        cap 1_000.00 yearly on all\n    }')
    v2 = contract('    category a "A" rate 1.00\n    site "s1" {\n        cap 1_000.00 yearly on a\n    }')
    events = [("2026-01-05T00:00:00Z", "s1", "a", 800), ("2026-02-05T00:00:00Z", "s1", "a", 500)]
    doc = invoice(v1, events, "2026-02", amendments=[("2026-02", v2)], tmp_path=tmp_path)
    # the cap on `a` is a new cap: before 0, now 500 ≤ 1,000 → no reduction, total 500.00
    # (with the same scope it would have been min(500, 800 + 500 − 1,000) = 300 off)
    assert lines(doc, "s1", "cap") == []
    assert doc["totals"]["total"] == "500.00"


def test_periods_without_a_cap_count_nothing(tmp_path):
    v1 = contract('    category a "A" rate 1.00\n    site "s1" { }')
    v2 = contract('    category a "A" rate 1.00\n    site "s1" {\n        cap 1_000.00 yearly on all\n    }')
    events = [("2026-01-05T00:00:00Z", "s1", "a", 800), ("2026-02-05T00:00:00Z", "s1", "a", 500)]
    doc = invoice(v1, events, "2026-02", amendments=[("2026-02", v2)], tmp_path=tmp_path)
    # January had no cap in force: Feb before 0, now 500 → no reduction
    assert lines(doc, "s1", "cap") == []
    assert doc["totals"]["total"] == "500.00"


def test_caps_are_counted_per_site(tmp_path):
    body = """\
    category a "A" rate 1.00
    defaults {
        cap 1_000.00 yearly on all
    }
    site "s1" { }
    site "s2" { }"""
    events = [("2026-01-05T00:00:00Z", "s1", "a", 900), ("2026-02-05T00:00:00Z", "s1", "a", 200),
              ("2026-02-05T00:00:00Z", "s2", "a", 200)]
    doc = invoice(contract(body), events, "2026-02", tmp_path=tmp_path)
    # s1: before 900, now 200 → reduction 100; s2: before 0, now 200 → none
    assert amounts(doc, "s1", "cap") == ["-100.00"]
    assert lines(doc, "s2", "cap") == []
    assert doc["totals"] == {"usage": "400.00", "minimum": "0.00", "cap": "-100.00", "total": "300.00"}


# --- category toggle ----------------------------------------------------------------------


def test_disabled_category_is_shown_unbilled_with_what_it_would_have_cost(tmp_path):
    body = """\
    category a "A" rate 1.00
    category b "B" rate 2.00
    site "s1" {
        disable b
    }
    site "s2" { }"""
    doc = invoice(contract(body), [("2026-01-05T00:00:00Z", "s1", "b", 50)], "2026-01", tmp_path=tmp_path)
    line = usage(doc, "s1", "b")
    # 50 units shown, amount 0.00, billed false; the tiers show 50 × 2.00 = 100.00
    assert (line["quantity"], line["amount"], line["billed"]) == ("50", "0.00", False)
    assert [(t["quantity"], t["unit_price"], t["amount"]) for t in line["tiers"]] == [("50", "2.00", "100.00")]
    assert doc["totals"]["total"] == "0.00"


def test_site_enable_overrides_a_default_disable(tmp_path):
    body = """\
    category a "A" rate 1.00
    category b "B" rate 2.00
    defaults {
        disable b
    }
    site "s1" {
        enable b
    }
    site "s2" { }"""
    events = [("2026-01-05T00:00:00Z", "s1", "b", 50), ("2026-01-05T00:00:00Z", "s2", "b", 50)]
    doc = invoice(contract(body), events, "2026-01", tmp_path=tmp_path)
    # s1 re-enables b: 50 × 2.00 = 100.00; s2 keeps the default: 0.00, not billed
    assert (usage(doc, "s1", "b")["amount"], usage(doc, "s1", "b")["billed"]) == ("100.00", True)
    assert (usage(doc, "s2", "b")["amount"], usage(doc, "s2", "b")["billed"]) == ("0.00", False)
    assert doc["totals"]["total"] == "100.00"


def test_disabled_category_counts_nothing_towards_a_cap(tmp_path):
    body = """\
    category a "A" rate 1.00
    category b "B" rate 1.00
    site "s1" {
        disable b
        cap 100.00 yearly on all
    }"""
    events = [("2026-01-05T00:00:00Z", "s1", "a", 80), ("2026-01-05T00:00:00Z", "s1", "b", 500)]
    doc = invoice(contract(body), events, "2026-01", tmp_path=tmp_path)
    # in scope: a 80.00 + b 0.00 = 80.00 ≤ 100.00 → no cap line
    assert lines(doc, "s1", "cap") == []
    assert doc["totals"]["total"] == "80.00"


# --- rate override --------------------------------------------------------------------------


def test_site_rate_replaces_the_category_price_at_that_site_only(tmp_path):
    body = """\
    category a "A" rate 1.00
    site "s1" {
        rate a 1.25
    }
    site "s2" { }"""
    events = [("2026-01-05T00:00:00Z", "s1", "a", 100), ("2026-01-05T00:00:00Z", "s2", "a", 100)]
    doc = invoice(contract(body), events, "2026-01", tmp_path=tmp_path)
    # s1: 100 × 1.25 = 125.00; s2: 100 × 1.00 = 100.00
    assert usage(doc, "s1", "a")["amount"] == "125.00"
    assert usage(doc, "s2", "a")["amount"] == "100.00"


def test_site_rate_may_be_tiered(tmp_path):
    body = """\
    category a "A" rate 1.00
    site "s1" {
        rate a graduated {
            up to 10 at 1.00
            above at 0.50
        }
    }"""
    doc = invoice(contract(body), [("2026-01-05T00:00:00Z", "s1", "a", 30)], "2026-01", tmp_path=tmp_path)
    # 10 × 1.00 + 20 × 0.50 = 20.00
    assert usage(doc, "s1", "a")["amount"] == "20.00"


def test_default_rate_applies_to_every_site_unless_the_site_sets_its_own(tmp_path):
    body = """\
    category a "A" rate 1.00
    defaults {
        rate a 2.00
    }
    site "s1" {
        rate a 3.00
    }
    site "s2" { }"""
    events = [("2026-01-05T00:00:00Z", "s1", "a", 10), ("2026-01-05T00:00:00Z", "s2", "a", 10)]
    doc = invoice(contract(body), events, "2026-01", tmp_path=tmp_path)
    # s1: 10 × 3.00 = 30.00; s2: 10 × 2.00 = 20.00
    assert usage(doc, "s1", "a")["amount"] == "30.00"
    assert usage(doc, "s2", "a")["amount"] == "20.00"


# --- activity window --------------------------------------------------------------------------

WINDOW = """\
    category a "A" rate 1.00
    site "s1" {
        active from 2026-06-15
    }"""


def test_usage_before_active_from_is_reported_as_site_inactive(tmp_path):
    events = [("2026-06-10T12:00:00Z", "s1", "a", 5), ("2026-06-20T12:00:00Z", "s1", "a", 10)]
    doc = invoice(contract(WINDOW), events, "2026-06", tmp_path=tmp_path)
    # billed: 10 × 1.00 = 10.00; the 5 units of the 10th are reported, not billed
    assert usage(doc, "s1", "a")["quantity"] == "10"
    assert doc["totals"]["total"] == "10.00"
    assert doc["unbilled"] == [{"reason": "site inactive", "site": "s1", "category": "a", "events": 1, "quantity": "5"}]


def test_active_until_is_inclusive(tmp_path):
    body = '    category a "A" rate 1.00\n    site "s1" {\n        active until 2026-06-10\n    }'
    events = [("2026-06-10T23:59:00Z", "s1", "a", 3), ("2026-06-11T00:00:00Z", "s1", "a", 4)]
    doc = invoice(contract(body), events, "2026-06", tmp_path=tmp_path)
    # the 10th is billed (3.00); the 11th is after the window
    assert doc["totals"]["total"] == "3.00"
    assert [(u["reason"], u["quantity"]) for u in doc["unbilled"]] == [("site inactive", "4")]


def test_a_site_wholly_outside_its_window_is_not_on_the_invoice(tmp_path):
    body = '    category a "A" rate 1.00\n    site "s1" {\n        active from 2026-08-01\n    }\n    site "s2" { }'
    doc = invoice(contract(body), [("2026-06-05T12:00:00Z", "s1", "a", 2)], "2026-06", tmp_path=tmp_path)
    assert [s["site"] for s in doc["sites"]] == ["s2"]
    assert [(u["reason"], u["site"], u["events"]) for u in doc["unbilled"]] == [("site inactive", "s1", 1)]


def test_the_window_is_judged_on_the_local_day(tmp_path):
    body = '    category a "A" rate 1.00\n    site "s1" {\n        active from 2026-06-15\n    }'
    # 2026-06-14T23:30Z is 2026-06-15 00:30 in London (BST, UTC+1): inside the window
    doc = invoice(contract(body, timezone="Europe/London"), [("2026-06-14T23:30:00Z", "s1", "a", 1)], "2026-06",
                  tmp_path=tmp_path)
    assert doc["totals"]["total"] == "1.00"
    assert doc["unbilled"] == []


# --- events that are not billed --------------------------------------------------------------


def test_unbilled_reasons_in_order_of_precedence(tmp_path):
    events = [
        ("2026-01-25T12:00:00Z", "nowhere", "zzz", 1),       # after ends: outside contract, whatever else
        ("2026-01-05T12:00:00Z", "nowhere", "a", 2),         # unknown site
        ("2026-01-05T12:00:00Z", "s1", "zzz", 3),            # unknown category
        ("2026-01-06T12:00:00Z", "s1", "a", 4, "dup"),       # counted
        ("2026-01-06T12:00:00Z", "s1", "a", 4, "dup"),       # identical repeat: duplicate
        ("2026-01-06T12:00:00Z", "s1", "a", 5, "dup"),       # other quantity: conflict
        ("2026-01-06T12:00:00Z", "s1", "a", "4.0", "dup"),   # 4.0 = 4 as decimals: duplicate
    ]
    doc = invoice(contract(ONE_SITE, ends="2026-01-20"), events, "2026-01", tmp_path=tmp_path)
    # only the first "dup" is billed: 4 × 0.85 = 3.40
    assert doc["totals"]["total"] == "3.40"
    assert [(u["reason"], u["site"], u["category"], u["events"], u["quantity"]) for u in doc["unbilled"]] == [
        ("conflict", "s1", "a", 1, "5"),
        ("duplicate", "s1", "a", 2, "8.0"),
        ("outside contract", "nowhere", "zzz", 1, "1"),
        ("unknown category", "s1", "zzz", 1, "3"),
        ("unknown site", "nowhere", "a", 1, "2"),
    ]


def test_usage_before_starts_is_outside_contract_on_its_own_period(tmp_path):
    doc = invoice(contract(ONE_SITE, starts="2026-02-01"), [("2026-01-31T12:00:00Z", "s1", "a", 1)], "2026-02",
                  tmp_path=tmp_path)
    # the event's period is January: not on February's invoice
    assert doc["unbilled"] == []
    assert doc["totals"]["total"] == "0.00"


def test_graduated_tiers_are_counted_per_site(tmp_path):
    body = GRADUATED.replace('    site "s1" { }', '    site "s1" { }\n    site "s2" { }')
    events = [("2026-01-05T00:00:00Z", "s1", "review", 600), ("2026-01-05T00:00:00Z", "s2", "review", 600)]
    doc = invoice(contract(body), events, "2026-01", tmp_path=tmp_path)
    # each site is within its first tier: 600 × 2.00 = 1,200.00 each (not 1,000 × 2.00 + 200 × 1.50 for the second)
    assert usage(doc, "s1", "review")["amount"] == "1200.00"
    assert usage(doc, "s2", "review")["amount"] == "1200.00"
    assert doc["totals"]["total"] == "2400.00"


def test_an_event_belongs_to_the_local_month_of_its_time(tmp_path):
    text = contract(ONE_SITE, timezone="Europe/London", starts="2026-04-01")
    events = [("2026-05-31T23:30:00Z", "s1", "a", 100)]  # 2026-06-01 00:30 in London (BST)
    may = invoice(text, events, "2026-05", tmp_path=tmp_path)
    june = invoice(text, events, "2026-06", tmp_path=tmp_path)
    assert may["totals"]["total"] == "0.00"
    # 100 × 0.85 = 85.00
    assert june["totals"]["total"] == "85.00"
    assert (june["period_start"], june["period_end"]) == ("2026-06-01T00:00:00+01:00", "2026-07-01T00:00:00+01:00")


def test_a_cap_minimum_or_commitment_with_more_places_than_the_currency_is_an_error_naming_its_rounding():
    body = '    category a "A" rate 1\n    site "s1" {\n        cap 5000.5 yearly on all\n    }'
    result = compile_source(contract(body, currency="JPY").encode())
    (error,) = [d for d in result.diagnostics if d.code == "too-many-decimals"]
    assert error.severity is Severity.ERROR and "would round to 5001" in error.message
    assert not result.ok and result.plan is None
    body = '    category a "A" rate 1\n    site "s1" {\n        minimum 99.999 monthly on a\n    }'
    (error,) = [d for d in compile_source(contract(body).encode()).diagnostics if d.code == "too-many-decimals"]
    assert error.severity is Severity.ERROR and "would round to 100.00" in error.message
