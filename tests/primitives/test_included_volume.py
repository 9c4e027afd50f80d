"""`included` with volume prices (pricing-language §4.2): the tier comes from the whole quantity, its price
charged for the billed units, so that an allowance never raises a line; and the property for every price."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from .test_included_units import invoice, lines

VOLUME = """    category pages "Pages" volume {{
        up to {bound} at {low}
        above at {high}
    }}
"""


def _pages_amount(price: str, allowance: int, quantity: str) -> Decimal:
    included = f"defaults {{ included {allowance} units monthly on pages }}\n" if allowance else ""
    document = invoice(price + included + 'site "a" { }\n', {("a", "pages"): quantity})
    (line,) = [line for line in lines(document, "a") if line["category"] == "pages"]
    return Decimal(line["amount"])


def test_a_volume_tier_comes_from_the_whole_quantity_and_prices_the_billed_units():
    price = VOLUME.format(bound="1000", low="1.00", high="0.50")
    assert _pages_amount(price, 0, "1050") == Decimal("525.00")      # 1,050 × 0.50
    assert _pages_amount(price, 100, "1050") == Decimal("475.00")    # tier of 1,050; 950 billed × 0.50
    assert _pages_amount(price, 100, "1000") == Decimal("900.00")    # tier of 1,000; 900 billed × 1.00


PRICES = st.one_of(
    st.tuples(st.integers(1, 2000), st.integers(0, 300), st.integers(0, 300)).map(
        lambda t: VOLUME.format(bound=t[0], low=f"{t[1] / 100:.2f}", high=f"{t[2] / 100:.2f}")),
    st.tuples(st.integers(1, 2000), st.integers(0, 300), st.integers(0, 300)).map(
        lambda t: VOLUME.replace("volume", "graduated").format(bound=t[0], low=f"{t[1] / 100:.2f}",
                                                              high=f"{t[2] / 100:.2f}")),
    st.integers(0, 300).map(lambda cents: f'    category pages "Pages" rate {cents / 100:.2f}\n'),
)


@settings(derandomize=True, max_examples=100, deadline=None)
@given(price=PRICES, quantity=st.integers(0, 2500), allowances=st.lists(st.integers(0, 1000), min_size=2,
                                                                        max_size=2, unique=True))
def test_adding_an_allowance_never_raises_a_line(price, quantity, allowances):
    smaller, larger = sorted(allowances)
    assert _pages_amount(price, larger, str(quantity)) <= _pages_amount(price, smaller, str(quantity))
