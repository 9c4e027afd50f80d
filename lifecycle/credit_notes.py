"""Credit notes: a correction of an issued invoice that leaves the invoice as it was issued.

    note = credit(session, invoice, who, "lds-02 billed before go-live", [("lds-02", "1250.00")], prefix="UK")
    credit(session, invoice, who, "fee waived", None, account=[("commitment_fee", "500.00")], prefix="UK")
    note.number          # UK-CN-2026-000001: a series of its own, gap-free per environment and year
    credit(session, invoice, who, "duplicate invoice", None, prefix="UK")   # all that remains creditable
    remaining(session, invoice)    # each line's amount less what was credited on it; the net and tax left

A credit note references one issued invoice that is in force (not voided) and
credits stated amounts of its sites and of its account lines (account minimum
true-up, commitment fee, commitment true-up: the lines that charge), or everything
that remains. What it credits is its net; it carries the tax of that net at the
invoice's treatment, rate and tax point (invoicing/credit_note.py `credited_tax`).
It never exceeds what remains creditable: per line, the line's amount on the
invoice less what earlier credit notes credited on it; in all, the invoice's net
(the charges less the grants drawn: what the customer was charged, never the part
grants paid) less the earlier credit notes' nets. A line that reduces the invoice
(an account cap reduction, a commitment drawdown) has nothing to credit. The
contract row is locked first, so two credit notes of one invoice cannot both take
the same remainder.

A credit note is a financial document only (docs/tax-and-credits.md, Credit
notes): the grants the invoice drew stay drawn, and what later periods count (the
site and account caps' counts, the commitment's balance and the year's spend,
frozen with the issued invoice) stays as the invoice froze it.

Numbers come from the invoice counter table (lifecycle/transitions.py
`next_number`), on a row of their own per environment and year
(`<environment>:credit-notes`), as PREFIX-CN-YYYY-NNNNNN, taken after every check
and before the PDF, so a refusal or a failed PDF rolls the number back with the
rest: no gaps. The PDF is stored with its SHA-256 in the row, and the row is never
changed or deleted (migration 0006's triggers, and the ORM guard). Each credit
note is an audit entry `credit_note.issue`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from sqlalchemy import select
from sqlalchemy.orm import Session

import engine.account_lines  # noqa: F401  (registers the account line kinds, whose titles name credited lines)
from audit.log import Actor, invoice_resource, record
from engine.lines import UnknownLineKind, line_kind
from engine.money import Money
from engine.refusal import Refusal, Refused
from invoicing.credit_note import (
    CreditLine,
    CreditNoteDocument,
    Left,
    credited_tax,
    render_credit_note_pdf,
)
from ledger.contracts import UnknownContract
from ledger.invoices import status_of
from ledger.models import Contract, Invoice
from lifecycle.models import CreditNote
from lifecycle.transitions import next_number

UTC = dt.UTC
SERIES = "credit-notes"
ZERO = Decimal(0)
Key = tuple[str, str]   # ("site", site id) or ("account", line kind)


def notes_of(session: Session, invoice_ids: Iterable[int]) -> dict[int, list[CreditNote]]:
    """The credit notes of each invoice, oldest first."""
    notes: dict[int, list[CreditNote]] = {}
    ids = list(invoice_ids)
    if ids:
        for note in session.scalars(select(CreditNote).where(CreditNote.invoice_id.in_(ids)).order_by(CreditNote.id)):
            notes.setdefault(note.invoice_id, []).append(note)
    return notes


@dataclass(frozen=True)
class Remaining:
    """What remains creditable on an issued invoice after its credit notes."""

    charged: dict[Key, Decimal]   # each line of the invoice, in its order: its amount on the invoice
    lines: dict[Key, Decimal]     # the same, less what its credit notes credited on it
    names: dict[Key, str]
    left: Left                    # the invoice's net and tax (and its GBP statement) less the credit notes'

    def of(self, key: Key) -> Decimal:
        """What a credit note may still credit on one line: the line's remainder, never more than the net's."""
        return max(min(self.lines[key], self.left.net), ZERO)


def invoice_lines(document: dict) -> tuple[dict[Key, Decimal], dict[Key, str]]:
    """The invoice's creditable lines in its order: its sites (their totals), then its account lines."""
    amounts: dict[Key, Decimal] = {}
    names: dict[Key, str] = {}
    for site in document["sites"]:
        amounts["site", site["site"]], names["site", site["site"]] = Decimal(site["total"]), site["name"]
    for line in (document.get("account") or {}).get("lines", ()):
        key = ("account", line["kind"])
        amounts[key], names[key] = Decimal(line["amount"]), line_kind(line["kind"]).title
    return amounts, names


def invoice_net(document: dict) -> Decimal:
    """What the customer was charged before tax: the net after grants (an invoice stored before the legal
    fields has none: its total)."""
    totals = document["totals"]
    return Decimal(totals.get("net", totals["total"]))


