"""What the dashboard shows for a customer's period: the invoice the engine computes now from the rollups.

    now = figures(session, "acme-health", Period(2026, 6))
    now.total, [(site.site, site.charges) for site in now.sites]

    board = dashboard(session, "acme-health", Period(2026, 6))
    board.sites[0].minimums[0].shortfall    # the true-up if the period closed now
    board.sites[0].caps[0].remaining        # what the annual cap leaves in the contract year
    board.history                           # the last periods: issued invoices as frozen, open ones computed
    board.issued                            # this period's issued invoice: then every figure is its frozen one
    board.account                           # an account block's year: cap, commitment, months (review/account_year.py)
    board.withheld                          # issued invoices whose stored document is not the one issued

The dashboard and the invoice are one computation (store/billing_from_db.py on
the same rollups with the same contract version), so the dashboard's figure of a
period can only differ from its invoice when the data under them changed; the
reconciliation (store/reconcile.py) records these figures when a period closes
and compares them with the draft.

A period with an issued invoice in force shows that invoice: its sites, lines and
totals are read from the stored document (invoicing/stored.py), never recomputed,
and its caps' counts are the ones it froze. Every issued document the dashboard
reads is first checked against the digest recorded when it was issued
(ledger/invoices.py `frozen_mismatch`); one that is not what was issued is
withheld (`withheld`), never shown as if it were.

Progress toward minimums and caps is read from the engine, never worked out
again here:
- a minimum's line (engine/lines.py MinimumLine) carries its commitment, what it
  measured and the true-up; a minimum already met writes no line, so its
  commitment is the one the same plan writes for the period with no usage at
  all (prorated by the engine exactly as on the invoice), and what it measured is
  the billed usage lines of its scope (units: the quantity of its category);
- a cap's line (CapLine) carries its limit, what was counted before and what is
  in scope now; a cap not reached writes no line, so its progress is the
  engine's own cap counts: before the period as an issued invoice records them
  (store/issuing.py) and after it (PeriodResult.cap_counts).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Callable

from sqlalchemy.orm import Session

from engine.account_lines import ACCOUNT_CAP, ACCOUNT_MINIMUM
from engine.evaluate import run_period
from engine.lines import CapLine, MinimumLine, UsageLine, kind_of, totals_titles
from engine.money import Money
from engine.periods import Period, contract_year_start
from engine.sheet import AccountCounts, CapLedger
from invoicing.invoice import Invoice as InvoiceView
from invoicing.stored import invoice_from_document
from ledger.billing_from_db import ComputedInvoice, invoice_from_db
from ledger.invoices import (
    account_counts_from_json,
    counts_from_json,
    frozen_mismatch,
    issued_invoices,
)
from review.account_year import AccountYear, YearMonth, account_year, year_of

ZERO = Decimal(0)
HISTORY_PERIODS = 12


@dataclass(frozen=True)
class SiteFigure:
    site: str
    name: str
    charges: Decimal        # the site's total as the invoice of the period would show it now


@dataclass(frozen=True)
class Figures:
    customer: str
    period: Period
    sites: tuple[SiteFigure, ...]
    computed: ComputedInvoice

    @property
    def total(self) -> Decimal:
        return sum((site.charges for site in self.sites), Decimal(0))


def figures(session: Session, customer: str, period: Period) -> Figures:
    """Raises ledger.contracts.UnknownContract, engine.evaluate.OutsideContract (as invoice_from_db)."""
    computed = invoice_from_db(session, customer, period)
    sites = tuple(SiteFigure(site.site, site.name, site.total) for site in computed.invoice.sites)
    return Figures(customer, period, sites, computed)


@dataclass(frozen=True)
class CategoryUsage:
    category: str
    label: str
    quantity: Decimal
    events: int
    amount: Decimal         # the usage line's amount (0 for a category disabled at the site)
    billed: bool


@dataclass(frozen=True)
class MinimumProgress:
    categories: tuple[str, ...]   # the scope as written
    unit: str                     # "spend" (an amount) or "units" (a quantity of one category)
    commitment: Decimal           # for this period, prorated by the engine for a part-month site
    full_commitment: Decimal      # as the contract writes it (equal to commitment for a whole month)
    counted: Decimal              # what the engine measured against it so far
    shortfall: Decimal            # the true-up if the period closed now (0: met)

    @property
    def prorated(self) -> bool:
        return self.unit == "spend" and self.commitment != self.full_commitment

    @property
    def met(self) -> bool:
        return not self.shortfall

    @property
    def fraction(self) -> Decimal:
        """Counted ÷ commitment, 0 to 1."""
        if self.commitment <= 0:
            return Decimal(1)
        return min(Decimal(1), max(ZERO, self.counted / self.commitment))


@dataclass(frozen=True)
class CapProgress:
    categories: tuple[str, ...]
    limit: Decimal
    counted_before: Decimal       # in the contract year before this period
    counted_now: Decimal          # counted by the cap in this period (in scope, less the reduction)
    in_scope: Decimal             # this period's in-scope amount before the cap
    reduction: Decimal            # what the cap takes off this period (0 or more)

    @property
    def remaining(self) -> Decimal:
        return max(ZERO, self.limit - self.counted_before - self.counted_now)

    @property
    def reached(self) -> bool:
        return self.remaining == 0

    def fraction(self, part: Decimal) -> Decimal:
        if self.limit <= 0:
            return Decimal(1)
        return min(Decimal(1), max(ZERO, part / self.limit))


@dataclass(frozen=True)
class SiteDashboard:
    site: str
    name: str
    charges: Decimal
    usage: tuple[CategoryUsage, ...]
    minimums: tuple[MinimumProgress, ...]
    caps: tuple[CapProgress, ...]
    kind_totals: dict                 # each `totals` entry (usage, minimum, cap, …) → the sum of the site's lines in it
    unbilled_events: int              # events of the site the invoice lists as not billed

    @property
    def events(self) -> int:
        return sum(category.events for category in self.usage)


@dataclass(frozen=True)
class PeriodPoint:
    period: Period
    source: str                 # "issued": the issued invoice's frozen figures; "computed": the engine now;
                                # "withheld": an issued invoice whose stored document is not the one issued
    charges: Decimal
    usage: Decimal              # the usage lines' amounts
    events: int                 # events on the usage lines
    number: str | None = None   # the issued invoice's number
    counted: Decimal = ZERO     # the site totals and account minimum: what an account cap counts
    account_cap: Decimal = ZERO # the account cap's reduction (0 or less)


@dataclass(frozen=True)
class Dashboard:
    figures: Figures
    name: str                   # the customer's name as the contract writes it
    money: Money
    timezone: str
    sites: tuple[SiteDashboard, ...]
    categories: tuple[CategoryUsage, ...]    # the whole customer's usage per category, in contract order
    history: tuple[PeriodPoint, ...]         # oldest first, ending with this period
    issued: PeriodPoint | None               # this period's issued invoice, if it has one in force
    computed_at: dt.datetime
    invoice: InvoiceView | None = None       # the invoice shown: the issued one as stored, else the draft computed now
    account: AccountYear | None = None       # the account block's contract year (None without one)
    withheld: tuple[tuple[Period, str], ...] = ()   # issued invoices read here that are not what was issued: why

    @property
    def customer(self) -> str:
        return self.figures.customer

    @property
    def period(self) -> Period:
        return self.figures.period

    @property
    def shown(self) -> InvoiceView:
        return self.invoice or self.figures.computed.invoice

    @property
    def totals(self) -> dict[str, Decimal]:
        """usage, minimum, cap (account, with an account block) and total: the invoice's own sums of its lines."""
        return self.shown.totals

    @property
    def account_lines(self) -> tuple:
        return self.shown.account.lines if self.shown.account else ()

    @property
    def events(self) -> int:
        return sum(category.events for category in self.categories)

    @property
    def unbilled_events(self) -> int:
        return sum(group.events for group in self.shown.unbilled)

    @property
    def tampered(self) -> str | None:
        """Why this period's issued invoice is withheld, if it is."""
        return dict(self.withheld).get(self.period)


