"""The one way money is written for people: engine.money.display."""

from decimal import Decimal

import pytest
from hypothesis import given, strategies as st

from engine.money import Money, display


@pytest.mark.parametrize("amount, currency, locale, text", [
    ("7802", "GBP", "en_GB", "£7,802.00"),
    ("-12.5", "USD", "en_US", "-$12.50"),
    ("1234567.891", "JPY", "ja_JP", "￥1,234,568"),
    ("-0.001", "EUR", "de_DE", "0,00\xa0€"),
    ("0.0005", "KWD", "en_GB", "KWD0.001"),
])
def test_locale_pattern_and_minor_unit(amount, currency, locale, text):
    assert display(Decimal(amount), currency, locale) == text


@given(st.decimals(min_value=-10**12, max_value=10**12, places=4, allow_nan=False))
def test_digits_are_the_rounded_amount(amount):
    text = display(amount, "GBP", "en_GB")
    digits = text.replace("£", "").replace(",", "")
    assert Decimal(digits) == Money.of("GBP").round(amount)
