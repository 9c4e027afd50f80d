"""The dashboard's figures as the page and its JSON show them: exact amounts for programs, and under `display`
and `bars` the formatted texts and bar fractions, by the keys the page's elements carry (static/dashboard.js).

    fmt = Formats("en_GB", now)
    view = view_of(board, fmt, site)    # board: review.dashboard.Dashboard; site: one of board.sites, or None

Nothing here reads a request or the database: admin_app/dashboard.py hands over the figures and the locale.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
from decimal import ROUND_CEILING, Decimal
from zoneinfo import ZoneInfo

from babel import Locale
from babel.numbers import format_decimal, format_percent

from engine.lines import kind_of
from engine.money import format_quantity
from review.dashboard import Dashboard


class Formats:
    """Numbers as the environment's locale writes them; money with the contract's currency and minor unit."""

    def __init__(self, locale: str, now: dt.datetime):
        self.locale, self.now = locale, now

    def money(self, board: Dashboard, amount: Decimal) -> str:
        pattern, locale = currency_pattern(self.locale)
        return pattern.apply(board.money.round(amount), locale, currency=board.money.currency, currency_digits=True)

    def axis_money(self, board: Dashboard, amount: Decimal) -> str:
        """An axis tick: the currency, no places the round value does not have (£5,000, £2.5)."""
        pattern, locale = currency_pattern(self.locale)
        places = max(0, -amount.normalize().as_tuple().exponent)
        pattern = copy.copy(pattern)
        pattern.frac_prec = (places, places)
        return pattern.apply(amount, locale, currency=board.money.currency, currency_digits=False)

    def quantity(self, amount: Decimal) -> str:
        return format_decimal(amount, locale=self.locale, decimal_quantization=False)

    def count(self, number: int) -> str:
        return format_decimal(number, locale=self.locale)

    def percent(self, fraction: Decimal) -> str:
        return format_percent(fraction, locale=self.locale, decimal_quantization=True)

    def elapsed(self, board: Dashboard) -> tuple[int, int]:
        """(days of the period gone by today, days in the period) in the contract's time zone."""
        period, today = board.period, self.now.astimezone(ZoneInfo(board.timezone)).date()
        if today < period.first_day:
            return 0, period.days
        if today > period.last_day:
            return period.days, period.days
        return today.day, period.days


@functools.lru_cache(maxsize=16)
def currency_pattern(locale: str):
    """The locale's standard currency pattern, parsed once (what babel's format_currency does on every call)."""
    parsed = Locale.parse(locale)
    return parsed.currency_formats["standard"], parsed


def view_of(board: Dashboard, fmt: Formats, site=None) -> dict:
    """board_view, and with a site its usage per category (`detail_usage`) and the texts of its detail under
    `display`, for both the page and the JSON (each site's usage lines for all sites would double the JSON every
    poll carries; the customer's usage per category is under `categories`)."""
    view = board_view(board, fmt)
    if site is None:
        return view
    usage = [_usage_json(board, usage) for usage in site.usage]
    return {**view, "display": {**view["display"], **site_display(board, site, fmt)}, "detail": site.site,
            "detail_usage": usage}


def status_of(board: Dashboard) -> str:
    """open (the engine's draft now), issued (the issued invoice as stored) or withheld (not what was issued)."""
    return "withheld" if board.tampered else "issued" if board.issued else "open"


def board_view(board: Dashboard, fmt: Formats) -> dict:
    """The customer's figures: totals, usage per category, each site with its minimums and caps, the history,
    and with an account block its contract year (cap, commitment, burn-down and projection)."""
    display: dict[str, str] = {}
    bars: dict[str, float] = {}
    day, days = fmt.elapsed(board)
    status = status_of(board)
    if status == "withheld":     # nothing of the stored figures is shown: only why
        return {"customer": board.customer, "name": board.name, "period": str(board.period),
                "currency": board.money.currency, "status": status, "withheld": board.tampered,
                "invoice_number": board.issued.number, "display": {}, "bars": {}}
    _headline(board, fmt, display, bars, (day, days))
    amount = board.money.format
    return {
        "customer": board.customer, "name": board.name, "period": str(board.period),
        "currency": board.money.currency, "status": status,
        "invoice_number": board.issued.number if board.issued else None,
        "computed_at": board.computed_at.isoformat(),
        "elapsed_days": None if board.issued else day, "period_days": days,
        "totals": {kind: amount(value) for kind, value in board.totals.items()},
        "events": board.events, "unbilled_events": board.unbilled_events,
        "categories": _categories(board, fmt, display, bars),
        "sites": [_site(board, site, fmt, display, bars) for site in board.sites],
        "account_lines": [{"kind": line.kind, "title": kind_of(line).title, "amount": amount(line.amount),
                           "explanation": line.explanation} for line in board.account_lines],
        "account": account_view(board, fmt, display, bars, (day, days)),
        "history": _history(board, fmt, display, bars),
        "history_ticks": sum(key.startswith("hist:tick:") for key in bars),
        "withheld": [{"period": str(period), "reason": reason} for period, reason in board.withheld],
        "display": display, "bars": bars,
    }