def dashboard(session: Session, customer: str, period: Period, *, history: int = HISTORY_PERIODS,
              earlier: Callable[[Period], PeriodPoint] | None = None, now: dt.datetime | None = None) -> Dashboard:
    """The figures of `period` with their usage, minimum and cap progress per site, the periods before it and,
    with an account block, its contract year.

    `earlier(period)` gives an earlier open period's point of the history (store/dashboard_cache.py passes its
    own cached figures); by default it is computed here. Raises what `figures` raises.
    """
    now = now or dt.datetime.now(dt.UTC)
    current = figures(session, customer, period)
    computed = current.computed
    plan = computed.result.plan
    terms = plan.terms
    year_start, _ = year_of(terms.starts, terms.ends, period)
    first_shown = min(period.shift(-(history - 1)), year_start)
    issued = {p: row for p, row in issued_invoices(session, customer).items() if first_shown <= p <= period}
    withheld = _withheld(session, issued)
    invoice, before, after, account_after = (computed.invoice, computed.result.cap_counts_before,
                                             computed.result.cap_counts, computed.result.account_counts)
    row = issued.get(period)
    if row is not None and period not in withheld:
        invoice = invoice_from_document(row.document, timezone=computed.invoice.timezone)
        before, after = counts_from_json(row.cap_counts_before), counts_from_json(row.cap_counts)
        account_after = account_counts_from_json(row.cap_counts)
    commitments = _commitments(computed)
    sites = tuple(_site(site, invoice, plan, commitments.get(site.site, ()), before, after) for site in invoice.sites)
    earlier = earlier or (lambda open_period: computed_point(
        open_period, invoice_from_db(session, customer, open_period).invoice))
    first_billed = Period.of(computed.contract.timeline.first.terms.starts)
    points = {p: _point(p, computed, invoice, issued, withheld, earlier)
              for p in _periods(max(first_shown, first_billed), period)}
    shown = tuple(point for p, point in points.items() if p > period.shift(-history))
    return Dashboard(
        figures=current,
        name=invoice.customer,
        money=invoice.money,
        timezone=invoice.timezone,
        sites=sites,
        categories=_customer_usage(terms, sites),
        history=shown,
        issued=shown[-1] if shown and shown[-1].source in ("issued", "withheld") else None,
        computed_at=now,
        invoice=invoice,
        account=_account_year(plan, account_after, period, points, year_start),
        withheld=tuple(sorted(withheld.items())),
    )


