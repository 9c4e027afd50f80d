"""Credit notes: a correction of an issued invoice that leaves the invoice as it was issued.

    note = credit(session, invoice, who, "lds-02 billed before go-live", [("lds-02", "1250.00")], prefix="UK")
    note.number          # UK-CN-2026-000001: a series of its own, gap-free per environment and year
    credit(session, invoice, who, "duplicate invoice", None, prefix="UK")   # all that remains creditable
    creditable(session, invoice)   # {"lon-01": Decimal("4880.00"), …}: each site's total less what is credited

A credit note references one issued invoice that is in force (not voided) and
credits stated amounts per site of it, or everything that remains. It never
exceeds what remains creditable: per site, the site's total on the invoice less
the amounts of that site on the invoice's earlier credit notes. The contract row
is locked first (as store/lifecycle.py does for every step), so two credit notes
of one invoice cannot both take the same remainder.

Numbers come from the invoice counter table (store/lifecycle.py `next_number`),
on a row of their own per environment and year (`<environment>:credit-notes`), as
PREFIX-CN-YYYY-NNNNNN, taken after every check and before the PDF, so a refusal or
a failed PDF rolls the number back with the rest: no gaps. The PDF
(invoicing/credit_note.py) is stored with its SHA-256 in the row, and the row is
never changed or deleted (migration 0006's triggers, and the ORM guard in
store/models.py). Each credit note is an audit entry `credit_note.issue`.
Caps are not affected: they count usage billed, and a credit note bills none.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal, InvalidOperation
from typing import Callable, Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.log import Actor, invoice_resource, record
from engine.money import Money
from engine.refusal import Refusal, Refused
from invoicing.credit_note import CreditLine, CreditNoteDocument, render_credit_note_pdf
from ledger.contracts import UnknownContract
from ledger.invoices import status_of
from ledger.models import Contract, Invoice
from lifecycle.models import CreditNote
from lifecycle.transitions import next_number

UTC = dt.timezone.utc
SERIES = "credit-notes"
ZERO = Decimal(0)


def notes_of(session: Session, invoice_ids: Iterable[int]) -> dict[int, list[CreditNote]]:
    """The credit notes of each invoice, oldest first."""
    notes: dict[int, list[CreditNote]] = {}
    ids = list(invoice_ids)
    if ids:
        for note in session.scalars(select(CreditNote).where(CreditNote.invoice_id.in_(ids)).order_by(CreditNote.id)):
            notes.setdefault(note.invoice_id, []).append(note)
    return notes


def creditable(session: Session, invoice: Invoice) -> dict[str, Decimal]:
    """Per site of the invoice, in its order: its total less what the invoice's credit notes credited on it."""
    remaining = {site["site"]: Decimal(site["total"]) for site in invoice.document["sites"]}
    for note in notes_of(session, [invoice.id]).get(invoice.id, []):
        for line in note.lines:
            remaining[line["site"]] -= Decimal(line["amount"])
    return {site: max(amount, ZERO) for site, amount in remaining.items()}


