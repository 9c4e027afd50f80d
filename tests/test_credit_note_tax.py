"""The tax a credit note carries (invoicing/credit_note.py `credited_tax`), over any sequence of partial credit
notes of an invoice: never more than the invoice's net nor its tax (nor its GBP statement); a partial credit's
tax is its net × the invoice's rate rounded down once; crediting the whole net credits exactly the invoice's
tax, in its currency and in GBP. And the document's own sums: lines = net, net + tax = total."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_DOWN, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.money import Money
from engine.periods import Period
from invoicing.credit_note import (
    CreditLine,
    CreditNoteDocument,
    Left,
    credit_note_json,
    credit_note_text,
    credited_tax,
)
from invoicing.pdf import InconsistentInvoice
from invoicing.tax import tax_section

TAX_POINTS = (dt.date(2010, 6, 1), dt.date(2026, 7, 4))   # 17.5% and 20%


def _invoice_tax(treatment: str, net: Decimal, currency: str, tax_point: dt.date, fx: Decimal | None) -> dict:
    return {**tax_section(treatment, net, currency, tax_point, fx_rate=fx), "tax_point": tax_point.isoformat()}


def _gbp(section: dict) -> Decimal | None:
    return None if section["amount_gbp"] is None else Decimal(section["amount_gbp"])


@st.composite
def invoices_and_credits(draw):
    currency = draw(st.sampled_from(["GBP", "USD", "JPY"]))
    money = Money.of(currency)
    cents = draw(st.integers(min_value=1, max_value=10**9))
    net = money.round(Decimal(cents) * money.quantum)
    treatment = draw(st.sampled_from(["uk_standard", "uk_standard", "reverse_charge", "exempt"]))
    fx = None if currency == "GBP" else Decimal(draw(st.integers(min_value=1, max_value=30000))) / 10000
    section = _invoice_tax(treatment, net, currency, draw(st.sampled_from(TAX_POINTS)), fx)
    # Each partial credit note as a share of what remains (in thousandths); then, or not, everything left.
    shares = draw(st.lists(st.integers(min_value=1, max_value=1000), max_size=12))
    return money, net, section, shares, draw(st.booleans())


@given(invoices_and_credits())
def test_partial_credit_notes_never_credit_more_than_the_net_and_tax_and_all_of_the_net_credits_all_the_tax(case):
    money, net, section, shares, finish = case
    rate, tax, gbp = Decimal(section["rate"]), Decimal(section["amount"]), _gbp(section)
    left = Left(net, tax, gbp)
    credited_net = credited_tax_total = credited_gbp = Decimal(0)
    amounts = [max(money.round(left.net * share / 1000), money.quantum) for share in shares]
    for amount in amounts + ([None] if finish else []):
        if left.net <= 0:
            break
        note_net = left.net if amount is None else min(amount, left.net)
        note = credited_tax(section, note_net, left, money.currency)
        note_tax = Decimal(note["amount"])
        assert note_tax >= 0 and note["rate"] == section["rate"] and note["note"] == section["note"]
        assert note["tax_point"] == section["tax_point"] and note["fx_rate"] == section["fx_rate"]
        if note_net < left.net:   # a partial credit: its own net × the invoice's rate, rounded down once
            assert note_tax == (note_net * rate).quantize(money.quantum, rounding=ROUND_DOWN)
        credited_net += note_net
        credited_tax_total += note_tax
        if gbp is not None:
            credited_gbp += Decimal(note["amount_gbp"])
        left = Left(left.net - note_net, left.tax - note_tax,
                    None if gbp is None else left.tax_gbp - Decimal(note["amount_gbp"]))
        assert credited_net <= net and credited_tax_total <= tax
        assert gbp is None or credited_gbp <= gbp
    if credited_net == net:
        assert credited_tax_total == tax and (gbp is None or credited_gbp == gbp)


def test_crediting_the_whole_net_at_once_credits_exactly_the_invoice_tax():
    section = _invoice_tax("uk_standard", Decimal("8583.33"), "USD", TAX_POINTS[1], Decimal("0.7931"))
    note = credited_tax(section, Decimal("8583.33"), Left(Decimal("8583.33"), Decimal("1716.66"), Decimal("1361.48")),
                        "USD")
    assert (note["amount"], note["amount_gbp"]) == (section["amount"], section["amount_gbp"]) == ("1716.66",
                                                                                                  "1361.48")


def test_an_invoice_without_a_tax_section_gives_a_credit_note_without_one():
    assert credited_tax(None, Decimal("10.00"), Left(Decimal("10.00"), Decimal(0)), "GBP") is None


def _note(lines, tax=None) -> CreditNoteDocument:
    return CreditNoteDocument(number="TEST-CN-2026-000001", issued_on=dt.date(2026, 7, 10), customer="Tiny Ltd",
                              contract="tiny", currency="GBP", invoice_number="TEST-2026-000001",
                              invoice_period=Period(2026, 5), reason="goodwill", lines=tuple(lines), tax=tax,
                              invoice_date=dt.date(2026, 7, 4))


def test_the_json_and_text_add_up_and_a_tax_on_another_net_is_refused():
    lines = [CreditLine("site", "s1", "Site one", Decimal("10.07")),
             CreditLine("account", "commitment_fee", "Commitment fee", Decimal("5.00"))]
    section = _invoice_tax("uk_standard", Decimal("134.00"), "GBP", TAX_POINTS[1], None)
    tax = credited_tax(section, Decimal("15.07"), Left(Decimal("134.00"), Decimal("26.80"), Decimal("26.80")), "GBP")
    document = credit_note_json(_note(lines, tax))
    assert document["totals"] == {"net": "15.07", "tax": "3.01", "total": "18.08"}
    assert document["lines"][1] == {"account": "commitment_fee", "name": "Commitment fee", "amount": "5.00"}
    assert [CreditLine.from_json(line) for line in document["lines"]] == lines
    text = credit_note_text(_note(lines, tax))
    assert "£18.08" in text and "VAT credited at 20%" in text and "4 July 2026" in text
    with pytest.raises(InconsistentInvoice):   # the tax of another net than the lines'
        credit_note_text(_note(lines[:1], tax))
    with pytest.raises(ValueError):
        CreditLine("invoice", "x", "x", Decimal(1))
