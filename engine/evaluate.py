"""The evaluator: walks a plan, step by step, over one period's usage.

It knows no rule. Each step carries what runs it (a rule primitive's runner, attached
by the compiler, or a core step's in engine/steps.py); the order is the plan's. Across the periods of a contract
year the cap ledger carries what each cap has counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from engine.periods import Period, contract_year_start, periods_between
from engine.plan import Phase, Plan
from engine.sheet import CapLedger, Sheet
from engine.steps import SITE_INACTIVE
from engine.usage import Tally, Usage


class OutsideContract(ValueError):
    """The period asked for is not one the contract bills."""


@dataclass(frozen=True)
class SiteResult:
    site: str
    name: str
    lines: tuple
    total: Decimal


@dataclass
class PeriodResult:
    period: Period
    plan: Plan
    sites: list[SiteResult]
    unbilled: dict[tuple[str, str, str], Tally]
    cap_counts: dict[tuple[str, str], Decimal]  # after this period: (site, cap scope key) → counted in the year


@dataclass
class Evaluation:
    """One period's run: the usage cells, a worksheet per site, and what is not billed."""

    cells: dict
    sheets: dict[str, Sheet]
    unbilled: dict[tuple[str, str, str], Tally] = field(default_factory=dict)

    def report(self, reason: str, site: str, category: str, tally: Tally) -> None:
        key = (reason, site, category)
        if key not in self.unbilled:
            self.unbilled[key] = Tally()
        self.unbilled[key].add(tally.quantity, tally.events)


def run_period(plan: Plan, period: Period, cells: dict, ledger: CapLedger) -> PeriodResult:
    terms = plan.terms
    first = max(period.first_day, terms.starts)
    last = min(period.last_day, terms.ends) if terms.ends else period.last_day
    labels = dict(terms.categories)
    sheets = {
        site.site: Sheet(site.site, site.name, period, terms.money, labels, ledger, {}, first, last)
        for site in plan.sites
    }
    evaluation = Evaluation(cells, sheets)
    for step in plan.steps:
        step.run(step, evaluation)
    results = []
    for site in plan.sites:
        sheet = sheets[site.site]
        for step in site.steps:
            if step.phase is not Phase.METER and sheet.active_days == 0:
                break  # no billable day: the site is not billed this period, only its usage is reported
            step.run(step, sheet)
        for category, tally in sheet.inactive.items():
            evaluation.report(SITE_INACTIVE, site.site, category, tally)
        if sheet.active_days > 0:
            results.append(SiteResult(site.site, site.name, tuple(sheet.lines), sheet.total))
    return PeriodResult(period, plan, results, evaluation.unbilled, dict(ledger.counted))


@dataclass(frozen=True)
class Timeline:
    """The versions of one contract, each in effect from its period on."""

    versions: tuple[tuple[Period, Plan], ...]

    def __post_init__(self):
        object.__setattr__(self, "versions", tuple(sorted(self.versions, key=lambda v: v[0])))

    @property
    def first(self) -> Plan:
        return self.versions[0][1]

    def plan_for(self, period: Period) -> Plan:
        current = self.versions[0][1]
        for effective, plan in self.versions:
            if effective <= period:
                current = plan
        return current

    def require_billed(self, period: Period) -> None:
        """Raises OutsideContract for a period the contract does not bill."""
        terms = self.plan_for(period).terms
        if Period.of(terms.starts) <= period and (terms.ends is None or period <= Period.of(terms.ends)):
            return
        ends = f" to {terms.ends.isoformat()}" if terms.ends else ""
        raise OutsideContract(
            f"period {period} is outside the contract '{terms.contract_id}', "
            f"which runs from {terms.starts.isoformat()}{ends}"
        )


@dataclass(frozen=True)
class Carried:
    """Cap counts frozen by an issued invoice: the counts after `period`, taken as they are."""

    period: Period
    cap_counts: dict[tuple[str, str], Decimal]


def bill(timeline: Timeline, usage: Usage, period: Period, carried: Carried | None = None) -> PeriodResult:
    """One period's result, after running the earlier periods of its contract year for the caps.

    With `carried` (the last issued invoice before `period` in the same contract
    year), the caps start from what that invoice counted instead of recomputing
    the periods up to it.
    """
    timeline.require_billed(period)
    ledger = CapLedger()
    year_start = contract_year_start(timeline.first.terms.starts, period)
    ledger.enter_year(year_start)
    first = year_start
    if carried is not None and year_start <= carried.period < period:
        ledger.counted.update(carried.cap_counts)
        first = carried.period.shift(1)
    result = None
    for current in periods_between(first, period):
        result = run_period(timeline.plan_for(current), current, usage.period(current), ledger)
    return result
