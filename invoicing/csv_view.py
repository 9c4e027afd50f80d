"""The invoice as CSV for finance spreadsheets: one row per line, then rows a spreadsheet can check sums against.

Amounts and quantities are exact decimals as in the JSON (amounts with the
currency's minor-unit places). After a site's lines comes its `site total` row;
after the last site, one `invoice total` row per entry of the invoice's totals,
named in the `description` column (`usage`, `minimum`, `cap`, …, `total`), so that
`SUMIFS(amount, kind, "usage")` can be checked against the row of kind
`invoice total` and description `usage`. An invoice with an account section
lists its lines (no site) and an `account total` row before the invoice totals. What was not billed follows as
`not billed` rows, with no amount.

    invoice,site,site_name,kind,categories,description,quantity,unit_price,...
    DRAFT,lon-01,London Bridge,usage,standard,Standard processing,5200,0.85,...
    DRAFT,lon-01,London Bridge,minimum,standard expedited,Minimum true-up,,,...
    DRAFT,lon-01,London Bridge,site total,,,,,...

Money columns name their currency in the header (`amount (GBP)`, `unit_price (GBP)`,
`tax (GBP)`); their cells stay bare exact decimals a spreadsheet adds up. A
database-mode document (`Invoice.legal`) starts with `invoice detail` rows (the
field in `description`, its value in `explanation`: "Not a VAT invoice" on a
draft or a test document, seller, buyer, their numbers, the dates, the terms,
the bank details), and after the charges' `invoice total` rows come one
`credit` row per grant drawn, a `tax` row (its `rate`, its GBP amount and
`fx_rate` for another currency, the reverse-charge or exemption wording) and the
`invoice total` rows `credits`, `net`, `tax` and `due`. Contract line numbers
stay in `contract_line`: the CSV is finance's view.

Site ids and names, category names and the site and category of unbilled events
come from contracts and from any holder of an API key: a cell a spreadsheet would
take for a formula (it starts with `=`, `+`, `-`, `@`, a tab or a carriage return)
is written with a leading `'` (OWASP, CSV injection), unless it is a number, which
stays a number (`-12.50`). Every row goes through `spreadsheet_safe`.
"""

from __future__ import annotations

import csv
import io
import re
from decimal import Decimal

from engine.lines import Row, kind_of
from engine.money import Money, format_quantity
from invoicing.invoice import Invoice
from invoicing.legal_view import (
    legal_sums,
    net_title,
    notice,
    party_ids,
    tax_label,
    terms,
)

COLUMNS = (
    "invoice", "period", "currency", "site", "site_name", "kind", "categories", "description",
    "quantity", "events", "unit_price", "commitment", "commitment_unit", "limit", "counted_before",
    "in_scope", "spent", "balance_before", "balance_after", "expiring", "amount", "billed", "explanation",
    "contract_line", "rate", "tax_gbp", "fx_rate",
)
MONEY_COLUMNS = ("unit_price", "limit", "counted_before", "in_scope", "spent", "balance_before", "balance_after",
                 "expiring", "amount")
DRAFT = "DRAFT"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")


def spreadsheet_safe(value):
    """The cell as a spreadsheet shows it and never evaluates it: text that would start a formula gets a leading
    quote; a number, and anything else, is left as it is."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not NUMBER.fullmatch(value):
        return "'" + value
    return value


def header(column: str, currency: str) -> str:
    """A column's heading: a money column names its currency ("amount (GBP)"; the tax in GBP "tax (GBP)")."""
    if column == "tax_gbp":
        return "tax (GBP)"
    return f"{column} ({currency})" if column in MONEY_COLUMNS else column


class _SafeWriter(csv.DictWriter):
    def write_headings(self, currency: str):
        return self.writer.writerow([spreadsheet_safe(header(column, currency)) for column in self.fieldnames])

    def writerow(self, rowdict):
        return super().writerow({column: spreadsheet_safe(value) for column, value in rowdict.items()})


def _tiers(row: Row, fmt) -> str:
    return "; ".join(
        f"{format_quantity(t.quantity)} at {t.unit_price:f}{f' {t.note}' if t.note else ''} = {fmt(t.amount)}"
        for t in row.details
    )


def _not_billed(row: Row) -> str:
    if row.billed:
        return ""
    return f"disabled at line {row.disabled_by.line}: not billed; " if row.disabled_by else "not billed; "


