"""The invoice as plain text, for a terminal or an e-mail: every line with why it is there.

Lines keep their contract line numbers (`[line 23]`): the text is a staff view, printed by `billing invoice`.
A database-mode document (`Invoice.legal`) also says who bills whom, its dates, the credits, the tax and what is
due (invoicing/legal_view.py), its money written for people (`engine.money.display`); a draft, or a document of
the test environment, says "Not a VAT invoice" first.
"""

from __future__ import annotations

import textwrap
from decimal import Decimal

from engine.lines import Row, kind_of, totals_titles
from engine.money import display, format_quantity
from invoicing.invoice import Invoice
from invoicing.legal_view import (
    legal_sums,
    net_title,
    notice,
    party_ids,
    tax_label,
    terms,
)

WIDTH = 78


def _row(left: str, amount: str) -> str:
    return f"{left[: WIDTH - len(amount) - 2]:<{WIDTH - len(amount)}}{amount}"


def _disabled(row: Row) -> str:
    return f"disabled at line {row.disabled_by.line}: " if row.disabled_by else ""


def _line_rows(row: Row, fmt) -> list[str]:
    """A line's heading (with its units, and why it is not billed), its tiers, then why it is there."""
    units = "" if row.quantity is None else f": {format_quantity(row.quantity)} units"
    flag = "" if row.billed else f" ({_disabled(row)}not billed)"
    where = f" [line {row.source.line}]" if row.source else ""
    out = [_row(f"  {row.title}{units}{flag}{where}", fmt(row.amount))]
    for tier in row.details:
        note = f" {tier.note}" if tier.note else ""
        out.append(f"      {format_quantity(tier.quantity)} at {tier.unit_price:f}{note} = {fmt(tier.amount)}")
    out += textwrap.wrap(row.explanation, WIDTH - 10, initial_indent="      ", subsequent_indent="      ")
    return out


def _party(title: str, party: dict) -> list[str]:
    out = [f"{title:<6}{', '.join([party.get('name') or '', *(party.get('address') or ())])}"]
    ids = "; ".join(f"{label} {value}" for label, value in party_ids(party))
    return out + ([f"      {ids}"] if ids else [])


def _legal_head(invoice: Invoice, number: str | None) -> list[str]:
    legal = invoice.legal
    warning = notice(legal, number=number)
    out = [f"Invoice {number}" if number else "DRAFT invoice (no number yet)"] + ([warning] if warning else [])
    out += _party("From", legal["seller"]) + _party("To", {"name": invoice.customer, **legal["buyer"]})
    out.append(f"Issue date {legal['issue_date'] or 'not issued'}; tax point {legal['tax_point'] or 'not issued'}; "
               f"due date {legal['due_date'] or 'not issued'} ({terms(legal)})")
    return out + [""]


def _legal_tail(invoice: Invoice, locale: str) -> list[str]:
    legal, currency = invoice.legal, invoice.money.currency
    legal_sums(invoice.totals["total"], legal, currency)   # InconsistentInvoice before anything is printed

    def show(amount: str | Decimal, in_currency: str = currency) -> str:
        return display(Decimal(amount), in_currency, locale)

    tax, totals = legal.get("tax"), legal["totals"]
    out = [""]
    if legal["credits"]:
        out.append("Credits drawn:")
        out += [_row(f"  Credit grant {credit['grant']}", show(credit["amount"])) for credit in legal["credits"]]
    out += [_row("Total charges", show(invoice.totals["total"])), _row("Credits", show(totals["credits"])),
            _row(net_title(legal), show(totals["net"])), _row(tax_label(tax), show(totals["tax"]))]
    if tax is not None and tax["treatment"] == "uk_standard" and currency != "GBP":
        out.append("  VAT in GBP: stated when issued" if tax["amount_gbp"] is None else
                   f"  VAT in GBP: {show(tax['amount_gbp'], 'GBP')} at {tax['fx_rate']} GBP per {currency}")
    if tax is not None and tax["note"]:
        out += textwrap.wrap(tax["note"], WIDTH - 2, initial_indent="  ", subsequent_indent="  ")
    out.append(_row("Amount due", show(totals["due"])))
    bank = legal["seller"].get("bank") or ()
    if bank:
        out += ["", f"Pay by {legal['due_date'] or 'the due date'} by bank transfer to:", *(f"  {b}" for b in bank)]
    return out


def render_text(invoice: Invoice, *, number: str | None = None, locale: str = "en_GB") -> str:
    """The text; an invoice with legal fields says who bills whom, its dates, credits, tax and what is due."""
    money = invoice.money
    fmt = money.format
    out = [] if invoice.legal is None else _legal_head(invoice, number)
    out += [
        f"Invoice for {invoice.customer} ({invoice.contract}), period {invoice.period}",
        f"Currency {money.currency}; contract year from {invoice.starts_year.first_day.isoformat()}; "
        f"contract version {invoice.contract_version[:12]}",
        "",
    ]
    for site in invoice.sites:
        out.append(f"Site {site.site}  {site.name}")
        for line in site.lines:
            out += _line_rows(kind_of(line).row(line, money), fmt)
        out.append(_row(f"  Total {site.site}", fmt(site.total)))
        out.append("")
    if invoice.account is not None:
        out.append("Account (all sites together)")
        for line in invoice.account.lines:
            out += _line_rows(kind_of(line).row(line, money), fmt)
        out.append(_row("  Total account", fmt(invoice.account.total)))
        out.append("")
    totals = invoice.totals
    out += [_row(title, fmt(totals[key])) for key, title in totals_titles().items() if key in totals]
    out.append(_row(f"Total {money.currency}", fmt(totals["total"])))
    if invoice.legal is not None:
        out += _legal_tail(invoice, locale)
    if invoice.unbilled:
        out += ["", "Not billed:"]
        for group in invoice.unbilled:
            out.append(
                f"  {group.reason}: site {group.site}, category {group.category}: "
                f"{group.events} events, quantity {format_quantity(group.quantity)}"
            )
    return "\n".join(out) + "\n"