def _tax_of(document: dict) -> dict | None:
    """The invoice's tax section with its tax point (None: the invoice has no tax section)."""
    return {**document["tax"], "tax_point": document.get("tax_point")} if document.get("tax") else None


def remaining(session: Session, invoice: Invoice) -> Remaining:
    document = invoice.document
    charged, names = invoice_lines(document)
    amounts = dict(charged)
    net = invoice_net(document)
    tax = _tax_of(document)
    tax_left = Decimal(tax["amount"]) if tax else ZERO
    gbp_left = Decimal(tax["amount_gbp"]) if tax and tax.get("amount_gbp") is not None else None
    for note in notes_of(session, [invoice.id]).get(invoice.id, []):
        for line in map(CreditLine.from_json, note.lines):
            amounts[line.on, line.ref] -= line.amount
            net -= line.amount
        if note.tax:
            tax_left -= Decimal(note.tax["amount"])
            if gbp_left is not None and note.tax.get("amount_gbp") is not None:
                gbp_left -= Decimal(note.tax["amount_gbp"])
    return Remaining(charged, amounts, names, Left(max(net, ZERO), max(tax_left, ZERO),
                                          None if gbp_left is None else max(gbp_left, ZERO)))


def creditable(session: Session, invoice: Invoice) -> dict[str, Decimal]:
    """Per site of the invoice, in its order: what a credit note may still credit on it."""
    left = remaining(session, invoice)
    return {ref: left.of((on, ref)) for on, ref in left.lines if on == "site"}


def credit(session: Session, invoice: Invoice, who: Actor, reason: str, amounts: Sequence[tuple[str, str]] | None,
           *, account: Sequence[tuple[str, str]] = (), prefix: str, locale: str = "en_GB",
           now: dt.datetime | None = None,
           render: Callable[[CreditNoteDocument, str], bytes] = render_credit_note_pdf) -> CreditNote:
    """Makes, numbers and stores a credit note of `invoice`: `amounts` as (site, amount as typed) and `account`
    as (account line kind, amount as typed), or neither (None, ()) for everything that remains creditable.
    Refused (nothing changed) when it may not be made: its field is "reason", "amount" (with the site or the
    account line in its params), or None for the invoice as a whole."""
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
    left = remaining(session, invoice)
    if amounts is None and not account:
        lines = _everything(left, name, money, document)
    else:
        lines = _stated_lines([("site", site, text) for site, text in amounts or ()]
                              + [("account", kind, text) for kind, text in account], left, money, name)
    net = sum((line.amount for line in lines), ZERO)
    note = CreditNoteDocument(
        number=next_number(session, f"{who.environment}:{SERIES}", f"{prefix}-CN", now.year),
        issued_on=now.date(), customer=document["customer"], contract=invoice.customer,
        currency=document["currency"], invoice_number=invoice.number, invoice_period=invoice.period,
        reason=reason.strip(), lines=tuple(lines),
        tax=credited_tax(_tax_of(document), net, left.left, document["currency"]),
        invoice_date=_date(document.get("issue_date")) or invoice.issued_at.date(),
        seller=document.get("seller"), buyer=document.get("buyer"))
    try:
        pdf = render(note, locale)
    except Exception as exc:   # whatever the renderer's failure, nothing is stored and the number is not used
        raise Refused(Refusal("pdf-failed", f"the credit note's PDF cannot be made, so nothing was issued: {exc}")) \
            from exc
    sha256 = hashlib.sha256(pdf).hexdigest()
    row = CreditNote(number=note.number, invoice_id=invoice.id, customer=invoice.customer, currency=note.currency,
                     reason=note.reason, lines=[line.as_json(money) for line in note.lines],
                     tax=dict(note.tax) if note.tax else None, total=note.total, issued_at=now, issued_by=who.name,
                     pdf=pdf, sha256=sha256)
    session.add(row)
    session.flush()
    record(session, who, "credit_note.issue", invoice_resource(invoice.customer, invoice.period, invoice.id),
           details={"number": note.number, "invoice": invoice.number, "net": money.format(note.net),
                    "tax": money.format(note.tax_amount), "total": money.format(note.total),
                    "reason": note.reason, "pdf_sha256": sha256}, at=now)
    return row


def document_of(session: Session, row: CreditNote) -> CreditNoteDocument:
    """A stored credit note as its document (for its JSON and text; its PDF is stored)."""
    invoice = session.get(Invoice, row.invoice_id)
    document = invoice.document
    return CreditNoteDocument(
        number=row.number, issued_on=row.issued_at.date(), customer=document["customer"], contract=row.customer,
        currency=row.currency, invoice_number=invoice.number, invoice_period=invoice.period,
        reason=row.reason, lines=tuple(map(CreditLine.from_json, row.lines)), tax=row.tax,
        invoice_date=_date(document.get("issue_date")) or invoice.issued_at.date(),
        seller=document.get("seller"), buyer=document.get("buyer"))


