"""The invoice as a PDF: templates/invoice.html, filled by Jinja2 and laid out by WeasyPrint.

Every figure printed is one of the invoice object's own — a line's amount, a
site's total (`SiteResult.total`), the account section's lines and total, the
totals by kind (`Invoice.totals`) —
formatted with Babel for a locale and the currency's places. The template only
lays them out. Before anything is laid out, `verify` reads the formatted
figures back and adds them up the way the verification page says they add up;
if they do not, it raises `InconsistentInvoice` and no page is printed.

An invoice number, status and issue date come from the invoice's lifecycle;
in file mode there is none, and the document says so where the number would be.

A database-mode document (`Invoice.legal`) prints what a UK VAT invoice must
show (HMRC, VAT Notice 700 §16.3): the seller's name, address, company and VAT
numbers, the buyer's name, address, tax id and purchase order, the tax point,
the credits drawn, the rate and amount of VAT (in GBP too, with the rate, for
another currency), the reverse-charge or exemption wording, the net and what is
due, by when and to which account; and the verification page proves
charges + credits = net and net + tax = due (invoicing/legal_view.py).
A draft, and every document of the test environment, says "Not a VAT invoice"
on every page. A line's note says what the rule says, not where it is written:
the customer has no contract line numbers to look up (the text and CSV, staff's
views, keep them).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import jinja2
import markupsafe
import weasyprint
from babel import Locale
from babel.dates import format_date, format_interval, format_skeleton
from babel.numbers import format_currency, format_decimal, parse_decimal

from engine.account_lines import ACCOUNT
from engine.lines import Row, kind_of, totals_titles
from engine.money import Money
from invoicing.invoice import Invoice
from invoicing.legal_view import (
    InconsistentInvoice,
    legal_sums,
    net_title,
    notice,
    party_ids,
    tax_label,
    terms,
)

# The repository's templates/ (data, not a package): a wheel installs it beside the packages (pyproject.toml).
TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
DRAFT_MARKER = "DRAFT — not an invoice number"
STATUSES = {"draft": "Draft", "approved": "Approved, not yet issued", "issued": "Issued", "void": "Void"}
NUMBERED = ("issued", "void")
WATERMARKS = {"draft": "DRAFT", "approved": "DRAFT", "void": "VOID"}
ZERO = Decimal(0)
TOTAL_CHARGES = "Total charges"
# An amount (digits with a decimal point) or a count of five digits or more standing alone in an engine
# explanation ("annual cap 60000.00 on all"): not part of a name (c04), a date (2026-06-15) or a year.
_NUMBER_IN_TEXT = re.compile(r"(?<![\w.:/-])-?(?:\d+\.\d+|\d{5,})(?![\w.:/-])")


def _places(value: Decimal) -> int:
    exponent = value.as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


@dataclass(frozen=True)
class Numbers:
    """Figures as they are written in `locale`: grouping and decimal signs from Babel, places exact."""

    money: Money
    locale: Locale

    def _decimal(self, value: Decimal, places: int) -> str:
        integer = self.locale.decimal_formats[None].pattern.split(".")[0]
        return format_decimal(value, format=integer + ("." + "0" * places if places else ""), locale=self.locale)

    def amount(self, value: Decimal) -> str:
        return self._decimal(self.money.round(value), self.money.places)

    def currency(self, value: Decimal) -> str:
        return format_currency(self.money.round(value), self.money.currency, locale=self.locale, currency_digits=True)

    def price(self, value: Decimal) -> str:
        return self._decimal(value, max(self.money.places, _places(value)))

    def quantity(self, value: Decimal) -> str:
        return self._decimal(value, _places(value))

    def sentence(self, text: str) -> str:
        """An engine explanation as a sentence, its numbers written for the locale ("60000.00" → "60,000.00")."""
        text = _NUMBER_IN_TEXT.sub(lambda m: self._decimal(Decimal(m.group()), _places(Decimal(m.group()))), text)
        return text[:1].upper() + text[1:]

    def parse(self, text: str) -> Decimal:
        return parse_decimal(text, locale=self.locale)

    def date(self, day: dt.date) -> str:
        return format_date(day, "long", locale=self.locale)


@dataclass(frozen=True)
class TierRow:
    label: str
    quantity: str
    unit_price: str
    amount: str


@dataclass(frozen=True)
class LineRow:
    kind: str             # the invoice `totals` entry its amount sums into
    title: str
    quantity: str
    unit_price: str
    amount: str
    tiers: tuple[TierRow, ...]
    note: str


@dataclass(frozen=True)
class SiteSection:
    site: str
    name: str
    lines: tuple[LineRow, ...]
    total: str


@dataclass(frozen=True)
class AccountSection:
    """The lines over all sites together (spec §4.9), and their total."""

    lines: tuple[LineRow, ...]
    total: str


@dataclass(frozen=True)
class Check:
    """One sum on the verification page: printed figures added up, and the printed figure the sum must equal."""

    added: str       # which figures were added up
    sum: str
    printed: str     # which printed figure it must equal
    figure: str
    key: str = ""    # its `totals` entry, when it is one


@dataclass(frozen=True)
class Verification:
    rows: tuple[tuple[SiteSection, dict[str, str]], ...]   # each site's lines added up by kind
    checks: tuple[Check, ...]
    legal_checks: tuple[Check, ...] = ()                   # charges + credits = net, net + tax = due


def _tier_rows(shares, numbers: Numbers) -> tuple[TierRow, ...]:
    rows, priced = [], 0
    for share in shares:
        priced += not share.note
        rows.append(TierRow(share.note or f"tier {priced}", numbers.quantity(share.quantity),
                            numbers.price(share.unit_price), numbers.amount(share.amount)))
    return tuple(rows)


def _note(row: Row, numbers: Numbers) -> str:
    """What a reader needs to know beyond the figures: the line is not billed, why it is there, or that it is
    priced for this site."""
    if not row.billed:
        rule = f" (the contract says “{row.disabled_by.text}”)" if row.disabled_by and row.disabled_by.text else ""
        return f"Disabled for this site{rule}: not billed."
    if row.explanation:
        return f"{numbers.sentence(row.explanation)}."
    if row.source and row.source.block.startswith("site "):
        return "Priced for this site: the contract sets this site's own price."
    return ""


def _line_row(line, numbers: Numbers) -> LineRow:
    kind = kind_of(line)
    row = kind.row(line, numbers.money)
    priced_once = row.unit_price is not None
    tiers = () if priced_once or not row.billed else _tier_rows(row.details, numbers)
    return LineRow(kind.totals_key, row.title, "" if row.quantity is None else numbers.quantity(row.quantity),
                   numbers.price(row.unit_price) if priced_once and row.billed else "",
                   numbers.amount(row.amount), tiers, _note(row, numbers))


def _titles(totals: dict[str, str]) -> dict[str, str]:
    """The titles of the invoice's totals entries (`account` only on an invoice with an account section)."""
    return {kind: title for kind, title in totals_titles().items() if kind in totals}


