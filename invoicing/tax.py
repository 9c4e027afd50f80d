"""Tax on an invoice's net (interfaces §4, Tax): which treatment, which rate, how it is rounded.

    rate_on(dt.date(2026, 7, 3))                                  # Decimal("0.20"): UK VAT's standard rate then
    tax_section("uk_standard", Decimal("8583.33"), "GBP", tax_point, fx_rate=None)
    # {"treatment": "uk_standard", "rate": "0.20", "net": "8583.33", "amount": "1716.66", "amount_gbp": "1716.66", …}

Tax is computed once, on the net (after credits), and rounded down to the minor
unit (HMRC VAT Notice 700 §17.5). A rate applies by tax point: UK_VAT_RATES is the
dated table of the standard rate, each rate in force from its date on. An invoice
in another currency states its UK VAT in GBP too, at the rate finance recorded for
the tax point (GBP per unit of the currency), rounded down to the penny.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_DOWN, Decimal

from engine.money import Money

# UK VAT's standard rate, from the date each came into force (HMRC: 17.5% from 2010-01-01, 20% from 2011-01-04).
UK_VAT_RATES: tuple[tuple[dt.date, Decimal], ...] = (
    (dt.date(2010, 1, 1), Decimal("0.175")),
    (dt.date(2011, 1, 4), Decimal("0.20")),
)
REVERSE_CHARGE_NOTE = ("Outside the scope of UK VAT: reverse charge, the customer accounts for any VAT due")
TREATMENTS = ("uk_standard", "reverse_charge", "exempt", "none")


def rate_on(tax_point: dt.date, table: tuple[tuple[dt.date, Decimal], ...] = UK_VAT_RATES) -> Decimal:
    """The standard rate in force on `tax_point`: the last entry of the table that began on or before it."""
    in_force = [rate for since, rate in table if since <= tax_point]
    if not in_force:
        raise ValueError(f"no UK VAT rate is known for {tax_point}")
    return in_force[-1]


def round_down(amount: Decimal, money: Money) -> Decimal:
    rounded = amount.quantize(money.quantum, rounding=ROUND_DOWN)
    return rounded if rounded else abs(rounded)


def tax_amount(net: Decimal, rate: Decimal, money: Money) -> Decimal:
    """The tax of `net` at `rate`: computed once and rounded down to the minor unit."""
    return round_down(net * rate, money)


def tax_section(treatment: str, net: Decimal, currency: str, tax_point: dt.date, *, fx_rate: Decimal | None,
                exempt_reason: str = "") -> dict | None:
    """The invoice's `tax` (None for `none`: no tax section). UK VAT in another currency than GBP without
    `fx_rate` has `amount_gbp` None: such an invoice may be drafted, not issued (`needs_fx_rate`)."""
    if treatment not in TREATMENTS:
        raise ValueError(f"unknown tax treatment {treatment!r} (one of {', '.join(TREATMENTS)})")
    if treatment == "none":
        return None
    money, gbp = Money.of(currency), Money.of("GBP")
    rate = rate_on(tax_point) if treatment == "uk_standard" else Decimal("0")
    amount = tax_amount(net, rate, money)
    note = {"reverse_charge": REVERSE_CHARGE_NOTE, "exempt": f"Exempt from tax: {exempt_reason}"}.get(treatment)
    section = {"treatment": treatment, "rate": f"{rate:f}", "net": money.format(net), "amount": money.format(amount),
               "amount_gbp": None, "fx_rate": None, "note": note}
    if treatment == "uk_standard":
        if currency == "GBP":
            section["amount_gbp"] = section["amount"]
        elif fx_rate is not None:
            section["amount_gbp"] = gbp.format(round_down(amount * fx_rate, gbp))
            section["fx_rate"] = f"{fx_rate:f}"
    return section


def needs_fx_rate(section: dict | None) -> bool:
    """UK VAT whose GBP amount cannot be stated yet: finance has recorded no rate for the tax point."""
    return section is not None and section["treatment"] == "uk_standard" and section["amount_gbp"] is None
