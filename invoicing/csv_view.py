"""The invoice as CSV for finance spreadsheets: one row per line, then rows a spreadsheet can check sums against.

Amounts and quantities are exact decimals as in the JSON (amounts with the
currency's minor-unit places). After a site's lines comes its `site total` row;
after the last site, one `invoice total` row per kind and one for the total,
named in the `description` column (`usage`, `minimum`, `cap`, `total`), so that
`SUMIFS(amount, kind, "usage")` can be checked against the row of kind
`invoice total` and description `usage`. What was not billed follows as
`not billed` rows, with no amount.

    invoice,site,site_name,kind,categories,description,quantity,unit_price,...
    DRAFT,lon-01,London Bridge,usage,standard,Standard processing,5200,0.85,...
    DRAFT,lon-01,London Bridge,minimum,standard expedited,Minimum true-up,,,...
    DRAFT,lon-01,London Bridge,site total,,,,,...
"""

from __future__ import annotations

import csv
import io

from engine.lines import LINE_KINDS
from engine.money import format_quantity
from invoicing.invoice import Invoice

COLUMNS = (
    "invoice", "period", "currency", "site", "site_name", "kind", "categories", "description",
    "quantity", "events", "unit_price", "commitment", "commitment_unit", "limit", "counted_before",
    "in_scope", "amount", "billed", "explanation", "contract_line",
)
DRAFT = "DRAFT"


def _tiers(line, fmt) -> str:
    return "; ".join(
        f"{format_quantity(t.quantity)} at {t.unit_price:f}{f' {t.note}' if t.note else ''} = {fmt(t.amount)}"
        for t in line.tiers
    )


def _line_row(line, fmt) -> dict:
    row = {"kind": line.kind, "contract_line": line.source.line if line.source else ""}
    if line.kind == "usage":
        disabled = "" if line.billed else f"disabled at line {line.disabled_by.line}: not billed; "
        return row | {
            "categories": line.category,
            "description": line.label,
            "quantity": format_quantity(line.quantity),
            "events": line.events,
            "unit_price": f"{line.tiers[0].unit_price:f}" if len(line.tiers) == 1 else "",
            "amount": fmt(line.amount),
            "billed": "true" if line.billed else "false",
            "explanation": disabled + _tiers(line, fmt),
        }
    row |= {"categories": " ".join(line.categories), "amount": fmt(line.amount), "billed": "true",
            "explanation": line.explanation}
    if line.kind == "minimum":
        spend = line.unit == "spend"
        return row | {
            "description": "Minimum true-up",
            "commitment": fmt(line.commitment) if spend else format_quantity(line.commitment),
            "commitment_unit": line.unit,
        }
    return row | {
        "description": "Cap reduction",
        "limit": fmt(line.limit),
        "counted_before": fmt(line.counted_before),
        "in_scope": fmt(line.in_scope),
    }


def render_csv(invoice: Invoice, *, number: str | None = None) -> str:
    """The CSV text; `number` is the issued invoice's number (a draft has none and says DRAFT)."""
    fmt = invoice.money.format
    common = {"invoice": number or DRAFT, "period": str(invoice.period), "currency": invoice.money.currency}
    out = io.StringIO()
    writer = csv.DictWriter(out, COLUMNS, restval="")
    writer.writeheader()
    for site in invoice.sites:
        where = common | {"site": site.site, "site_name": site.name}
        for line in site.lines:
            writer.writerow(where | _line_row(line, fmt))
        writer.writerow(where | {"kind": "site total", "amount": fmt(site.total)})
    totals = invoice.totals
    for kind in (*LINE_KINDS, "total"):
        writer.writerow(common | {"kind": "invoice total", "description": kind, "amount": fmt(totals[kind])})
    for group in invoice.unbilled:
        writer.writerow(common | {
            "site": group.site, "kind": "not billed", "categories": group.category, "description": group.reason,
            "quantity": format_quantity(group.quantity), "events": group.events,
        })
    return out.getvalue()
