"""The accountant's journal: each issued document as double-entry lines, and those lines as CSV.

    accounts = Accounts.of(environment.accounts)            # the [accounts] table of settings/environments/NAME.toml
    lines = invoice_entries(document, accounts, Posting(date, "UK-2026-000042", "invoice"))
    # Dr 1100 Trade debtors        10299.99   (what is due)
    # Dr 2300 Customer credits       500.00   (grant G-000004 drawn)
    #    Cr 4000 Usage · standard              7300.00
    #    Cr 4100 Minimum true-up · standard    1783.33
    #    Cr 2200 VAT payable                   1716.66
    reversal(lines, Posting(void_date, "UK-2026-000042", "void"))   # a void: every line the other way round
    render_csv(lines)                                        # one row per line, numbers numeric, cells safe

An invoice debits receivable with what is due and the customer-credits liability
with what its grants paid; it credits revenue with its charges (each line's
account: its kind's, else its category's, else `revenue`; a cap reduction or a
drawdown is negative revenue, so it stands on the debit side) and tax payable
with its tax. A credit note debits `credit_notes` per site (and tax payable with
its tax, when it carries one) and credits receivable. Every document balances
to the cent; `agreement` says whether its lines agree with the document's totals.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal

from engine.lines import line_kind
from engine.money import Money
from invoicing.csv_view import spreadsheet_safe

ZERO = Decimal(0)
ROLES = ("receivable", "revenue", "tax_payable", "customer_credits", "credit_notes")
DEFAULT_CODES = {"receivable": "1100", "revenue": "4000", "tax_payable": "2200", "customer_credits": "2300",
                 "credit_notes": "4000"}
DEFAULT_NAMES = {"receivable": "Accounts receivable", "revenue": "Revenue", "tax_payable": "Tax payable",
                 "customer_credits": "Customer credits", "credit_notes": "Credit notes"}
COLUMNS = ("date", "document", "document_type", "billing_period", "customer", "customer_name", "account",
           "account_name", "description", "debit", "credit", "currency", "tax_gbp")


@dataclass(frozen=True)
class Accounts:
    """Which account each journal line posts to: the five roles, revenue per line kind and per category, and
    the accounts' names. What the environment leaves out falls back to DEFAULT_CODES."""

    codes: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_CODES))
    kinds: Mapping[str, str] = field(default_factory=dict)
    categories: Mapping[str, str] = field(default_factory=dict)
    names: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, table: Mapping | None) -> Accounts:
        """From an environment's [accounts] table (None: every default). An unknown role is a mistake in the
        file, said by name rather than ignored."""
        table = dict(table or {})
        kinds, categories, names = (dict(table.pop(key, {}) or {}) for key in ("kinds", "categories", "names"))
        unknown = sorted(set(table) - set(ROLES))
        if unknown:
            raise ValueError(f"[accounts] has {', '.join(unknown)}, which is no account role "
                             f"(the roles: {', '.join(ROLES)}; and the tables kinds, categories, names)")
        codes = {role: str(table.get(role, DEFAULT_CODES[role])) for role in ROLES}
        if "credit_notes" not in table:
            codes["credit_notes"] = codes["revenue"]
        return cls(codes, {k: str(v) for k, v in kinds.items()}, {k: str(v) for k, v in categories.items()},
                   {str(k): str(v) for k, v in names.items()})

    def code(self, role: str) -> str:
        return self.codes[role]

    def name(self, code: str, role: str = "revenue") -> str:
        return self.names.get(code) or DEFAULT_NAMES[role]

    def revenue_of(self, kind: str, categories: tuple[str, ...]) -> str:
        """The revenue account of a line: its kind's, else its category's (a line of one category), else revenue."""
        if kind in self.kinds:
            return self.kinds[kind]
        if len(categories) == 1 and categories[0] in self.categories:
            return self.categories[categories[0]]
        return self.codes["revenue"]


@dataclass(frozen=True)
class Posting:
    """Where a document's lines are posted: the date, the document's number, its type (invoice, credit note,
    void)."""

    date: dt.date
    document: str
    document_type: str


