"""Exact money: currencies' minor units from ISO 4217 (via Babel) and per-line rounding."""

from __future__ import annotations

import decimal
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from functools import lru_cache

from babel import numbers as babel_numbers

ROUNDING_MODES = {"half_up": ROUND_HALF_UP, "half_even": ROUND_HALF_EVEN}
ZERO = Decimal(0)

# Python's default of 28 significant digits would round a product or a sum of
# large amounts silently. Metering refuses quantities of 10^24 or more and with
# more than 30 decimal places, and contracts numbers of 10^18 or more, so every
# product and sum we make fits in 100 digits exactly; only division (proration)
# and `round` ever discard digits.
PRECISION = 100
decimal.DefaultContext.prec = PRECISION   # contexts of threads started from now on
decimal.getcontext().prec = PRECISION     # this thread's
EXACT = decimal.Context(prec=decimal.MAX_PREC, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)   # sums that never round: EXACT.add(a, b)


def decimal_text(value: Decimal) -> str:
    """Exact decimal text without an exponent (what PostgreSQL's NUMERIC keeps too: digits and scale)."""
    text = f"{value:f}"
    return text if value else text.lstrip("-")


@lru_cache(maxsize=None)
def is_currency(code: str) -> bool:
    return len(code) == 3 and code.isupper() and babel_numbers.is_currency(code)


@lru_cache(maxsize=None)
def minor_unit(code: str) -> int:
    """Digits after the decimal point for a currency: 2 for GBP, 0 for JPY, 3 for KWD."""
    return babel_numbers.get_currency_precision(code)


@dataclass(frozen=True)
class Money:
    """How a contract's amounts are rounded: its currency's minor unit and its rounding mode."""

    currency: str
    places: int
    rounding: str = "half_up"

    @classmethod
    def of(cls, currency: str, rounding: str = "half_up") -> "Money":
        return cls(currency, minor_unit(currency), rounding)

    @property
    def quantum(self) -> Decimal:
        return Decimal(1).scaleb(-self.places)

    def round(self, amount: Decimal) -> Decimal:
        """Round once, to the minor unit, with the contract's mode; never -0."""
        digits = max(PRECISION, amount.adjusted() + self.places + 2)  # room for any amount a contract states
        rounded = amount.quantize(self.quantum, rounding=ROUNDING_MODES[self.rounding],
                                  context=decimal.Context(prec=digits))
        return rounded if rounded else abs(rounded)

    def format(self, amount: Decimal) -> str:
        """The JSON form of an amount: exact, with the minor-unit places, never `-0.00`."""
        return f"{self.round(amount):f}"


def format_quantity(quantity: Decimal) -> str:
    """A quantity as exact decimal text, never in exponent form."""
    text = f"{quantity:f}"
    return text if quantity else text.lstrip("-")


@lru_cache(maxsize=64)
def _currency_format(locale: str):
    from babel import Locale
    parsed = Locale.parse(locale)
    return parsed.currency_formats["standard"], parsed


def display(amount: Decimal, currency: str, locale: str = "en_GB") -> str:
    """Money as people read it, the one way the product writes it (pages, PDFs, CSV headers, CLI text):
    the locale's currency pattern from Babel, the currency's minor-unit places, exact (no float), never `-0`.

        display(Decimal("7802"), "GBP")            # '£7,802.00'
        display(Decimal("-12.5"), "USD", "en_US")  # '-$12.50'
    """
    pattern, parsed = _currency_format(locale)
    money = Money.of(currency)
    return pattern.apply(money.round(Decimal(amount)), parsed, currency=currency, currency_digits=True)
