"""A credit note: what it credits (net, tax, total), its JSON, its text and its PDF (templates/credit_note.html).

    note = CreditNoteDocument(number="UK-CN-2026-000001", issued_on=date(2026, 7, 2), customer="Acme Health Ltd",
                              contract="acme-health", currency="GBP", invoice_number="UK-2026-000042",
                              invoice_period=Period(2026, 6), reason="lds-02 billed before go-live",
                              lines=(CreditLine("site", "lds-02", "Leeds", Decimal("1250.00")),),
                              tax=credited_tax(invoice_tax, Decimal("1250.00"), left, "GBP"))
    note.net, note.tax_amount, note.total          # 1250.00, 250.00, 1500.00
    credit_note_json(note); credit_note_text(note, "en_GB"); render_credit_note_pdf(note, "en_GB")

Amounts are credited amounts (positive: what the customer no longer owes). A line credits a site of the
invoice ("site", its id) or one of its account lines ("account", its kind). The tax credited is the
invoice's own treatment, rate and tax point (interfaces §4, Corrections), computed by `credited_tax`:
a partial credit carries the net credited × the invoice's rate, rounded down once to the minor unit; the
credit note that credits the last of the invoice's net carries all the tax that remains, so the credit
notes of an invoice credit, in all, exactly its tax and never more. The GBP statement of UK VAT on
another currency is the tax × the invoice's own GBP rate, rounded down, and likewise the last credit
note carries what remains of the invoice's GBP amount.

Money written for people goes through engine.money.display. Before anything is laid out, the figures
are added up the way the document says they add up (lines = net, net + tax = total); if they do not,
InconsistentInvoice is raised and nothing is printed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

import weasyprint
from babel import Locale
from babel.dates import format_date, format_skeleton

from engine.money import Money, display
from engine.periods import Period
from invoicing.pdf import InconsistentInvoice, _environment
from invoicing.tax import round_down, tax_amount

ZERO = Decimal(0)
ON = ("site", "account")   # what a credit line credits: a site of the invoice, or one of its account lines


@dataclass(frozen=True)
class CreditLine:
    on: str          # "site" or "account"
    ref: str         # the site's id, or the account line's kind
    name: str        # the site's name, or the account line's title
    amount: Decimal

    def __post_init__(self):
        if self.on not in ON:
            raise ValueError(f"a credit line credits a site or an account line, not {self.on!r}")

    def as_json(self, money: Money) -> dict:
        return {self.on: self.ref, "name": self.name, "amount": money.format(self.amount)}

    @classmethod
    def from_json(cls, data: Mapping) -> CreditLine:
        on = "account" if "account" in data else "site"
        return cls(on, data[on], data["name"], Decimal(data["amount"]))


@dataclass(frozen=True)
class Left:
    """What remains creditable on the invoice before this credit note: its net and its tax (and the tax's GBP
    statement, when the invoice has one) less what its earlier credit notes credited."""

    net: Decimal
    tax: Decimal
    tax_gbp: Decimal | None = None


def credited_tax(section: Mapping | None, net: Decimal, left: Left, currency: str) -> dict | None:
    """The `tax` of a credit note crediting `net` (in `currency`) of an invoice whose tax section is `section`
    (None: the invoice has none, and neither has the credit note)."""
    if section is None:
        return None
    money, gbp = Money.of(currency), Money.of("GBP")
    rate = Decimal(section["rate"])
    closing = net >= left.net            # the last of the net: all the tax that remains goes with it
    amount = left.tax if closing else min(tax_amount(net, rate, money), left.tax)
    amount_gbp = None
    if section.get("amount_gbp") is not None:
        if section.get("fx_rate") is None:   # the invoice is in GBP: its VAT is its GBP amount
            amount_gbp = amount
        elif closing and left.tax_gbp is not None:
            amount_gbp = left.tax_gbp
        else:
            amount_gbp = round_down(amount * Decimal(section["fx_rate"]), gbp)
            if left.tax_gbp is not None:
                amount_gbp = min(amount_gbp, left.tax_gbp)
    return {"treatment": section["treatment"], "rate": section["rate"], "net": money.format(net),
            "amount": money.format(amount), "amount_gbp": None if amount_gbp is None else gbp.format(amount_gbp),
            "fx_rate": section.get("fx_rate"), "note": section.get("note"), "tax_point": section.get("tax_point")}


@dataclass(frozen=True)
class CreditNoteDocument:
    number: str
    issued_on: dt.date
    customer: str
    contract: str
    currency: str
    invoice_number: str
    invoice_period: Period
    reason: str
    lines: tuple[CreditLine, ...]
    tax: Mapping | None = None              # credited_tax's section
    invoice_date: dt.date | None = None     # the credited invoice's issue date
    seller: Mapping | None = None           # the credited invoice's seller and buyer, when it names them
    buyer: Mapping | None = None

    @property
    def net(self) -> Decimal:
        return sum((line.amount for line in self.lines), ZERO)

    @property
    def tax_amount(self) -> Decimal:
        return Decimal(self.tax["amount"]) if self.tax else ZERO

    @property
    def total(self) -> Decimal:
        return self.net + self.tax_amount


def credit_note_json(note: CreditNoteDocument) -> dict:
    money = Money.of(note.currency)
    return {
        "number": note.number, "issue_date": note.issued_on.isoformat(), "customer": note.customer,
        "contract": note.contract, "currency": note.currency,
        "invoice": {"number": note.invoice_number, "period": str(note.invoice_period),
                    "issue_date": note.invoice_date.isoformat() if note.invoice_date else None},
        "seller": dict(note.seller) if note.seller else None, "buyer": dict(note.buyer) if note.buyer else None,
        "reason": note.reason, "lines": [line.as_json(money) for line in note.lines],
        "tax": dict(note.tax) if note.tax else None,
        "totals": {"net": money.format(note.net), "tax": money.format(note.tax_amount),
                   "total": money.format(note.total)},
    }


def _verified(note: CreditNoteDocument) -> None:
    """The document's own arithmetic, checked before it is written: lines = net, net + tax = total."""
    added = sum((line.amount for line in note.lines), ZERO)
    if added != note.net or note.net + note.tax_amount != note.total or any(l.amount <= 0 for l in note.lines):
        raise InconsistentInvoice(f"the credit note does not add up: its lines add up to {added}, its net is "
                                  f"{note.net}, its tax {note.tax_amount}, its total {note.total}")
    if note.tax and Decimal(note.tax["net"]) != note.net:
        raise InconsistentInvoice(f"the credit note's tax is on {note.tax['net']}, its net is {note.net}")