def verify(sites: tuple[SiteSection, ...], totals: dict[str, str], numbers: Numbers,
           account: AccountSection | None = None, legal: dict | None = None) -> Verification:
    """Add up the printed figures; raise InconsistentInvoice, naming every sum that fails, if any does not agree.
    With an account section: its lines add up to its total, which is the totals' `account`, and the site totals
    plus the account lines add up to the total due. With the legal fields (`legal`, its amounts as printed): the
    charges (then titled Total charges) plus the credits make the net, and the net plus the tax what is due."""
    total_title = TOTAL_CHARGES if legal else "Total due"
    every = _titles(totals)
    titles = {kind: title for kind, title in every.items() if kind != ACCOUNT}
    problems, rows = [], []
    columns = dict.fromkeys(titles, ZERO)
    site_totals = ZERO
    for site in sites:
        by_kind = dict.fromkeys(titles, ZERO)
        for line in site.lines:
            by_kind[line.kind] += numbers.parse(line.amount)
        if sum(by_kind.values()) != numbers.parse(site.total):
            problems.append(f"site {site.site}: its lines add up to {numbers.amount(sum(by_kind.values()))}, "
                            f"its total is {site.total}")
        for kind in titles:
            columns[kind] += by_kind[kind]
        site_totals += numbers.parse(site.total)
        rows.append((site, {kind: numbers.amount(by_kind[kind]) for kind in titles}))
    stated = {key: numbers.parse(text) for key, text in totals.items()}
    count = f"{len(sites)} site{'' if len(sites) == 1 else 's'}"
    sums = [(f"{title} of the {count}", columns[kind], title, kind) for kind, title in titles.items()]
    if account is None:
        sums.append((f"Totals of the {count}", site_totals, total_title, "total"))
    else:
        account_sum = sum((numbers.parse(line.amount) for line in account.lines), ZERO)
        sums.append(("Account lines", account_sum, "Account total", "account section"))
        sums.append(("Account lines", account_sum, every[ACCOUNT], ACCOUNT))
        sums.append((f"Totals of the {count} + account lines", site_totals + account_sum, total_title, "total"))
        stated["account section"], totals = numbers.parse(account.total), {**totals, "account section": account.total}
    sums.append((" + ".join(every.values()).capitalize(), sum(stated[kind] for kind in every), total_title, "total"))
    for added, value, printed, key in sums:
        if value != stated[key]:
            problems.append(f"{added.lower()} add up to {numbers.amount(value)}, {printed.lower()} is {totals[key]}")
    if problems:
        raise InconsistentInvoice("the invoice does not add up: " + "; ".join(problems))
    checks = tuple(Check(added, numbers.amount(value), printed, totals[key], key)
                   for added, value, printed, key in sums)
    legal_checks = () if legal is None else tuple(
        Check(s.added, numbers.amount(s.value), s.printed, numbers.amount(s.figure))
        for s in legal_sums(stated["total"], legal, numbers.money.currency, total_title=total_title))
    return Verification(tuple(rows), checks, legal_checks)