def _headline(board: Dashboard, fmt: Formats, display: dict, bars: dict, elapsed: tuple[int, int]) -> None:
    for kind in board.totals:   # every `totals` entry of the invoice, and its total
        display[kind] = fmt.money(board, board.totals[kind])
    display["sites_total"] = fmt.money(board, sum((site.charges for site in board.sites), Decimal(0)))
    display["events"] = fmt.count(board.events)
    display["unbilled"] = fmt.count(board.unbilled_events)
    day, days = elapsed
    if board.issued:
        display["elapsed"] = f"invoice {board.issued.number}" if board.issued.number else "issued invoice"
        bars["elapsed"] = 1.0
    else:
        display["elapsed"] = f"day {day} of {days}"
        bars["elapsed"] = round(day / days, 4)
    display["computed_at"] = board.computed_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    for index, line in enumerate(board.account_lines):
        display[f"acct:line:{index}"] = fmt.money(board, line.amount)


def round_ticks(top: Decimal, intervals: int = 4) -> tuple[Decimal, list[Decimal]]:
    """For drawing: the axis's end and its ticks from 0, at a round step (1, 2, 2.5 or 5 × 10ⁿ) that covers `top`
    in at most `intervals` steps."""
    if top <= 0:
        return Decimal(1), [Decimal(0), Decimal(1)]
    step = Decimal(1).scaleb((top / intervals).adjusted())
    while True:
        for factor in (1, 2, Decimal("2.5"), 5):
            candidate = step * factor
            count = (top / candidate).to_integral_value(rounding=ROUND_CEILING)
            if count <= intervals:
                ticks = [(candidate * n).normalize() + 0 for n in range(int(count) + 1)]
                return ticks[-1], ticks
        step *= 10


def _axis(board: Dashboard, fmt: Formats, prefix: str, top: Decimal, display: dict, bars: dict) -> Decimal:
    """Ticks of a chart's y axis at round steps: their texts and positions under `prefix:tick:N`."""
    end, ticks = round_ticks(top)
    for index, tick in enumerate(ticks):
        display[f"{prefix}:tick:{index}"] = fmt.axis_money(board, tick) if tick else "0"
        bars[f"{prefix}:tick:{index}"] = _fraction(tick, end)
    return end


def account_view(board: Dashboard, fmt: Formats, display: dict, bars: dict, elapsed: tuple[int, int]) -> dict | None:
    """The account block's contract year: the cap's progress, the commitment's balance, the months of the year
    and, for an open period, the projection (review/account_year.py): its months continue the burn-down, and what
    it says of the cap and the commitment. An issued period shows its year up to itself, nothing projected."""
    year = board.account
    if year is None:
        return None
    amount = board.money.format
    outlook = None if board.issued else year.projection(*elapsed)
    view = {"year_start": str(year.year_start), "year_end": str(year.year_end),
            "minimum": amount(year.minimum) if year.minimum is not None else None}
    if year.cap_limit is not None:
        view["cap"] = _account_cap(board, year, outlook, fmt, display, bars)
    if year.commitment is not None:
        view["commitment"] = _commitment(board, year, outlook, fmt, display, bars)
    view["months"] = _burn_down(board, year, outlook, fmt, display, bars)
    view["ticks"] = sum(key.startswith("burn:tick:") for key in bars)
    view["projection"] = None
    if outlook is not None:
        display["acct:proj:spend"] = fmt.money(board, outlook.year_spend)
        display["acct:proj:rate"] = fmt.money(board, outlook.rate)
        view["projection"] = {"method": outlook.method, "rate": amount(outlook.rate),
                              "year_counted": amount(outlook.year_counted), "year_spend": amount(outlook.year_spend)}
    return view


def _account_cap(board: Dashboard, year, outlook, fmt: Formats, display: dict, bars: dict) -> dict:
    amount, limit = board.money.format, board.money.round(year.cap_limit)
    bars["acct:cap"] = _fraction(year.cap_counted, limit)
    display["acct:cap"] = f"{fmt.money(board, year.cap_counted)} of {fmt.money(board, limit)}"
    display["acct:cap:state"] = "reached" if not year.cap_remaining else f"{fmt.money(board, year.cap_remaining)} left"
    cap = {"limit": amount(limit), "counted": amount(year.cap_counted), "remaining": amount(year.cap_remaining),
           "reached": not year.cap_remaining, "projected_reached_in": None, "projected_overrun": None}
    if outlook is not None:
        reached = outlook.cap_reached_in
        cap.update(projected_reached_in=str(reached) if reached else None, projected_overrun=amount(outlook.overrun))
        display["acct:proj:cap"] = (
            f"reached in {reached}: {fmt.money(board, outlook.overrun)} above the cap is not billed" if reached
            else f"not reached: {fmt.money(board, limit - outlook.year_counted)} to spare")
    return cap


