"""The invoice as plain text, for a terminal or an e-mail: every line with why it is there."""

from __future__ import annotations

import textwrap

from engine.lines import Row, kind_of, totals_titles
from engine.money import format_quantity
from invoicing.invoice import Invoice

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


def render_text(invoice: Invoice) -> str:
    money = invoice.money
    fmt = money.format
    out = [
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
    if invoice.unbilled:
        out += ["", "Not billed:"]
        for group in invoice.unbilled:
            out.append(
                f"  {group.reason}: site {group.site}, category {group.category}: "
                f"{group.events} events, quantity {format_quantity(group.quantity)}"
            )
    return "\n".join(out) + "\n"
