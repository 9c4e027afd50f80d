"""The invoice object, built from a period's result, and its JSON form (interfaces §3).

Totals are computed here from the lines and nowhere else: a site's total is the
sum of its lines, each kind's total the sum of that kind's lines over all
sites (every registered kind has its entry, in the order kinds were registered,
engine/lines.py), and the invoice total the sum of the site totals plus the
account lines (spec §4.9; `account` is an entry only when the invoice has an
account section).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from zoneinfo import ZoneInfo

from engine.account import AccountResult
from engine.account_lines import ACCOUNT
from engine.evaluate import PeriodResult, SiteResult
from engine.lines import kind_of, totals_titles
from engine.money import Money, format_quantity
from engine.periods import Period, contract_year_start
from engine.usage import Tally

ZERO = Decimal(0)


@dataclass(frozen=True)
class UnbilledGroup:
    reason: str
    site: str
    category: str
    events: int
    quantity: Decimal
    late_for: Period | None = None     # the issued period whose late usage it is (database mode)


@dataclass(frozen=True)
class Invoice:
    contract: str
    customer: str
    money: Money
    period: Period
    timezone: str
    starts_year: Period
    contract_version: str
    sites: tuple[SiteResult, ...]
    unbilled: tuple[UnbilledGroup, ...]
    account: AccountResult | None = None   # the account section: lines over all sites together
    # A stored document's legal fields (interfaces §4, invoicing/stored.py), for the renderings to print; not part
    # of the charges, so neither compared nor hashed.
    legal: dict | None = field(default=None, compare=False, hash=False)

    @property
    def totals(self) -> dict[str, Decimal]:
        """Each registered kind's `totals` entry (the sum of its lines), then the total: the site totals plus
        the account lines."""
        totals = dict.fromkeys(totals_titles(), ZERO)
        if self.account is None:
            del totals[ACCOUNT]
        for line in self.lines():
            totals[kind_of(line).totals_key] += line.amount
        totals["total"] = sum((s.total for s in self.sites), ZERO) + (self.account.total if self.account else ZERO)
        return totals

    def lines(self):
        """Every line: each site's, then the account's."""
        for site in self.sites:
            yield from site.lines
        if self.account is not None:
            yield from self.account.lines


def build_invoice(result: PeriodResult, extra_unbilled: dict[tuple[str, str, str], Tally] | None = None) -> Invoice:
    """The invoice of a period; `extra_unbilled` adds what metering did not count (duplicates, conflicts)."""
    terms = result.plan.terms
    groups: dict[tuple[str, str, str], Tally] = {}
    for source in (result.unbilled, extra_unbilled or {}):
        for key, tally in source.items():
            groups.setdefault(key, Tally()).add(tally.quantity, tally.events)
    unbilled = tuple(
        UnbilledGroup(reason, site, category, tally.events, tally.quantity)
        for (reason, site, category), tally in sorted(groups.items())
    ) + tuple(
        UnbilledGroup(reason, site, category, tally.events, tally.quantity, late_for)
        for late_for, (reason, site, category), tally in result.late_unbilled
    )
    return Invoice(
        contract=terms.contract_id,
        customer=terms.customer,
        money=terms.money,
        period=result.period,
        timezone=terms.timezone,
        starts_year=contract_year_start(terms.starts, result.period),
        contract_version=terms.version,
        sites=tuple(result.sites),
        unbilled=unbilled,
        account=result.account,
    )


def line_json(line, money: Money, late_for: Period | None = None) -> dict:
    """A line's JSON (interfaces §3) as its kind declares it, with the issued period whose late usage it bills
    (`late_for`, database mode); raises UnknownLineKind for a kind nobody declared."""
    kind = kind_of(line)
    data = {"kind": kind.name, **kind.to_json(line, money)}
    if late_for is not None:
        data["late_for"] = str(late_for)
    return data


def _unbilled_json(group: UnbilledGroup) -> dict:
    data = {
        "reason": group.reason,
        "site": group.site,
        "category": group.category,
        "events": group.events,
        "quantity": format_quantity(group.quantity),
    }
    if group.late_for is not None:
        data["late_for"] = str(group.late_for)
    return data


def invoice_json(invoice: Invoice) -> dict:
    money = invoice.money
    zone = ZoneInfo(invoice.timezone)
    return {
        "contract": invoice.contract,
        "customer": invoice.customer,
        "currency": money.currency,
        "period": str(invoice.period),
        "period_start": invoice.period.start(zone).isoformat(),
        "period_end": invoice.period.end(zone).isoformat(),
        "contract_year_start": invoice.starts_year.first_day.isoformat(),
        "contract_version": invoice.contract_version,
        "sites": [
            {
                "site": site.site,
                "name": site.name,
                "lines": [line_json(line, money, site.late_period(i)) for i, line in enumerate(site.lines)],
                "total": money.format(site.total),
            }
            for site in invoice.sites
        ],
        **({} if invoice.account is None else {"account": {
            "lines": [line_json(line, money) for line in invoice.account.lines],
            "total": money.format(invoice.account.total),
        }}),
        "totals": {kind: money.format(amount) for kind, amount in invoice.totals.items()},
        "unbilled": [_unbilled_json(group) for group in invoice.unbilled],
    }