def _rate(tax: Mapping) -> str:
    return f"{(Decimal(tax['rate']) * 100).normalize():f}%"


def credit_note_view(note: CreditNoteDocument, locale: str = "en_GB") -> dict:
    """What templates/credit_note.html and the text show: every figure formatted, the sums checked."""
    _verified(note)
    language = Locale.parse(locale)

    def money(amount: Decimal, currency: str = note.currency) -> str:
        return display(amount, currency, locale)

    tax = note.tax
    tax_view = None
    if tax:
        tax_view = {"label": "VAT" if tax["treatment"] == "uk_standard" else "Tax", "rate": _rate(tax),
                    "amount": money(Decimal(tax["amount"])), "note": tax.get("note"),
                    "tax_point": format_date(dt.date.fromisoformat(tax["tax_point"]), "long", locale=language)
                    if tax.get("tax_point") else None,
                    "gbp": money(Decimal(tax["amount_gbp"]), "GBP")
                    if tax.get("amount_gbp") is not None and note.currency != "GBP" else None,
                    "fx_rate": tax.get("fx_rate")}
    return {"note": note, "lang": language.language, "lines": [(line, money(line.amount)) for line in note.lines],
                "net": money(note.net), "tax": tax_view, "tax_amount": money(note.tax_amount), "total": money(note.total),
                "issued_on": format_date(note.issued_on, "long", locale=language),
                "invoice_date": format_date(note.invoice_date, "long", locale=language) if note.invoice_date else None,
                "period": format_skeleton("yMMMM", note.invoice_period.first_day, locale=language)}


def credit_note_text(note: CreditNoteDocument, locale: str = "en_GB") -> str:
    """The credit note as plain text: what it credits, line by line, then net, tax and total."""
    view = credit_note_view(note, locale)
    out = [f"Credit note {note.number}  issued {view['issued_on']}",
           f"Credited to {note.customer} (contract {note.contract})",
           f"Credits invoice {note.invoice_number}" + (f" of {view['invoice_date']}" if view["invoice_date"] else "")
           + f", period {view['period']}",
           f"Reason: {note.reason}", ""]
    width = max(len(amount) for _, amount in view["lines"] + [(None, view["total"])])
    for line, amount in view["lines"]:
        label = f"{'site' if line.on == 'site' else 'account'} {line.ref} ({line.name})"
        out.append(f"  {label:<50} {amount:>{width}}")
    tax = view["tax"]
    tax_label = f"{tax['label']} credited at {tax['rate']}" if tax else "Tax credited"
    out += ["", f"  {'Net credited':<50} {view['net']:>{width}}", f"  {tax_label:<50} {view['tax_amount']:>{width}}",
            f"  {'Total credited':<50} {view['total']:>{width}}"]
    if tax and tax["gbp"]:
        out.append(f"  VAT in GBP at {tax['fx_rate']} GBP per {note.currency}: {tax['gbp']}")
    if tax and tax["tax_point"]:
        out.append(f"  Tax point of the credited invoice: {tax['tax_point']}")
    if tax and tax["note"]:
        out.append(f"  {tax['note']}")
    return "\n".join(out) + "\n"


def render_credit_note_html(note: CreditNoteDocument, locale: str = "en_GB") -> str:
    return _environment().get_template("credit_note.html").render(**credit_note_view(note, locale))


def render_credit_note_pdf(note: CreditNoteDocument, locale: str = "en_GB") -> bytes:
    return weasyprint.HTML(string=render_credit_note_html(note, locale)).write_pdf()
