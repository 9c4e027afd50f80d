"""The account rules over the contract year (spec §4.9): the account cap's progress, the commitment's balance and
its burn-down by month, and a projection of the year-end spend from the year's run rate.

    year = account_year(plan, counts, period, months)    # review.dashboard builds it for an account block
    year.cap_limit, year.cap_counted                              # the account cap: limit, counted this year
    year.balance                                                  # prepaid: the commitment less its drawdowns
    outlook = year.projection(day=12, days=30)
    outlook.year_spend, outlook.shortfall, outlook.shortfall_in   # e.g. 4,100.00 short, billed/expiring in 2027-07
    outlook.cap_reached_in, outlook.overrun                       # e.g. 2027-03, 6,500.00 above the cap

Every figure is the engine's: the counts are what the account steps carried (rules/account_cap.py,
rules/commitment.py), the months are the invoices' own account sections. Each month has two amounts:

- `counted`: its site totals and account minimum true-up, what the account cap counts (U);
- `billed`: that less the account cap's reduction, what the commitment draws down or counts (N).

The projection (docs/dashboard.md says it for finance): the run rate is the average `counted` of the contract
year's months before this one; in the year's first month, this month so far scaled to the whole month. This
month counts the larger of what it has so far and the rate, every later month the rate, and no month less than
the account minimum (which would top it up). The year's spend is the months summed; the cap takes off what goes
beyond its limit (from the month the running sum crosses it); the commitment is short by what the capped spend
leaves of it, billed (in arrears) or left to expire (prepaid) in the contract year's last billed period.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from engine.money import Money
from engine.periods import Period, contract_year_start
from engine.plan import Plan
from engine.sheet import AccountCounts

ZERO = Decimal(0)
PREPAID = "prepaid"


@dataclass(frozen=True)
class YearMonth:
    period: Period
    source: str             # issued (the invoice as frozen), computed (the engine now), projected
    counted: Decimal        # U: the site totals and the account minimum true-up
    billed: Decimal         # N: U less the account cap's reduction


@dataclass(frozen=True)
class Projection:
    method: str                         # the run rate's basis, in words
    rate: Decimal                       # a month at the run rate
    months: tuple[YearMonth, ...]       # the whole contract year: actual to date, projected after
    year_counted: Decimal               # U summed over the year
    year_spend: Decimal                 # N summed: U less what the cap would take off
    overrun: Decimal                    # U beyond the cap's limit: not billed (0: the cap is not reached)
    cap_reached_in: Period | None       # the month the running U reaches the limit
    shortfall: Decimal                  # the commitment less the year's spend (0: met)
    shortfall_in: Period | None         # when the shortfall is billed (in arrears) or expires (prepaid)
    commitment_met_in: Period | None    # the month the running spend reaches the commitment


@dataclass(frozen=True)
class AccountYear:
    money: Money
    period: Period                      # the period shown
    year_start: Period
    year_end: Period                    # the contract year's last billed period
    minimum: Decimal | None             # the account's monthly minimum
    cap_limit: Decimal | None
    cap_counted: Decimal                # what the account cap counted this contract year, up to and with `period`
    commitment: Decimal | None
    billing: str | None                 # prepaid | in arrears
    drawn: Decimal                      # prepaid: drawn down so far
    spent: Decimal                      # Y: the year's spend so far (what an in-arrears commitment counts)
    months: tuple[YearMonth, ...]       # the contract year's months up to and with `period`, oldest first

    @property
    def balance(self) -> Decimal | None:
        """Prepaid: what is left of the commitment; in arrears: what is still to spend to meet it."""
        if self.commitment is None:
            return None
        used = self.drawn if self.billing == PREPAID else self.spent
        return max(ZERO, self.money.round(self.commitment) - used)

    @property
    def cap_remaining(self) -> Decimal | None:
        return None if self.cap_limit is None else max(ZERO, self.money.round(self.cap_limit) - self.cap_counted)

    def projection(self, day: int, days: int) -> Projection:
        """The year-end outlook, with `day` of the `days` of this period gone by."""
        earlier = [month for month in self.months if month.period < self.period]
        current = self.months[-1] if self.months and self.months[-1].period == self.period else None
        so_far = current.counted if current else ZERO
        round_ = self.money.round
        if earlier:
            rate = round_(sum((m.counted for m in earlier), ZERO) / len(earlier))
            method = (f"the average month of the {len(earlier)} earlier month{'s' * (len(earlier) != 1)} "
                      f"of the contract year")
        elif day > 0:
            rate = round_(so_far * days / day)
            method = f"this month so far ({day} of {days} days) scaled to the whole month"
        else:
            rate, method = ZERO, "no month of the contract year has begun"
        floor = round_(self.minimum) if self.minimum is not None else ZERO
        rate = max(rate, floor)
        projected = [YearMonth(self.period, "projected", max(so_far, rate), ZERO)] if day < days else []
        later = self.period.shift(1)
        while later <= self.year_end:
            projected.append(YearMonth(later, "projected", rate, ZERO))
            later = later.shift(1)
        actual = earlier + ([current] if current and day >= days else [])
        months, running, cap_reached_in = [], ZERO, None
        limit = round_(self.cap_limit) if self.cap_limit is not None else None
        for month in actual + projected:
            billed = month.billed
            if month.source == "projected":
                billed = month.counted if limit is None else max(ZERO, min(month.counted, limit - running))
            running += month.counted
            if limit is not None and cap_reached_in is None and running >= limit:
                cap_reached_in = month.period
            months.append(YearMonth(month.period, month.source, month.counted, billed))
        year_counted = sum((m.counted for m in months), ZERO)
        year_spend = sum((m.billed for m in months), ZERO)
        overrun = max(ZERO, year_counted - limit) if limit is not None else ZERO
        shortfall, commitment_met_in = ZERO, None
        if self.commitment is not None:
            commitment = round_(self.commitment)
            shortfall = max(ZERO, commitment - year_spend)
            spent = ZERO
            for month in months:
                spent += month.billed
                if spent >= commitment:
                    commitment_met_in = month.period
                    break
        return Projection(method, rate, tuple(months), year_counted, year_spend, overrun, cap_reached_in,
                          shortfall, self.year_end if shortfall else None, commitment_met_in)


def year_of(starts: dt.date, ends: dt.date | None, period: Period) -> tuple[Period, Period]:
    """The contract year `period` falls in: its first period and its last billed one."""
    year_start = contract_year_start(starts, period)
    last = year_start.shift(11)
    if ends is not None:
        last = min(last, Period.of(ends))
    return year_start, last


def account_year(plan: Plan, counts: AccountCounts, period: Period, months: tuple[YearMonth, ...]) -> AccountYear | None:
    """The account rules of `plan` (None without an account block) over the contract year up to `period`, with
    the counts the engine carried after it."""
    if plan.account is None:
        return None
    terms = plan.terms
    year_start, year_end = year_of(terms.starts, terms.ends, period)
    minimum, cap, commitment = (plan.account_step(name) for name in ("account_minimum", "account_cap", "commitment"))
    return AccountYear(
        money=terms.money, period=period, year_start=year_start, year_end=year_end,
        minimum=minimum.params.commitment if minimum else None,
        cap_limit=cap.params.limit if cap else None, cap_counted=counts.cap,
        commitment=commitment.params.amount if commitment else None,
        billing=commitment.params.billing if commitment else None,
        drawn=counts.drawn, spent=counts.spent, months=months,
    )
