"""The legal invoice as the documents word it: what the PDF, text and CSV print of `Invoice.legal`.

    notice(legal, number=None)          # "Not a VAT invoice: a draft, not yet issued"
    tax_label(legal["tax"])             # "VAT at 20%", "VAT: reverse charge (0%)", "Tax: exempt (0%)"
    party_ids(legal["seller"])          # [("Company number", "09876543"), ("VAT number", "GB123456789")]
    legal_sums(total, legal, "GBP")     # the sums the verification page proves; InconsistentInvoice if one fails

The three renderings take their wording and their checks from here, so they
cannot tell the customer different things. A document is not a VAT invoice while
it is a draft (no number or no issue date), and never when the seller is the test
environment's entity, whose registered name ends with `(test)` (settings/
environments/test.toml): the stored document keeps the seller's name, so a
document read back years later says what it said when it was made.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from engine.money import Money
from invoicing.tax import round_down

NOT_VAT = "Not a VAT invoice"
TEST_SELLER_MARK = "(test)"
VAT_NUMBER = re.compile(r"[A-Z]{2}[0-9A-Z]{2,13}")   # GB123456789, DE811907980; not "EIN 84-1234567"
UK_VAT = ("uk_standard", "reverse_charge")
ZERO = Decimal(0)


class InconsistentInvoice(ValueError):
    """The figures about to be printed do not add up; nothing is rendered."""


def is_test_seller(seller: dict) -> bool:
    return str(seller.get("name") or "").endswith(TEST_SELLER_MARK)


def notice(legal: dict | None, *, number: str | None) -> str:
    """Why the document is not a VAT invoice, or "" when it is one (and for the file mode's charges only)."""
    if legal is None:
        return ""
    if number is None or legal["issue_date"] is None:
        return f"{NOT_VAT}: a draft, not yet issued"
    if is_test_seller(legal["seller"]):
        return f"{NOT_VAT}: made in the test environment, whose seller does not exist"
    return ""


def percent(rate: str | Decimal) -> str:
    """A rate as a percentage: "0.20" → "20%", "0.175" → "17.5%"."""
    value = (Decimal(rate) * 100).normalize()
    return f"{value:f}%"


def tax_label(tax: dict | None) -> str:
    """The tax row's title, with its rate."""
    if tax is None:
        return "Tax"
    return {"uk_standard": f"VAT at {percent(tax['rate'])}",
            "reverse_charge": f"VAT: reverse charge ({percent(tax['rate'])})",
            "exempt": f"Tax: exempt ({percent(tax['rate'])})"}[tax["treatment"]]


def tax_id_label(tax_id: str) -> str:
    return "VAT number" if VAT_NUMBER.fullmatch(tax_id) else "Tax id"


def party_ids(party: dict) -> list[tuple[str, str]]:
    """A seller's or buyer's registration numbers and references, labelled, those it has."""
    ids = []
    if party.get("company_number"):
        ids.append(("Company number", party["company_number"]))
    if party.get("tax_id"):
        ids.append((tax_id_label(party["tax_id"]), party["tax_id"]))
    if party.get("purchase_order"):
        ids.append(("Purchase order", party["purchase_order"]))
    return ids


def net_title(legal: dict) -> str:
    """The net's title: "Total excluding VAT" where UK VAT is in question, "Net total" otherwise."""
    tax = legal.get("tax")
    return "Total excluding VAT" if tax is not None and tax["treatment"] in UK_VAT else "Net total"


def terms(legal: dict) -> str:
    """The payment terms in words: "net 30" → "Net 30: payable within 30 days of the issue date"."""
    words = legal["payment_terms"] or ""
    days = words.removeprefix("net ").strip()
    if words.startswith("net ") and days.isdigit():
        return f"Net {days}: payable within {days} days of the issue date"
    return words


@dataclass(frozen=True)
class Sum:
    """One sum the legal invoice must satisfy: figures added up, what they make, the figure printed for it."""

    added: str
    value: Decimal
    printed: str
    figure: Decimal


def legal_sums(total: Decimal, legal: dict, currency: str, *, total_title: str = "Total charges") -> list[Sum]:
    """The sums of charges, credits, net, tax and due (interfaces §4), from the amounts as printed; raises
    InconsistentInvoice naming every one that fails."""
    money, totals, tax = Money.of(currency), legal["totals"], legal.get("tax")
    credits_total, net = Decimal(totals["credits"]), Decimal(totals["net"])
    tax_total, due = Decimal(totals["tax"]), Decimal(totals["due"])
    drawn = sum((Decimal(credit["amount"]) for credit in legal["credits"]), ZERO)
    count = len(legal["credits"])
    label, net_name = tax_label(tax), net_title(legal)
    sums = [Sum(f"Credits drawn ({count} grant{'' if count == 1 else 's'})", drawn, "Credits", credits_total),
            Sum(f"{total_title} + credits", total + credits_total, net_name, net)]
    problems = []
    if tax is not None:
        rate = Decimal(tax["rate"])
        sums.append(Sum(f"{net_name} × {percent(rate)}, rounded down", round_down(net * rate, money), label,
                        tax_total))
        if (Decimal(tax["net"]), Decimal(tax["amount"])) != (net, tax_total):
            problems.append(f"the tax section's net {tax['net']} and tax {tax['amount']} are not the invoice's "
                            f"{net} and {tax_total}")
        if tax["amount_gbp"] is not None and currency != "GBP":
            fx = Decimal(tax["fx_rate"])
            sums.append(Sum(f"{label} × {fx:f} GBP per {currency}, rounded down",
                            round_down(tax_total * fx, Money.of("GBP")), "VAT in GBP", Decimal(tax["amount_gbp"])))
    elif tax_total:
        problems.append(f"an invoice without a tax section has tax {tax_total}")
    sums.append(Sum(f"{net_name} + {label}", net + tax_total, "Amount due", due))
    problems += [f"{s.added} make {s.value}, {s.printed} is {s.figure}" for s in sums if s.value != s.figure]
    if problems:
        raise InconsistentInvoice("the invoice does not add up: " + "; ".join(problems))
    return sums
