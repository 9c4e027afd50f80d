"""A credit note as a PDF: templates/credit_note.html, laid out by WeasyPrint like the invoice.

    note = CreditNoteDocument(number="UK-CN-2026-000001", issued_on=date(2026, 7, 2), customer="Acme Health Ltd",
                              contract="acme-health", currency="GBP", invoice_number="UK-2026-000042",
                              invoice_period=Period(2026, 6), reason="lds-02 billed before go-live",
                              lines=(CreditLine("lds-02", "Leeds", Decimal("1250.00")),))
    render_credit_note_pdf(note, locale="en_GB")

Amounts are credited amounts (positive: what the customer no longer owes), formatted with Babel
like the invoice's. As for the invoice, the printed lines are read back and added up before anything
is laid out; if they do not give the printed total, InconsistentInvoice is raised.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import weasyprint
from babel import Locale
from babel.dates import format_skeleton

from engine.money import Money
from engine.periods import Period
from invoicing.pdf import InconsistentInvoice, Numbers, _environment


@dataclass(frozen=True)
class CreditLine:
    site: str
    name: str
    amount: Decimal


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

    @property
    def total(self) -> Decimal:
        return sum((line.amount for line in self.lines), Decimal(0))


def credit_note_view(note: CreditNoteDocument, locale: str = "en_GB") -> dict:
    """What templates/credit_note.html shows, every figure formatted and the sum checked."""
    numbers = Numbers(Money.of(note.currency), Locale.parse(locale))
    lines = [(line, numbers.amount(line.amount)) for line in note.lines]
    total = numbers.amount(note.total)
    added = sum((numbers.parse(amount) for _, amount in lines), Decimal(0))
    if added != numbers.parse(total):
        raise InconsistentInvoice(f"the credit note does not add up: its lines add up to {numbers.amount(added)}, "
                                  f"its total is {total}")
    return dict(note=note, lang=numbers.locale.language, lines=lines, total=total,
                total_credited=numbers.currency(note.total), issued_on=numbers.date(note.issued_on),
                period=format_skeleton("yMMMM", note.invoice_period.first_day, locale=numbers.locale))


def render_credit_note_html(note: CreditNoteDocument, locale: str = "en_GB") -> str:
    return _environment().get_template("credit_note.html").render(**credit_note_view(note, locale))


def render_credit_note_pdf(note: CreditNoteDocument, locale: str = "en_GB") -> bytes:
    return weasyprint.HTML(string=render_credit_note_html(note, locale)).write_pdf()