def _withheld(session: Session, issued: dict) -> dict[Period, str]:
    return {p: reason for p, row in issued.items() if (reason := frozen_mismatch(session, row))}


def still_frozen(session: Session, board: Dashboard, *, shown_only: bool = False) -> bool:
    """Whether the issued invoices `board` read (with `shown_only`, only the period's own) are as they were when
    it was computed: each as issued, or still not (store/dashboard_cache.py asks before serving kept figures)."""
    read = {point.period for point in board.history if point.source in ("issued", "withheld")}
    if board.account is not None:
        read |= {month.period for month in board.account.months if month.source == "issued"}
    read |= {period for period, _ in board.withheld}
    if shown_only:
        read &= {board.period}
    if not read:
        return True
    rows = {p: row for p, row in issued_invoices(session, board.customer).items() if p in read}
    return set(rows) == read and _withheld(session, rows) == {p: r for p, r in board.withheld if p in read}


def _periods(first: Period, last: Period) -> list[Period]:
    found = []
    while first <= last:
        found.append(first)
        first = first.shift(1)
    return found


def _point(period: Period, computed: ComputedInvoice, shown: InvoiceView, issued: dict, withheld: dict,
           earlier) -> PeriodPoint:
    """A period's point: an issued invoice as frozen (or withheld), this period as shown, an earlier open one
    from `earlier`."""
    if period in withheld:
        return PeriodPoint(period, "withheld", ZERO, ZERO, 0, issued[period].number)
    if period in issued:
        row = issued[period]
        document = shown if period == computed.result.period else invoice_from_document(
            row.document, timezone=computed.invoice.timezone)
        return computed_point(period, document, source="issued", number=row.number)
    if period == computed.result.period:
        return computed_point(period, computed.invoice)
    return earlier(period)


def _account_year(plan, counts: AccountCounts, period: Period, points: dict, year_start: Period):
    """The account block's year: its months are the points of the contract year (a withheld one left out)."""
    months = tuple(YearMonth(p, point.source, point.counted, point.counted + point.account_cap)
                   for p, point in points.items() if p >= year_start and point.source != "withheld")
    return account_year(plan, counts, period, months)


def _commitments(computed: ComputedInvoice) -> dict[str, tuple[MinimumLine, ...]]:
    """Per site, every minimum as the engine writes it for this period with no usage (each then falls short by
    its whole commitment, so each writes its line): the catalogue of commitments, prorated as on the invoice."""
    result = computed.result
    year_start = contract_year_start(result.plan.terms.starts, result.period)
    empty = run_period(result.plan, result.period, {}, CapLedger(year_start=year_start))
    return {site.site: tuple(line for line in site.lines if isinstance(line, MinimumLine)) for site in empty.sites}