@dataclass(frozen=True)
class JournalLine:
    date: dt.date
    document: str
    document_type: str
    billing_period: str
    customer: str
    customer_name: str
    account: str
    account_name: str
    description: str
    debit: Decimal
    credit: Decimal
    currency: str
    role: str                               # receivable, revenue, tax_payable, customer_credits, credit_notes
    tax_gbp: Decimal | None = None          # on a tax line of a non-GBP invoice with UK VAT: the VAT in GBP

    @property
    def signed(self) -> Decimal:
        """Debit positive, credit negative."""
        return self.debit - self.credit


def invoice_entries(document: dict, accounts: Accounts, posting: Posting) -> list[JournalLine]:
    """The journal lines of an issued invoice (its stored document)."""
    money = Money.of(document["currency"])
    totals = document["totals"]
    line = _maker(document, accounts, posting, money)
    revenue: dict[tuple[str, str], Decimal] = {}
    for site in document["sites"]:
        for item in site["lines"]:
            _add_revenue(revenue, accounts, item)
    for item in (document.get("account") or {}).get("lines", ()):
        _add_revenue(revenue, accounts, item)
    total = Decimal(totals["total"])
    credits = Decimal(totals.get("credits", "0"))
    tax = Decimal(totals.get("tax", "0"))
    due = Decimal(totals.get("due", total))
    lines = [line("receivable", accounts.code("receivable"), f"invoice {_period(document)}: due", due)]
    for credit in document.get("credits", ()):
        lines.append(line("customer_credits", accounts.code("customer_credits"),
                          f"credit grant {credit['grant']} drawn", -Decimal(credit["amount"])))
    if not document.get("credits") and credits:
        lines.append(line("customer_credits", accounts.code("customer_credits"), "credits drawn", -credits))
    for (code, description), amount in revenue.items():
        if amount:
            lines.append(line("revenue", code, description, -amount))
    if tax:
        section = document.get("tax") or {}
        gbp = section.get("amount_gbp")
        rate = section.get("rate")
        described = f"{_treatment(section)} at {(Decimal(rate) * 100).normalize():f}%" if rate else "tax"
        lines.append(replace(line("tax_payable", accounts.code("tax_payable"), described, -tax),
                             tax_gbp=Decimal(gbp) if gbp is not None and document["currency"] != "GBP" else None))
    return [entry for entry in lines if entry.debit or entry.credit]


def credit_note_entries(note: Mapping, invoice_document: dict, accounts: Accounts,
                        posting: Posting) -> list[JournalLine]:
    """The journal lines of a credit note: `note` has `lines` ([{"site" or "account", "name", "amount"}]: the net
    credited), `invoice` (its number) and `tax` when it carries one ({"amount", "amount_gbp"}); the document of
    the invoice it credits names the customer and the currency."""
    money = Money.of(invoice_document["currency"])
    line = _maker(invoice_document, accounts, posting, money)
    lines = [line("credit_notes", accounts.code("credit_notes"), f"credit of {_period(invoice_document)} "
                  + (f"site {item['site']}" if "site" in item else item.get("name") or item.get("account", "")),
                  Decimal(item["amount"]))
             for item in note["lines"]]
    tax = note.get("tax") or {}
    tax_amount = Decimal(tax.get("amount") or 0)
    if tax_amount:
        gbp = tax.get("amount_gbp")
        lines.append(replace(line("tax_payable", accounts.code("tax_payable"), "tax credited", tax_amount),
                             tax_gbp=Decimal(gbp) if gbp is not None and invoice_document["currency"] != "GBP"
                             else None))
    net = sum((Decimal(item["amount"]) for item in note["lines"]), ZERO)
    lines.append(line("receivable", accounts.code("receivable"), f"credit note against {note.get('invoice', '')}"
                      .rstrip(), -(net + tax_amount)))
    return [entry for entry in lines if entry.debit or entry.credit]


def reversal(lines: list[JournalLine], posting: Posting) -> list[JournalLine]:
    """Every line the other way round, posted at `posting` (a void reverses its invoice)."""
    return [replace(entry, date=posting.date, document=posting.document, document_type=posting.document_type,
                    description=f"reversal: {entry.description}", debit=entry.credit, credit=entry.debit)
            for entry in lines]


