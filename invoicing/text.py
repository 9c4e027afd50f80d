"""The invoice as plain text, for a terminal or an e-mail: every line with why it is there."""

from __future__ import annotations

import textwrap

from engine.money import format_quantity
from invoicing.invoice import Invoice

WIDTH = 78


def _row(left: str, amount: str) -> str:
    return f"{left[: WIDTH - len(amount) - 2]:<{WIDTH - len(amount)}}{amount}"


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
            where = f" [line {line.source.line}]" if line.source else ""
            if line.kind == "usage":
                flag = "" if line.billed else f" (disabled at line {line.disabled_by.line}: not billed)"
                out.append(_row(f"  {line.label}: {format_quantity(line.quantity)} units{flag}{where}", fmt(line.amount)))
                for tier in line.tiers:
                    note = f" {tier.note}" if tier.note else ""
                    out.append(f"      {format_quantity(tier.quantity)} at {tier.unit_price:f}{note} = {fmt(tier.amount)}")
            else:
                title = "Minimum true-up" if line.kind == "minimum" else "Cap reduction"
                out.append(_row(f"  {title} on {', '.join(line.categories)}{where}", fmt(line.amount)))
                out.extend(textwrap.wrap(line.explanation, WIDTH - 10, initial_indent="      ",
                                         subsequent_indent="      "))
        out.append(_row(f"  Total {site.site}", fmt(site.total)))
        out.append("")
    totals = invoice.totals
    out += [
        _row("Usage", fmt(totals["usage"])),
        _row("Minimum true-ups", fmt(totals["minimum"])),
        _row("Cap reductions", fmt(totals["cap"])),
        _row(f"Total {money.currency}", fmt(totals["total"])),
    ]
    if invoice.unbilled:
        out += ["", "Not billed:"]
        for group in invoice.unbilled:
            out.append(
                f"  {group.reason}: site {group.site}, category {group.category}: "
                f"{group.events} events, quantity {format_quantity(group.quantity)}"
            )
    return "\n".join(out) + "\n"
