"""The year-end projection of an account block (review/account_year.py): its arithmetic, by examples worked out
by hand and by properties over any months, limits and commitments."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from engine.money import Money
from engine.periods import Period
from review.account_year import AccountYear, YearMonth

EUR = Money.of("EUR")
START = Period(2026, 8)


def year(months, *, period, cap=None, commitment=None, billing="in arrears", minimum=None) -> AccountYear:
    shown = tuple(YearMonth(START.shift(i), "computed", Decimal(u), Decimal(n)) for i, (u, n) in enumerate(months))
    return AccountYear(EUR, period, START, START.shift(11), minimum, cap, Decimal(0), commitment, billing,
                       Decimal(0), Decimal(0), shown)


def test_a_shortfall_in_arrears_is_billed_in_the_years_last_period():
    # three months of 500.00, the fourth 100.00 so far on day 10 of 31: the rate is 500.00
    outlook = year([(500, 500)] * 3 + [(100, 100)], period=START.shift(3), commitment=Decimal("9000.00")) \
        .projection(10, 31)
    assert outlook.rate == Decimal("500.00") and "3 earlier months" in outlook.method
    assert outlook.year_spend == 12 * Decimal("500.00")
    assert outlook.shortfall == Decimal("3000.00") and outlook.shortfall_in == Period(2027, 7)
    assert outlook.commitment_met_in is None


def test_the_first_month_is_scaled_to_the_whole_month_and_the_cap_takes_the_overrun():
    outlook = year([(1000, 1000)], period=START, cap=Decimal("30000")).projection(10, 31)
    assert outlook.rate == Decimal("3100.00") and "10 of 31 days" in outlook.method
    assert outlook.year_counted == 12 * Decimal("3100.00")
    assert outlook.overrun == 12 * Decimal("3100.00") - 30000 and outlook.year_spend == Decimal("30000")
    assert outlook.cap_reached_in == START.shift(9)          # 10 × 3,100.00 ≥ 30,000.00


def test_no_projected_month_counts_less_than_the_account_minimum():
    outlook = year([(200, 200)] * 2 + [(0, 0)], period=START.shift(2), minimum=Decimal("1000")).projection(5, 31)
    assert outlook.rate == Decimal("1000.00")
    assert all(month.counted >= 1000 for month in outlook.months if month.source == "projected")


amounts = st.decimals(min_value=0, max_value=100_000, places=2)


@given(st.lists(amounts, min_size=1, max_size=12), st.integers(1, 31), st.one_of(st.none(), amounts),
       st.one_of(st.none(), amounts))
def test_the_projection_adds_up(counted, day, cap, commitment):
    months = [(u, u) for u in counted]
    if cap is not None:        # the actual months billed what the cap left, as the engine does
        left, months = cap, []
        for u in counted:
            months.append((u, min(u, max(Decimal(0), left))))
            left -= u
    period = START.shift(len(counted) - 1)
    outlook = year(months, period=period, cap=cap, commitment=commitment).projection(min(day, period.days),
                                                                                      period.days)
    assert [m.period for m in outlook.months] == [START.shift(i) for i in range(12)]
    assert outlook.year_counted == sum(m.counted for m in outlook.months)
    assert outlook.year_spend == sum(m.billed for m in outlook.months)
    if cap is not None:
        assert outlook.year_spend <= max(cap, Decimal(0))
        assert outlook.year_spend + outlook.overrun == outlook.year_counted
        assert (outlook.cap_reached_in is None) == (outlook.year_counted < cap)
    if commitment is not None:
        assert outlook.shortfall == max(Decimal(0), commitment - outlook.year_spend)
        assert (outlook.commitment_met_in is None) == (outlook.year_spend < commitment)