@dataclass(frozen=True)
class Party:
    name: str
    address: tuple[str, ...]
    ids: tuple[tuple[str, str], ...]     # ("VAT number", "GB123456789"), …


@dataclass(frozen=True)
class CreditRow:
    grant: str
    amount: str
    remaining: str


@dataclass(frozen=True)
class LegalView:
    """The legal invoice's fields as printed (interfaces §4), every amount formatted for the locale."""

    seller: Party
    buyer: Party
    tax_point: str
    due_date: str
    terms: str
    bank: tuple[str, ...]
    credits: tuple[CreditRow, ...]
    rows: tuple[tuple[str, str], ...]    # the summary after the charges: total, credits, net, tax
    due: str                             # what is due, with the currency's sign
    tax_note: str                        # the reverse-charge or exemption wording
    tax_gbp: str                         # the VAT in GBP and its rate, for another currency


def _party(data: dict, fallback_name: str) -> Party:
    return Party(data.get("name") or fallback_name, tuple(data.get("address") or ()), tuple(party_ids(data)))


def _printed(legal: dict, numbers: Numbers) -> dict:
    """`legal` with its amounts as they are printed, read back: what the verification page adds up."""
    gbp = Numbers(Money.of("GBP"), numbers.locale)

    def back(text, numbers=numbers):
        return None if text is None else str(numbers.parse(numbers.amount(Decimal(text))))

    tax = legal.get("tax")
    if tax is not None:
        tax = {**tax, "net": back(tax["net"]), "amount": back(tax["amount"]), "amount_gbp": back(tax["amount_gbp"], gbp)}
    return {**legal, "tax": tax, "totals": {key: back(value) for key, value in legal["totals"].items()},
            "credits": [{**credit, "amount": back(credit["amount"])} for credit in legal["credits"]]}


def _legal_view(invoice: Invoice, legal: dict, numbers: Numbers) -> LegalView:
    tax, totals, currency = legal.get("tax"), legal["totals"], numbers.money.currency
    amount = numbers.amount

    def day(text: str | None) -> str:
        return numbers.date(dt.date.fromisoformat(text)) if text else "Not issued"

    tax_gbp = ""
    if tax is not None and tax["treatment"] == "uk_standard" and currency != "GBP":
        tax_gbp = ("VAT in GBP: stated when the invoice is issued, at the GBP rate of its tax point"
                   if tax["amount_gbp"] is None else
                   f"VAT in GBP: {Numbers(Money.of('GBP'), numbers.locale).currency(Decimal(tax['amount_gbp']))}, "
                   f"at {numbers.quantity(Decimal(tax['fx_rate']))} GBP per {currency} on the tax point")
    rows = ((TOTAL_CHARGES, amount(invoice.totals["total"])), ("Credits", amount(Decimal(totals["credits"]))),
            (net_title(legal), amount(Decimal(totals["net"]))), (tax_label(tax), amount(Decimal(totals["tax"]))))
    return LegalView(
        seller=_party(legal["seller"], ""),
        buyer=_party(legal["buyer"], invoice.customer),
        tax_point=day(legal["tax_point"]),
        due_date=day(legal["due_date"]),
        terms=terms(legal),
        bank=tuple(legal["seller"].get("bank") or ()),
        credits=tuple(CreditRow(credit["grant"], amount(Decimal(credit["amount"])),
                                amount(Decimal(credit["remaining"])) if credit.get("remaining") is not None else "")
                      for credit in legal["credits"]),
        rows=rows,
        due=numbers.currency(Decimal(totals["due"])),
        tax_note=(tax or {}).get("note") or "",
        tax_gbp=tax_gbp,
    )


