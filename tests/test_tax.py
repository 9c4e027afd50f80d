"""Tax (invoicing/tax.py) and the legal fields (invoicing/legal.py): the rate by tax point, computed once on
the net and rounded down, each treatment's section, GBP for another currency, net = total + credits and
due = net + tax."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from invoicing.legal import Legal, with_legal
from invoicing.tax import REVERSE_CHARGE_NOTE, needs_fx_rate, rate_on, tax_section

SELLER = {"name": "Seller Ltd", "company_number": "1", "address": ["London"], "tax_id": "GB1", "bank": ["b"],
          "payment_terms_days": 30, "timezone": "Europe/London"}
BUYER = {"name": "Buyer Ltd", "address": ["Leeds"], "tax_id": None, "purchase_order": "PO-1"}


def document(total: str, currency: str = "GBP") -> dict:
    return {"contract": "c", "customer": "C", "currency": currency, "sites": [],
            "totals": {"usage": total, "total": total}, "unbilled": []}


def test_a_rate_change_applies_by_tax_point():
    assert rate_on(dt.date(2011, 1, 3)) == Decimal("0.175")
    assert rate_on(dt.date(2011, 1, 4)) == Decimal("0.20")
    with pytest.raises(ValueError):
        rate_on(dt.date(2009, 12, 31))


def test_tax_is_computed_once_on_the_net_and_rounded_down():
    section = tax_section("uk_standard", Decimal("8583.33"), "GBP", dt.date(2026, 7, 3), fx_rate=None)
    assert section == {"treatment": "uk_standard", "rate": "0.20", "net": "8583.33", "amount": "1716.66",
                       "amount_gbp": "1716.66", "fx_rate": None, "note": None}
    # 0.07 × 0.20 = 0.014: down to 0.01, where half-up per line would differ
    assert tax_section("uk_standard", Decimal("0.07"), "GBP", dt.date(2026, 7, 3), fx_rate=None)["amount"] == "0.01"


def test_each_treatment():
    on = dt.date(2026, 7, 3)
    assert tax_section("none", Decimal("10.00"), "USD", on, fx_rate=None) is None
    reverse = tax_section("reverse_charge", Decimal("10.00"), "EUR", on, fx_rate=None)
    assert (reverse["amount"], reverse["note"]) == ("0.00", REVERSE_CHARGE_NOTE) and not needs_fx_rate(reverse)
    exempt = tax_section("exempt", Decimal("10.00"), "USD", on, fx_rate=None, exempt_reason="cert 12")
    assert (exempt["amount"], exempt["note"]) == ("0.00", "Exempt from tax: cert 12")
    with pytest.raises(ValueError):
        tax_section("vat", Decimal("1"), "GBP", on, fx_rate=None)


def test_uk_vat_in_another_currency_is_stated_in_gbp_at_finances_rate_rounded_down():
    on = dt.date(2026, 7, 3)
    without = tax_section("uk_standard", Decimal("1000.00"), "USD", on, fx_rate=None)
    assert without["amount_gbp"] is None and needs_fx_rate(without)
    section = tax_section("uk_standard", Decimal("1000.01"), "USD", on, fx_rate=Decimal("0.7931"))
    # 200.00 USD (200.002 rounded down) × 0.7931 = 158.62 GBP
    assert (section["amount"], section["amount_gbp"], section["fx_rate"]) == ("200.00", "158.62", "0.7931")


def test_the_legal_fields_net_and_due():
    legal = Legal(seller=SELLER, buyer=BUYER, treatment="uk_standard", terms_days=30,
                  credits=({"grant": "G-000001", "amount": "-100.00", "remaining": "0.00"},))
    draft = with_legal(document("1000.00"), legal, issue_date=None, as_of=dt.date(2026, 7, 1))
    assert (draft["issue_date"], draft["due_date"], draft["payment_terms"]) == (None, None, "net 30")
    assert draft["totals"] == {"usage": "1000.00", "total": "1000.00", "credits": "-100.00", "net": "900.00",
                               "tax": "180.00", "due": "1080.00"}
    issued = with_legal(document("1000.00"), legal, issue_date=dt.date(2026, 7, 3), as_of=dt.date(2026, 7, 3))
    assert (issued["issue_date"], issued["tax_point"], issued["due_date"]) == ("2026-07-03", "2026-07-03",
                                                                               "2026-08-02")
    assert issued["seller"]["tax_id"] == "GB1" and issued["buyer"]["purchase_order"] == "PO-1"
    untaxed = with_legal(document("5.00"), Legal(seller=SELLER, buyer=BUYER), issue_date=None,
                         as_of=dt.date(2026, 7, 1))
    assert "tax" not in untaxed and untaxed["totals"]["due"] == untaxed["totals"]["net"] == "5.00"
