"""An invoice read back from its stored JSON (interfaces §3), to render a stored invoice as it was made.

    invoice = invoice_from_document(row.document, timezone="Europe/London")
    render_document(invoice, "pdf", number=row.number, status="issued", issued_on=…)

The JSON holds every figure and explanation the renderings print, so an invoice
read back renders as the one that was stored: `invoice_json` of it gives the
document again (less the database mode's `late_for` marks). What the JSON does
not hold is the contract's time zone (the caller passes the contract's) and
what the engine measured a minimum against (`basis`), which no rendering prints.
"""

from __future__ import annotations

from decimal import Decimal

from engine.evaluate import SiteResult
from engine.lines import CapLine, MinimumLine, TierShare, UsageLine
from engine.money import Money
from engine.periods import Period
from engine.plan import Source
from invoicing.invoice import Invoice, UnbilledGroup

UNMEASURED = Decimal(0)   # a minimum line's basis: not part of the document


def _source(data: dict | None) -> Source | None:
    return Source(data["line"], data["column"], data["text"], data["block"]) if data else None


def _line(data: dict):
    if data["kind"] == "usage":
        tiers = tuple(TierShare(Decimal(t["quantity"]), Decimal(t["unit_price"]), Decimal(t["amount"]),
                                t.get("note", "")) for t in data["tiers"])
        return UsageLine(data["category"], data["label"], Decimal(data["quantity"]), data["events"],
                         Decimal(data["amount"]), data["billed"], tiers, _source(data["source"]),
                         _source(data.get("disabled_by")))
    categories = tuple(data["categories"])
    if data["kind"] == "minimum":
        return MinimumLine(categories, frozenset(categories), Decimal(data["commitment"]), data["commitment_unit"],
                           UNMEASURED, Decimal(data["amount"]), data["explanation"], _source(data["source"]))
    return CapLine(categories, Decimal(data["limit"]), Decimal(data["counted_before"]), Decimal(data["in_scope"]),
                   Decimal(data["amount"]), data["explanation"], _source(data["source"]))


def invoice_from_document(document: dict, *, timezone: str) -> Invoice:
    """The invoice object of a stored document; `timezone` is its contract's."""
    sites = tuple(SiteResult(site["site"], site["name"], tuple(_line(line) for line in site["lines"]),
                             Decimal(site["total"])) for site in document["sites"])
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
    )