def credit(session: Session, invoice: Invoice, who: Actor, reason: str, amounts: Sequence[tuple[str, str]] | None,
           *, prefix: str, locale: str = "en_GB", now: dt.datetime | None = None,
           render: Callable[[CreditNoteDocument, str], bytes] = render_credit_note_pdf) -> CreditNote:
    """Makes, numbers and stores a credit note of `invoice`: `amounts` as (site, amount as typed), or None for
    everything that remains creditable. Refused (nothing changed) when it may not be made: its field is
    "reason", "amount" (with the site in its params), or None for the invoice as a whole."""
    now = now or dt.datetime.now(UTC)
    if not reason.strip():
        raise Refused(Refusal("reason-missing", "a credit note needs a reason", field="reason"))
    if session.get(Contract, invoice.customer, with_for_update=True, populate_existing=True) is None:
        raise UnknownContract(invoice.customer)
    session.refresh(invoice)
    name = invoice.number or f"invoice #{invoice.id}"
    status = status_of(session, invoice)
    if status != "issued" or invoice.number is None:
        raise Refused(Refusal("not-creditable", f"{name} is {status}: only an issued invoice in force can be credited"
                              + (" (it was corrected by its void)" if status == "void" else ""),
                              params={"status": status}))
    document = invoice.document
    money = Money.of(document["currency"])
    remaining = creditable(session, invoice)
    names = {site["site"]: site["name"] for site in document["sites"]}
    if amounts is None:
        lines = [CreditLine(site, names[site], amount) for site, amount in remaining.items() if amount > ZERO]
        if not lines:
            raise Refused(Refusal("nothing-remains", f"nothing remains to credit on {name}: its credit notes "
                                                     "credit all of it"))
    else:
        lines = _stated_lines(amounts, remaining, names, money, name)
    note = CreditNoteDocument(
        number=next_number(session, f"{who.environment}:{SERIES}", f"{prefix}-CN", now.year),
        issued_on=now.date(), customer=document["customer"], contract=invoice.customer,
        currency=document["currency"], invoice_number=invoice.number, invoice_period=invoice.period,
        reason=reason.strip(), lines=tuple(lines))
    try:
        pdf = render(note, locale)
    except Exception as exc:   # whatever the renderer's failure, nothing is stored and the number is not used
        raise Refused(Refusal("pdf-failed", f"the credit note's PDF cannot be made, so nothing was issued: {exc}")) \
            from exc
    sha256 = hashlib.sha256(pdf).hexdigest()
    lines_json = [{"site": line.site, "name": line.name, "amount": money.format(line.amount)} for line in note.lines]
    row = CreditNote(number=note.number, invoice_id=invoice.id, customer=invoice.customer, currency=note.currency,
                     reason=note.reason, lines=lines_json, total=note.total, issued_at=now, issued_by=who.name,
                     pdf=pdf, sha256=sha256)
    session.add(row)
    session.flush()
    record(session, who, "credit_note.issue", invoice_resource(invoice.customer, invoice.period, invoice.id),
           details={"number": note.number, "invoice": invoice.number, "total": money.format(note.total),
                    "reason": note.reason, "pdf_sha256": sha256}, at=now)
    return row


def _stated_lines(amounts: Sequence[tuple[str, str]], remaining: dict[str, Decimal], names: dict[str, str],
                  money: Money, name: str) -> list[CreditLine]:
    stated: dict[str, Decimal] = {}
    for site, text in amounts:
        if site not in remaining:
            raise _refused_amount("no-such-site", site, f"{name} has no site '{site}' "
                                                        f"(its sites: {', '.join(remaining) or 'none'})")
        if site in stated:
            raise _refused_amount("site-twice", site, f"site {site} is stated twice; give one amount per site")
        stated[site] = _amount(site, text, money, remaining[site])
    if not stated:
        raise Refused(Refusal("no-amount", "state an amount for at least one site, or credit everything that "
                                           "remains", field="amount"))
    return [CreditLine(site, names[site], stated[site]) for site in remaining if site in stated]


def _amount(site: str, text: str, money: Money, remaining: Decimal) -> Decimal:
    try:
        amount = Decimal(text.strip())
    except InvalidOperation:
        raise _refused_amount("not-an-amount", site, f"site {site}: '{text}' is not an amount "
                                                     "(write it like 120.50)") from None
    if not amount.is_finite() or amount <= ZERO:
        raise _refused_amount("amount-not-positive", site, f"site {site}: a credited amount is more than zero")
    if money.round(amount) != amount:
        raise _refused_amount("too-many-places", site, f"site {site}: {text.strip()} has more than the "
                                                       f"{money.places} decimal places of {money.currency}")
    if amount > remaining:
        raise _refused_amount("more-than-remains", site, f"site {site}: {money.format(amount)} is more than the "
                                                         f"{money.format(remaining)} that remains creditable on it")
    return amount


def _refused_amount(code: str, site: str, message: str) -> Refused:
    """A refusal of the amount stated for one site: a form shows it beside that site's amount."""
    return Refused(Refusal(code, message, field="amount", params={"site": site}))