def _css_string(text: str) -> markupsafe.Markup:
    """`text` as a CSS string inside a <style> element, where HTML escapes do not apply."""
    escaped = "".join(f"\\{ord(c):x} " if c in '\\"<>&\n' else c for c in text)
    return markupsafe.Markup(f'"{escaped}"')


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    env.filters["css_string"] = _css_string
    return env


def invoice_view(invoice: Invoice, *, number: str | None = None, status: str = "draft",
                 issued_on: dt.date | None = None, locale: str = "en_GB") -> dict:
    """What templates/invoice_body.html shows: every figure formatted, and verified to add up.

    The PDF (`render_html`) and the portal's preview (templates/portal/invoice.html) both render
    invoice_body.html with this, so the two cannot show different figures."""
    if status not in STATUSES:
        raise ValueError(f"status {status!r} is not one of {', '.join(STATUSES)}")
    if (status in NUMBERED) != (number is not None) or (status in NUMBERED) != (issued_on is not None):
        raise ValueError("an invoice has a number and an issue date once issued (or voided after), and not before")
    numbers = Numbers(invoice.money, Locale.parse(locale))
    sites = tuple(
        SiteSection(site.site, site.name, tuple(_line_row(line, numbers) for line in site.lines),
                    numbers.amount(site.total))
        for site in invoice.sites
    )
    account = None if invoice.account is None else AccountSection(
        tuple(_line_row(line, numbers) for line in invoice.account.lines), numbers.amount(invoice.account.total))
    totals = {key: numbers.amount(value) for key, value in invoice.totals.items()}
    legal = invoice.legal
    verification = verify(sites, totals, numbers, account, None if legal is None else _printed(legal, numbers))
    period = invoice.period
    if legal is not None and legal["issue_date"]:
        issued_on = dt.date.fromisoformat(legal["issue_date"])   # the seller's day, as the document states it
    not_vat = notice(legal, number=number)
    return dict(
        invoice=invoice,
        lang=numbers.locale.language,
        reference=" · ".join(filter(None, (f"Invoice {number}" if number else DRAFT_MARKER, not_vat))),
        number=number or DRAFT_MARKER,
        draft=number is None,
        status=STATUSES[status],
        issued_on=numbers.date(issued_on) if issued_on else "Not issued",
        watermark=WATERMARKS.get(status, ""),
        period=format_skeleton("yMMMM", period.first_day, locale=numbers.locale),
        period_days=format_interval(period.first_day, period.last_day, "yMMMd", locale=numbers.locale),
        year_start=numbers.date(invoice.starts_year.first_day),
        sites=sites,
        sites_total=numbers.amount(sum((site.total for site in invoice.sites), ZERO)),
        account=account,
        totals=totals,
        total_due=numbers.currency(invoice.totals["total"]),
        total_title=TOTAL_CHARGES if legal else "Total due",
        legal=None if legal is None else _legal_view(invoice, legal, numbers),
        notice=not_vat,
        tiered=any(line.tiers for site in sites for line in site.lines),
        kinds=_titles(totals),
        site_kinds={kind: title for kind, title in _titles(totals).items() if kind != ACCOUNT},
        verification=verification,
        unbilled=[(group, numbers.quantity(group.quantity)) for group in invoice.unbilled],
    )


def render_html(invoice: Invoice, *, number: str | None = None, status: str = "draft",
                issued_on: dt.date | None = None, locale: str = "en_GB") -> str:
    """The invoice as HTML for WeasyPrint; raises InconsistentInvoice before rendering a sum that fails."""
    view = invoice_view(invoice, number=number, status=status, issued_on=issued_on, locale=locale)
    return _environment().get_template("invoice.html").render(**view)


def render_pdf(invoice: Invoice, *, number: str | None = None, status: str = "draft",
               issued_on: dt.date | None = None, locale: str = "en_GB") -> bytes:
    """The PDF bytes, fonts embedded; raises InconsistentInvoice instead of printing figures that do not add up."""
    html = render_html(invoice, number=number, status=status, issued_on=issued_on, locale=locale)
    return weasyprint.HTML(string=html).write_pdf()