def _line_row(line, money: Money) -> dict:
    row = kind_of(line).row(line, money)
    unknown = set(row.figures) - set(COLUMNS)
    if unknown:
        raise ValueError(f"a {line.kind} line has figures with no CSV column: {', '.join(sorted(unknown))}")
    return row.figures | {
        "kind": line.kind,
        "categories": " ".join(row.categories),
        "description": row.description,
        "quantity": "" if row.quantity is None else format_quantity(row.quantity),
        "events": "" if row.events is None else row.events,
        "unit_price": "" if row.unit_price is None else f"{row.unit_price:f}",
        "amount": money.format(row.amount),
        "billed": "true" if row.billed else "false",
        "explanation": _not_billed(row) + "; ".join(part for part in (_tiers(row, money.format), row.explanation)
                                                    if part),
        "contract_line": row.source.line if row.source else "",
    }


def _field(label: str) -> str:
    """A label as a field name: "Company number" → "company number", "VAT number" kept."""
    return label if label[:2].isupper() else label[:1].lower() + label[1:]


def _details(invoice: Invoice, number: str | None) -> list[tuple[str, str]]:
    """The legal invoice's fields, each (field, value), for the `invoice detail` rows."""
    legal = invoice.legal
    seller, buyer = legal["seller"], legal["buyer"]
    warning = notice(legal, number=number)
    rows = [("notice", warning)] if warning else []
    rows += [("seller", seller.get("name") or ""), ("seller address", ", ".join(seller.get("address") or ()))]
    rows += [(f"seller {_field(label)}", value) for label, value in party_ids(seller)]
    rows += [("buyer", buyer.get("name") or invoice.customer), ("buyer address", ", ".join(buyer.get("address") or ()))]
    rows += [(f"buyer {_field(label)}", value) for label, value in party_ids(buyer)]
    rows += [("issue date", legal["issue_date"] or ""), ("tax point", legal["tax_point"] or ""),
             ("due date", legal["due_date"] or ""), ("payment terms", terms(legal))]
    return rows + [("pay to", "; ".join(seller.get("bank") or ()))]


def _legal_rows(invoice: Invoice) -> list[dict]:
    """The credits drawn, the tax and the legal totals, after the charges' totals."""
    legal, fmt = invoice.legal, invoice.money.format
    tax, totals = legal.get("tax"), legal["totals"]
    rows = [{"kind": "credit", "description": f"credit grant {credit['grant']}", "amount": credit["amount"],
             "explanation": f"remaining after: {credit['remaining']}" if credit.get("remaining") else ""}
            for credit in legal["credits"]]
    if tax is not None:
        rows.append({"kind": "tax", "description": tax_label(tax), "rate": tax["rate"], "amount": totals["tax"],
                     "tax_gbp": tax["amount_gbp"] or "", "fx_rate": tax["fx_rate"] or "",
                     "explanation": f"{net_title(legal)} {tax['net']}" + (f"; {tax['note']}" if tax["note"] else "")})
    return rows + [{"kind": "invoice total", "description": key, "amount": fmt(Decimal(totals[key]))}
                   for key in ("credits", "net", "tax", "due")]


def render_csv(invoice: Invoice, *, number: str | None = None) -> str:
    """The CSV text; `number` is the issued invoice's number (a draft has none and says DRAFT)."""
    fmt = invoice.money.format
    if invoice.legal is not None:   # InconsistentInvoice before a row is written
        legal_sums(invoice.totals["total"], invoice.legal, invoice.money.currency)
    common = {"invoice": number or DRAFT, "period": str(invoice.period), "currency": invoice.money.currency}
    out = io.StringIO()
    writer = _SafeWriter(out, COLUMNS, restval="")
    writer.write_headings(invoice.money.currency)
    if invoice.legal is not None:
        for field, value in _details(invoice, number):
            writer.writerow(common | {"kind": "invoice detail", "description": field, "explanation": value})
    for site in invoice.sites:
        where = common | {"site": site.site, "site_name": site.name}
        for line in site.lines:
            writer.writerow(where | _line_row(line, invoice.money))
        writer.writerow(where | {"kind": "site total", "amount": fmt(site.total)})
    if invoice.account is not None:
        for line in invoice.account.lines:
            writer.writerow(common | _line_row(line, invoice.money))
        writer.writerow(common | {"kind": "account total", "amount": fmt(invoice.account.total)})
    for key, amount in invoice.totals.items():
        writer.writerow(common | {"kind": "invoice total", "description": key, "amount": fmt(amount)})
    if invoice.legal is not None:
        for row in _legal_rows(invoice):
            writer.writerow(common | row)
    for group in invoice.unbilled:
        writer.writerow(common | {
            "site": group.site, "kind": "not billed", "categories": group.category, "description": group.reason,
            "quantity": format_quantity(group.quantity), "events": group.events,
        })
    return out.getvalue()