def _commitment(board: Dashboard, year, outlook, fmt: Formats, display: dict, bars: dict) -> dict:
    amount, commitment = board.money.format, board.money.round(year.commitment)
    prepaid = year.billing == "prepaid"
    bars["acct:commit"] = _fraction(year.drawn if prepaid else year.spent, commitment)
    display["acct:commit"] = (f"{fmt.money(board, year.balance)} left of {fmt.money(board, commitment)}" if prepaid
                              else f"{fmt.money(board, year.spent)} spent of {fmt.money(board, commitment)}")
    view = {"amount": amount(commitment), "billing": year.billing, "drawn": amount(year.drawn),
            "spent": amount(year.spent), "balance": amount(year.balance), "projected_shortfall": None,
            "shortfall_in": None, "met_in": None}
    if outlook is not None:
        view.update(projected_shortfall=amount(outlook.shortfall),
                    shortfall_in=str(outlook.shortfall_in) if outlook.shortfall_in else None,
                    met_in=str(outlook.commitment_met_in) if outlook.commitment_met_in else None)
        if outlook.shortfall:
            what = "expires unrefunded" if prepaid else "billed as a true-up"
            display["acct:proj:commit"] = (f"short {fmt.money(board, outlook.shortfall)}: {what} in "
                                           f"{outlook.shortfall_in}")
        else:
            display["acct:proj:commit"] = f"met in {outlook.commitment_met_in}"
    return view


def _burn_down(board: Dashboard, year, outlook, fmt: Formats, display: dict, bars: dict) -> list[dict]:
    """The year's spend by month, cumulative (the projection's months after the actual ones, when there is one),
    on an axis of round steps that holds the commitment and the cap's limit."""
    amount, money = board.money.format, board.money
    months = outlook.months if outlook is not None else year.months
    spent = sum((month.billed for month in months), Decimal(0))
    limits = {name: money.round(value) for name, value in (("commit", year.commitment), ("cap", year.cap_limit))
              if value is not None}
    end = _axis(board, fmt, "burn", max([spent, *limits.values()]), display, bars)
    shown, running = [], Decimal(0)
    for month in months:
        running += month.billed
        key = f"burn:{month.period}"
        bars[key] = _fraction(running, end)
        display[key] = fmt.money(board, running)
        display[f"{key}:month"] = fmt.money(board, month.billed)
        shown.append({"period": str(month.period), "source": month.source, "counted": amount(month.counted),
                      "billed": amount(month.billed), "cumulative": amount(running)})
    for name, value in limits.items():
        bars[f"burn:line:{name}"] = _fraction(value, end)
    return shown


def _usage_json(board: Dashboard, usage) -> dict:
    return {"category": usage.category, "label": usage.label, "quantity": format_quantity(usage.quantity),
            "events": usage.events, "amount": board.money.format(usage.amount), "billed": usage.billed}


def _categories(board: Dashboard, fmt: Formats, display: dict, bars: dict) -> list[dict]:
    largest = max((usage.amount for usage in board.categories), default=Decimal(0))
    for usage in board.categories:
        key = f"cat:{usage.category}"
        bars[key] = _fraction(usage.amount, largest)
        display[f"{key}:amount"] = fmt.money(board, usage.amount)
        display[f"{key}:quantity"] = fmt.quantity(usage.quantity)
        display[f"{key}:events"] = fmt.count(usage.events)
    return [_usage_json(board, usage) for usage in board.categories]


def _site(board: Dashboard, site, fmt: Formats, display: dict, bars: dict) -> dict:
    prefix = f"site:{site.site}"
    amount = board.money.format
    display[f"{prefix}:charges"] = fmt.money(board, site.charges)
    display[f"{prefix}:events"] = fmt.count(site.events)
    for kind, value in site.kind_totals.items():
        display[f"{prefix}:{kind}"] = fmt.money(board, value)
    return {
        "site": site.site, "name": site.name, "charges": amount(site.charges), "events": site.events,
        "totals": {kind: amount(value) for kind, value in site.kind_totals.items()},
        "unbilled_events": site.unbilled_events,
        "minimums": [_minimum(board, minimum, f"{prefix}:min:{index}", fmt, display, bars)
                     for index, minimum in enumerate(site.minimums)],
        "caps": [_cap(board, cap, f"{prefix}:cap:{index}", fmt, display, bars) for index, cap in enumerate(site.caps)],
    }