def _site(site, invoice: InvoiceView, plan, commitments, before: dict, after: dict) -> SiteDashboard:
    usage_lines = [line for line in site.lines if isinstance(line, UsageLine)]
    usage = tuple(CategoryUsage(line.category, line.label, line.quantity, line.events, line.amount, line.billed)
                  for line in usage_lines)
    minimum_lines = {(line.source, line.categories): line for line in site.lines if isinstance(line, MinimumLine)}
    minimums = []
    for empty in commitments:
        line = minimum_lines.get((empty.source, empty.categories))
        full = _full_commitment(plan, site.site, empty)
        if line is not None:
            minimums.append(MinimumProgress(line.categories, line.unit, line.commitment, full, line.basis, line.amount))
        else:
            minimums.append(MinimumProgress(empty.categories, empty.unit, empty.commitment, full,
                                            _measured(empty, usage_lines), ZERO))
    cap_lines = {(line.source, line.categories): line for line in site.lines if isinstance(line, CapLine)}
    caps = []
    site_plan = plan.site(site.site)
    for step in site_plan.steps if site_plan else ():
        if step.primitive != "cap":
            continue
        key = (site.site, step.params.scope.key)
        counted_before = before.get(key, ZERO)
        counted_now = after.get(key, ZERO) - counted_before
        line = cap_lines.get((step.source, step.params.scope.written))
        if line is not None:
            caps.append(CapProgress(line.categories, line.limit, line.counted_before, counted_now, line.in_scope,
                                    -line.amount))
        else:
            caps.append(CapProgress(step.params.scope.written, invoice.money.round(step.params.limit), counted_before,
                                    counted_now, counted_now, ZERO))
    kinds = dict.fromkeys(totals_titles(), ZERO)
    for line in site.lines:
        kinds[kind_of(line).totals_key] += line.amount
    unbilled = sum(group.events for group in invoice.unbilled if group.site == site.site)
    return SiteDashboard(site.site, site.name, site.total, usage, tuple(minimums), tuple(caps), kinds, unbilled)


def _full_commitment(plan, site: str, empty: MinimumLine) -> Decimal:
    """The commitment as the contract writes it: the step behind the line (found by its source) has it."""
    site_plan = plan.site(site)
    for step in site_plan.steps if site_plan else ():
        if step.source == empty.source and step.phase.value == "minimum":
            return getattr(step.params, "commitment", empty.commitment)
    return empty.commitment


def _measured(minimum: MinimumLine, usage_lines: list[UsageLine]) -> Decimal:
    """What a met minimum measured: the billed amounts of its scope's usage lines, or the units of its category."""
    in_scope = [line for line in usage_lines if line.category in minimum.scope]
    if minimum.unit == "units":
        return sum((line.quantity for line in in_scope), ZERO)
    return sum((line.amount for line in in_scope), ZERO)


def _customer_usage(terms, sites: tuple[SiteDashboard, ...]) -> tuple[CategoryUsage, ...]:
    """The sites' usage lines summed per category, in the order the contract declares its categories."""
    totals: dict[str, list] = {}
    for site in sites:
        for usage in site.usage:
            total = totals.setdefault(usage.category, [usage.label, ZERO, 0, ZERO, False])
            total[1] += usage.quantity
            total[2] += usage.events
            total[3] += usage.amount
            total[4] = total[4] or usage.billed
    order = {category: index for index, category in enumerate(terms.category_ids)}
    return tuple(CategoryUsage(category, *totals[category])
                 for category in sorted(totals, key=lambda c: (order.get(c, len(order)), c)))


def computed_point(period: Period, invoice: InvoiceView, *, source: str = "computed",
                   number: str | None = None) -> PeriodPoint:
    usage = [line for site in invoice.sites for line in site.lines if isinstance(line, UsageLine)]
    totals = invoice.totals
    account = invoice.account.lines if invoice.account else ()
    cap = sum((line.amount for line in account if line.kind == ACCOUNT_CAP.name), ZERO)
    counted = sum((site.total for site in invoice.sites), ZERO) + sum(
        (line.amount for line in account if line.kind == ACCOUNT_MINIMUM.name), ZERO)
    return PeriodPoint(period, source, totals["total"], totals["usage"], sum(line.events for line in usage),
                       number, counted, cap)
