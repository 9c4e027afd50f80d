"""An invoice read back from its stored JSON (interfaces §3), to render a stored invoice as it was made.

    invoice = invoice_from_document(row.document, timezone="Europe/London")
    render_document(invoice, "pdf", number=row.number, status="issued", issued_on=…)

The JSON holds every figure and explanation the renderings print, so an invoice
read back renders as the one that was stored: `invoice_json` of it gives the
document again (less the database mode's `late_for` marks). Each line is read
back by its kind's `from_json` (engine/lines.py); a kind nobody registered
raises UnknownLineKind. What the JSON does not hold is the contract's time zone
(the caller passes the contract's) and what the engine measured a minimum
against (`basis`), which no rendering prints. A database-mode document's legal
fields (interfaces §4: seller, buyer, dates, credits, tax, and the totals
credits, net, tax and due) are kept as they are in `Invoice.legal`, for the
renderings to print.
"""

from __future__ import annotations

from decimal import Decimal

from engine.account import AccountResult
from engine.evaluate import SiteResult
from engine.lines import line_kind
from engine.money import Money
from engine.periods import Period
from invoicing.invoice import Invoice, UnbilledGroup

LEGAL_FIELDS = ("seller", "buyer", "issue_date", "tax_point", "due_date", "payment_terms", "credits", "tax")
LEGAL_TOTALS = ("credits", "net", "tax", "due")


def legal_fields(document: dict) -> dict | None:
    """The legal invoice's fields of a document (None for the file mode's charges only, which has no seller)."""
    if "seller" not in document:
        return None
    return {**{name: document.get(name) for name in LEGAL_FIELDS},
            "totals": {name: document["totals"][name] for name in LEGAL_TOTALS}}


def _line(data: dict):
    return line_kind(data["kind"]).from_json(data)


def invoice_from_document(document: dict, *, timezone: str) -> Invoice:
    """The invoice object of a stored document; `timezone` is its contract's."""
    sites = tuple(SiteResult(site["site"], site["name"], tuple(_line(line) for line in site["lines"]),
                             Decimal(site["total"])) for site in document["sites"])
    account = document.get("account")
    if account is not None:
        account = AccountResult(tuple(_line(line) for line in account["lines"]), Decimal(account["total"]))
    unbilled = tuple(UnbilledGroup(group["reason"], group["site"], group["category"], group["events"],
                                   Decimal(group["quantity"])) for group in document["unbilled"])
    return Invoice(
        contract=document["contract"],
        customer=document["customer"],
        money=Money.of(document["currency"]),
        period=Period.parse(document["period"]),
        timezone=timezone,
        starts_year=Period.parse(document["contract_year_start"][:7]),
        contract_version=document["contract_version"],
        sites=sites,
        unbilled=unbilled,
        account=account,
        legal=legal_fields(document),
    )