def imbalance(lines: list[JournalLine]) -> Decimal:
    """Debits less credits: 0 for a balanced document."""
    return sum((entry.debit for entry in lines), ZERO) - sum((entry.credit for entry in lines), ZERO)


def unbalanced(lines: list[JournalLine]) -> list[str]:
    """Each posted document whose debits and credits differ, with the difference."""
    documents: dict[tuple, list[JournalLine]] = {}
    for entry in lines:
        documents.setdefault((entry.document_type, entry.document, entry.date), []).append(entry)
    return [f"{kind} {number} of {date}: debits less credits {imbalance(own):f} {own[0].currency}"
            for (kind, number, date), own in documents.items() if imbalance(own)]


def agreement(document: dict, lines: list[JournalLine]) -> list[tuple[str, Decimal, Decimal]]:
    """(what, the invoice's figure, the journal's figure) for each figure the journal must agree with: debits and
    credits, receivable and due, revenue and the charges' total, revenue less credits and the net, tax payable and
    tax, customer credits and the credits drawn."""
    totals = document["totals"]

    def by_role(role: str) -> Decimal:
        return sum((entry.signed for entry in lines if entry.role == role), ZERO)

    debits = sum((entry.debit for entry in lines), ZERO)
    total = Decimal(totals["total"])
    return [
        ("journal debits equal credits", debits, sum((entry.credit for entry in lines), ZERO)),
        ("receivable debited with what is due", Decimal(totals.get("due", total)), by_role("receivable")),
        ("revenue credited with the charges' total", total, -by_role("revenue")),
        ("revenue less the credits drawn is the net", Decimal(totals.get("net", total)),
         -by_role("revenue") - by_role("customer_credits")),
        ("tax payable credited with the tax", Decimal(totals.get("tax", "0")), -by_role("tax_payable")),
        ("customer credits debited with the credits drawn", -Decimal(totals.get("credits", "0")),
         by_role("customer_credits")),
    ]


def render_csv(lines: list[JournalLine]) -> str:
    """One row per journal line; amounts are numbers with the currency's places (0.00 on the side not used),
    text cells are made safe for spreadsheets (invoicing/csv_view.py)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for entry in lines:
        money = Money.of(entry.currency)
        writer.writerow([spreadsheet_safe(value) for value in (
            entry.date.isoformat(), entry.document, entry.document_type, entry.billing_period, entry.customer,
            entry.customer_name, entry.account, entry.account_name, entry.description, money.format(entry.debit),
            money.format(entry.credit), entry.currency,
            "" if entry.tax_gbp is None else Money.of("GBP").format(entry.tax_gbp))])
    return out.getvalue()


def _maker(document: dict, accounts: Accounts, posting: Posting, money: Money):
    def line(role: str, code: str, description: str, signed: Decimal) -> JournalLine:
        signed = money.round(signed)
        return JournalLine(posting.date, posting.document, posting.document_type, document["period"],
                           document["contract"], (document.get("buyer") or {}).get("name") or document["customer"],
                           code, accounts.name(code, role), description, max(signed, ZERO), max(-signed, ZERO),
                           document["currency"], role)
    return line


def _add_revenue(revenue: dict, accounts: Accounts, item: dict) -> None:
    kind = line_kind(item["kind"])   # an unknown kind is an error, never a guess
    categories = tuple(item["categories"]) if "categories" in item else \
        ((item["category"],) if item.get("category") else ())
    description = kind.title + (f" · {' '.join(categories)}" if categories else "")
    key = (accounts.revenue_of(kind.name, categories), description)
    revenue[key] = revenue.get(key, ZERO) + Decimal(item["amount"])


def _period(document: dict) -> str:
    return f"{document['contract']} {document['period']}"


def _treatment(section: Mapping) -> str:
    return {"uk_standard": "UK VAT", "reverse_charge": "reverse charge", "exempt": "exempt"}.get(
        section.get("treatment", ""), "tax")