def find_note(session: Session, number: str) -> CreditNote:
    row = session.scalar(select(CreditNote).where(CreditNote.number == number.strip()))
    if row is None:
        raise Refused(Refusal("no-credit-note", f"there is no credit note numbered {number.strip()}"))
    return row


def _date(text: str | None) -> dt.date | None:
    return dt.date.fromisoformat(text) if text else None


def _everything(left: Remaining, name: str, money: Money, document: dict) -> list[CreditLine]:
    """All that remains: each line's remainder in the invoice's order, until the net that remains is used up."""
    lines, net = [], left.left.net
    for key, amount in left.lines.items():
        take = min(amount, net)
        if take > ZERO:
            lines.append(CreditLine(*key, left.names[key], take))
            net -= take
    if not lines:
        paid = invoice_net(document) <= ZERO
        raise Refused(Refusal("nothing-remains", f"nothing remains to credit on {name}: "
                              + ("its grants paid all of its charges (its net is "
                                 f"{money.format(invoice_net(document))})" if paid
                                 else "its credit notes credit all of it")))
    return lines


def _label(on: str, ref: str) -> str:
    return f"site {ref}" if on == "site" else f"account line {ref}"


def _stated_lines(stated_amounts: Sequence[tuple[str, str, str]], left: Remaining, money: Money,
                  name: str) -> list[CreditLine]:
    stated: dict[Key, Decimal] = {}
    for on, ref, text in stated_amounts:
        key = (on, ref)
        if key not in left.lines:
            raise _refused_amount(*_unknown(on, ref, left, name))
        if key in stated:
            raise _refused_amount(f"{on}-twice", on, ref, f"{_label(on, ref)} is stated twice; give one amount "
                                                          f"per {'site' if on == 'site' else 'account line'}")
        if on == "account" and left.charged[key] <= ZERO:
            raise _refused_amount("not-a-charge", on, ref, f"the {left.names[key].lower()} ({ref}) of {name} is "
                                  f"{money.format(left.charged[key])}: "
                                  + ("it reduces the invoice" if left.charged[key] else "it charges nothing")
                                  + ", so a credit note has nothing on it to credit")
        stated[key] = _amount(on, ref, text, money, left.lines[key])
    if not stated:
        raise Refused(Refusal("no-amount", "state an amount for at least one site or account line, or credit "
                                           "everything that remains", field="amount"))
    net = sum(stated.values(), ZERO)
    if net > left.left.net:
        raise Refused(Refusal("more-than-net", f"the amounts stated add up to {money.format(net)}, more than the "
                              f"{money.format(left.left.net)} of {name}'s net that remains creditable (a credit note "
                              "credits what the customer was charged: the charges less the grants drawn)",
                              field="amount", params={"net": money.format(left.left.net)}))
    return [CreditLine(*key, left.names[key], stated[key]) for key in left.lines if key in stated]


def _unknown(on: str, ref: str, left: Remaining, name: str) -> tuple[str, str, str, str]:
    if on == "site":
        sites = [r for o, r in left.lines if o == "site"]
        return "no-such-site", on, ref, f"{name} has no site '{ref}' (its sites: {', '.join(sites) or 'none'})"
    lines = ", ".join(r for o, r in left.lines if o == "account") or "none"
    try:
        title = line_kind(ref).title.lower()
    except UnknownLineKind:
        return "no-such-account-line", on, ref, (f"'{ref}' is not a kind of account line (the account lines of "
                                                 f"{name}: {lines})")
    return "no-such-account-line", on, ref, f"{name} has no {title} ({ref}); its account lines: {lines}"


def _amount(on: str, ref: str, text: str, money: Money, remaining: Decimal) -> Decimal:
    label = _label(on, ref)
    try:
        amount = Decimal(text.strip())
    except InvalidOperation:
        raise _refused_amount("not-an-amount", on, ref, f"{label}: '{text}' is not an amount "
                                                         "(write it like 120.50)") from None
    if not amount.is_finite() or amount <= ZERO:
        raise _refused_amount("amount-not-positive", on, ref, f"{label}: a credited amount is more than zero")
    if money.round(amount) != amount:
        raise _refused_amount("too-many-places", on, ref, f"{label}: {text.strip()} has more than the "
                                                           f"{money.places} decimal places of {money.currency}")
    if amount > remaining:
        raise _refused_amount("more-than-remains", on, ref, f"{label}: {money.format(amount)} is more than the "
                                                             f"{money.format(max(remaining, ZERO))} that remains "
                                                             "creditable on it")
    return amount


def _refused_amount(code: str, on: str, ref: str, message: str) -> Refused:
    """A refusal of the amount stated for one site or account line: a form shows it beside that amount."""
    return Refused(Refusal(code, message, field="amount", params={on: ref}))
