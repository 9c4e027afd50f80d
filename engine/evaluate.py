"""The evaluator: walks a plan, step by step, over one period's usage.

It knows no rule. Each step carries what runs it (a rule primitive's runner,
attached by the compiler, or a core step's in engine/steps.py); the order is the
plan's. Across the periods of a contract year the cap ledger carries what each
cap has counted, and what the account rules carry (engine/account.py). After
every site, the account phase runs once on the site totals, late lines included.

    bill(timeline, usage, period)            # the file mode: one period from usage
    bill_invoice(BillingInputs(...))         # the database mode: the same, with what issued invoices
                                             # froze and the late usage of issued periods (engine/late.py)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from engine.account import AccountResult, account_sheet
from engine.late import LateDifference, LateUsage, late_difference
from engine.periods import Period, contract_year_start, periods_between
from engine.plan import Phase, Plan
from engine.sheet import AccountCounts, CapLedger, Sheet
from engine.steps import SITE_INACTIVE
from engine.usage import Tally, UnbilledKey, Usage

ZERO = Decimal(0)


class OutsideContract(ValueError):
    """The period asked for is not one the contract bills."""


@dataclass(frozen=True)
class SiteResult:
    site: str
    name: str
    lines: tuple
    total: Decimal
    late_for: tuple[Period | None, ...] = ()   # per line: the issued period whose late usage it bills, if any

    def late_period(self, index: int) -> Period | None:
        return self.late_for[index] if index < len(self.late_for) else None


@dataclass
class PeriodResult:
    period: Period
    plan: Plan
    sites: list[SiteResult]
    unbilled: dict[tuple[str, str, str], Tally]
    cap_counts: dict[tuple[str, str], Decimal]  # after this period: (site, cap scope key) → counted in the year
    cap_counts_before: dict[tuple[str, str], Decimal] = field(default_factory=dict)   # … when it began
    # Unbilled usage of issued periods reported now: (that period, (reason, site, category), tally), oldest first.
    late_unbilled: tuple[tuple[Period, UnbilledKey, Tally], ...] = ()
    account: AccountResult | None = None     # the account section, when the version in effect has an account block
    account_counts: AccountCounts = AccountCounts()          # what the account rules carry, after this period
    account_counts_before: AccountCounts = AccountCounts()   # … when it began

    @property
    def total(self) -> Decimal:
        return sum((site.total for site in self.sites), ZERO) + (self.account.total if self.account else ZERO)


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


def run_period(plan: Plan, period: Period, cells: dict, ledger: CapLedger,
               differences: tuple[LateDifference, ...] = ()) -> PeriodResult:
    """One period: every site's steps, the late lines of `differences` added to the sites, then the account
    phase on the site totals."""
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
    results = _with_late_lines(results, differences)
    before = ledger.account
    account = _settle_account(plan, period, results, ledger) if plan.account is not None else None
    late_unbilled = tuple((difference.period, key, tally)
                          for difference in differences for key, tally in sorted(difference.unbilled.items()))
    return PeriodResult(period, plan, results, evaluation.unbilled, dict(ledger.counted),
                        late_unbilled=late_unbilled, account=account, account_counts=ledger.account,
                        account_counts_before=before)


def _settle_account(plan: Plan, period: Period, sites: list[SiteResult], ledger: CapLedger) -> AccountResult:
    terms = plan.terms
    sheet = account_sheet(period, terms.money, terms.starts, terms.ends, ledger,
                          sum((site.total for site in sites), ZERO))
    for step in plan.account:
        step.run(step, sheet)
    return AccountResult(tuple(sheet.lines), sheet.total)


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
    account: AccountCounts = AccountCounts()


def bill(timeline: Timeline, usage: Usage, period: Period, carried: Carried | None = None,
         differences: tuple[LateDifference, ...] = ()) -> PeriodResult:
    """One period's result, after running the earlier periods of its contract year for the caps.

    With `carried` (the last issued invoice before `period` in the same contract
    year), the caps start from what that invoice counted instead of recomputing
    the periods up to it. The late lines of `differences` are billed in `period`.
    """
    timeline.require_billed(period)
    ledger = CapLedger()
    year_start = contract_year_start(timeline.first.terms.starts, period)
    ledger.enter_year(year_start)
    first = year_start
    if carried is not None and year_start <= carried.period < period:
        ledger.counted.update(carried.cap_counts)
        ledger.account = carried.account
        first = carried.period.shift(1)
    for current in periods_between(first, period.shift(-1)):
        run_period(timeline.plan_for(current), current, usage.period(current), ledger)
    before = dict(ledger.counted)
    result = run_period(timeline.plan_for(period), period, usage.period(period), ledger, differences)
    result.cap_counts_before = before
    return result


@dataclass(frozen=True)
class BillingInputs:
    """Everything one period's invoice is computed from, gathered once by whoever reads the data."""

    timeline: Timeline
    period: Period
    usage: Usage                          # on-time usage, from the period after `carried` (or the year's start) on
    carried: Carried | None = None        # the counts the last issued invoice of the contract year froze
    late: tuple[LateUsage, ...] = ()      # issued periods' late usage billed by this invoice, oldest first


def bill_invoice(inputs: BillingInputs) -> PeriodResult:
    """The period's result with every line its invoice shows: its own, then each late period's differences.

    What late usage adds to the caps of an earlier period of the same contract
    year is counted on top of what that period's issued invoice froze. The account
    rules count late lines where they are billed: in this period (docs/late-events.md).
    """
    timeline, period = inputs.timeline, inputs.period
    differences = [_late(timeline, late) for late in inputs.late]
    carried = inputs.carried
    if carried is not None:
        year_start = contract_year_start(timeline.first.terms.starts, period)
        counts = dict(carried.cap_counts)
        for difference in differences:
            if contract_year_start(timeline.first.terms.starts, difference.period) == year_start:
                for key, amount in difference.cap_counts.items():
                    counts[key] = counts.get(key, ZERO) + amount
        carried = Carried(carried.period, counts, carried.account)
    return bill(timeline, inputs.usage, period, carried, tuple(differences))


def _late(timeline: Timeline, late: LateUsage) -> LateDifference:
    carried = Carried(late.period.shift(-1), late.counts_before)
    before = bill(timeline, late.billed, late.period, carried)
    after = bill(timeline, _combined(late.billed, late.added), late.period, carried) if late.added.by_period else before
    return late_difference(before, after, late)


def _combined(*usages: Usage) -> Usage:
    combined = Usage()
    for usage in usages:
        for cells in usage.by_period.values():
            for (day, site, category), tally in cells.items():
                combined.add(day, site, category, tally.quantity, tally.events)
    return combined


def _with_late_lines(results: list[SiteResult], differences: tuple[LateDifference, ...]) -> list[SiteResult]:
    """The sites with each late period's lines added (a site inactive now gets its own entry, after the others),
    each marked with its period."""
    if not differences:
        return results
    sites = {site.site: site for site in results}
    order = [site.site for site in results]
    for difference in differences:
        for site_id, lines in difference.lines.items():
            site = sites.get(site_id)
            if site is None:
                site = SiteResult(site_id, difference.names[site_id], (), ZERO)
                order.append(site_id)
            late_for = (site.late_for or (None,) * len(site.lines)) + (difference.period,) * len(lines)
            sites[site_id] = SiteResult(site.site, site.name, site.lines + tuple(lines),
                                        site.total + sum((line.amount for line in lines), ZERO), late_for)
    return [sites[s] for s in order]