def _minimum(board: Dashboard, minimum, key: str, fmt: Formats, display: dict, bars: dict) -> dict:
    amount = board.money.format
    bars[key] = float(round(minimum.fraction, 4))
    if minimum.unit == "spend":
        counted, commitment = fmt.money(board, minimum.counted), fmt.money(board, minimum.commitment)
    else:
        counted, commitment = fmt.quantity(minimum.counted), fmt.quantity(minimum.commitment) + " units"
    display[key] = f"{counted} of {commitment}"
    display[f"{key}:state"] = "met" if minimum.met else f"short {fmt.money(board, minimum.shortfall)}"
    return {
        "categories": list(minimum.categories), "unit": minimum.unit,
        "commitment": _exact(minimum.commitment, minimum.unit, amount),
        "full_commitment": _exact(minimum.full_commitment, minimum.unit, amount),
        "prorated": minimum.prorated, "counted": _exact(minimum.counted, minimum.unit, amount),
        "shortfall": amount(minimum.shortfall), "met": minimum.met,
    }


def _cap(board: Dashboard, cap, key: str, fmt: Formats, display: dict, bars: dict) -> dict:
    amount = board.money.format
    bars[f"{key}:before"] = float(round(cap.fraction(cap.counted_before), 4))
    bars[f"{key}:now"] = float(round(cap.fraction(cap.counted_before + cap.counted_now), 4))
    display[key] = f"{fmt.money(board, cap.counted_before + cap.counted_now)} of {fmt.money(board, cap.limit)}"
    display[f"{key}:state"] = "reached" if cap.reached else f"{fmt.money(board, cap.remaining)} left"
    return {
        "categories": list(cap.categories), "limit": amount(cap.limit),
        "counted_before": amount(cap.counted_before), "counted_now": amount(cap.counted_now),
        "in_scope": amount(cap.in_scope), "reduction": amount(cap.reduction),
        "remaining": amount(cap.remaining), "reached": cap.reached,
    }


def _history(board: Dashboard, fmt: Formats, display: dict, bars: dict) -> list[dict]:
    amount = board.money.format
    top = _axis(board, fmt, "hist", max((max(point.charges, point.usage) for point in board.history),
                                        default=Decimal(0)), display, bars)
    history = []
    for point in board.history:
        key = f"hist:{point.period}"
        bars[f"{key}:charges"] = _fraction(point.charges, top)
        bars[f"{key}:usage"] = _fraction(point.usage, top)
        display[f"{key}:charges"] = fmt.money(board, point.charges)
        display[f"{key}:usage"] = fmt.money(board, point.usage)
        display[f"{key}:events"] = fmt.count(point.events)
        history.append({"period": str(point.period), "source": point.source, "charges": amount(point.charges),
                        "usage": amount(point.usage), "events": point.events, "number": point.number})
    return history


def site_display(board: Dashboard, site, fmt: Formats) -> dict[str, str]:
    """The formatted figures of one site's detail, by the keys its cells carry (`d:` …)."""
    display = {}
    for usage in site.usage:
        key = f"d:cat:{usage.category}"
        display[f"{key}:quantity"] = fmt.quantity(usage.quantity)
        display[f"{key}:events"] = fmt.count(usage.events)
        display[f"{key}:amount"] = fmt.money(board, usage.amount)
    for index, minimum in enumerate(site.minimums):
        key = f"d:min:{index}"
        if minimum.unit == "spend":
            display[f"{key}:commitment"] = fmt.money(board, minimum.commitment)
            display[f"{key}:counted"] = fmt.money(board, minimum.counted)
        else:
            display[f"{key}:commitment"] = f"{fmt.quantity(minimum.commitment)} units"
            display[f"{key}:counted"] = f"{fmt.quantity(minimum.counted)} units"
        display[f"{key}:shortfall"] = "met" if minimum.met else fmt.money(board, minimum.shortfall)
    for index, cap in enumerate(site.caps):
        key = f"d:cap:{index}"
        for name, value in (("limit", cap.limit), ("before", cap.counted_before), ("now", cap.counted_now),
                            ("reduction", -cap.reduction), ("remaining", cap.remaining)):
            display[f"{key}:{name}"] = fmt.money(board, value)
    return display


def _fraction(part: Decimal, whole: Decimal) -> float:
    """For drawing only: part ÷ whole between 0 and 1, to four places."""
    if whole <= 0:
        return 0.0
    return float(round(min(Decimal(1), max(Decimal(0), part / whole)), 4))


def _exact(value: Decimal, unit: str, amount) -> str:
    return amount(value) if unit == "spend" else format_quantity(value)
