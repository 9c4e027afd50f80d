"""What-if pricing: the invoices a contract text would give, on the stored usage, without saving it.

    draft = acme_text.replace("rate 0.85", "rate 0.80")
    shown = preview(session, "acme-health", draft, Period(2026, 5))
    shown.invoice.totals["total"]        # or a Refusal: shown.code, shown.field, shown.message, shown.diagnostics

    compared = compare_versions(session, "acme-health", 1, 2, Period(2026, 5))
    compared.diff                        # unified text diff (store/history.py)
    compared.sites                       # per site and kind: amount under a, under b, difference
    compared.account                     # per account line kind (account minimum, cap, commitment): a, b, b - a

    tested = backtest(session, "acme-health", draft, periods=6)
    tested.rows                          # per closed period and site (and its account lines): issued, draft, difference
    tested.totals                        # the sums of those rows

Every invoice here is the real one's computation (store/billing_from_db.py
`invoice_of_contract`: the same rollups, late lines, conflicts and engine) with
one change: the draft is the contract version in effect from the period asked
for on. Earlier periods keep their stored versions, so the caps start from the
counts that the issued invoices of the contract year froze, as the real
invoice's do. A draft that does not compile, that is another contract, or that
changes what a new version may not change (start, time zone, currency) is a
`Refusal` (engine/refusal.py) naming the field at fault and why; nothing is
raised for a user's mistake. docs/portal-whatif.md says what each choice means
for a deal desk.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from dsl.compile import compile_source
from engine.evaluate import OutsideContract, SiteResult, Timeline
from engine.lines import kind_of, line_kind, totals_titles
from engine.periods import Period
from engine.plan import Plan
from engine.refusal import Refusal
from invoicing.invoice import Invoice as InvoiceDocument
from ledger.billing_from_db import ComputedInvoice, invoice_from_db, invoice_of_contract
from ledger.contracts import StoredContract, StoredVersionInvalid, load_contract
from ledger.history import SavedVersion, contract_history, text_diff
from ledger.invoices import issued_invoices
from ledger.models import Invoice
from rules.diagnostics import Diagnostic, Severity

ZERO = Decimal(0)
DEFAULT_PERIODS, MAX_PERIODS = 6, 36
DRAFT_NAME = "draft"


@dataclass(frozen=True)
class Draft:
    """A draft that compiled, for a stored contract."""

    contract: StoredContract
    plan: Plan
    warnings: tuple[Diagnostic, ...]


@dataclass(frozen=True)
class Preview:
    period: Period
    computed: ComputedInvoice
    warnings: tuple[Diagnostic, ...]

    @property
    def invoice(self) -> InvoiceDocument:
        return self.computed.invoice

    @property
    def document(self) -> dict:
        return self.computed.document


def compile_draft(session: Session, customer: str, source_text: str) -> Draft | Refusal:
    """Raises ledger.contracts.UnknownContract (the caller asked for a contract that does not exist)."""
    contract = load_contract_or_refusal(session, customer)
    if isinstance(contract, Refusal):
        return contract
    if not source_text.strip():
        return Refusal("empty-draft", "the contract text is empty", field="source")
    compiled = compile_source(source_text.encode("utf-8"), DRAFT_NAME)
    if not compiled.ok:
        errors = sum(d.severity is Severity.ERROR for d in compiled.diagnostics)
        return Refusal("draft-has-errors", f"the draft has {errors} error{'s' * (errors != 1)}; nothing was computed",
                       field="source", params={"errors": errors}, diagnostics=compiled.diagnostics)
    terms, stored = compiled.plan.terms, contract.timeline.first.terms
    if terms.contract_id != customer:
        return Refusal("other-contract", f"the draft is the contract '{terms.contract_id}', not '{customer}': "
                                         f"keep `contract \"{customer}\"`", field="source")
    for what, mine, theirs in (("starts", terms.starts, stored.starts), ("timezone", terms.timezone, stored.timezone),
                               ("currency", terms.money.currency, stored.money.currency)):
        if mine != theirs:
            return Refusal("kept-term", f"a new version must keep the contract's {what} "
                                        f"({theirs} in the database, {mine} in the draft)", field="source",
                           params={"term": what, "stored": theirs, "given": mine})
    return Draft(contract, compiled.plan, compiled.diagnostics)


def load_contract_or_refusal(session: Session, customer: str) -> StoredContract | Refusal:
    try:
        return load_contract(session, customer)
    except StoredVersionInvalid as exc:
        return replace(exc.refusal, field="source")


def with_draft(timeline: Timeline, plan: Plan, period: Period) -> Timeline:
    """The stored versions before `period`, and the draft in effect from `period` on."""
    return Timeline(tuple((effective, stored) for effective, stored in timeline.versions if effective < period)
                    + ((period, plan),))


def preview_draft(session: Session, draft: Draft, period: Period) -> Preview | Refusal:
    contract = replace(draft.contract, timeline=with_draft(draft.contract.timeline, draft.plan, period))
    try:
        computed = invoice_of_contract(session, contract, period)
    except OutsideContract as exc:
        return Refusal("outside-contract", str(exc), field="period", params={"period": period})
    return Preview(period, computed, draft.warnings)


def preview(session: Session, customer: str, source_text: str, period: Period) -> Preview | Refusal:
    """The invoice of `period` as if `source_text` were the version in effect then.

    Line ends are taken as "\\n" (a browser sends a text area's lines with "\\r\\n"), so the text of the
    version in effect previews exactly its stored invoice, contract version (SHA-256) included."""
    draft = compile_draft(session, customer, source_text.replace("\r\n", "\n"))
    if isinstance(draft, Refusal):
        return draft
    return preview_draft(session, draft, period)


def in_effect_total(session: Session, customer: str, period: Period) -> Decimal | None:
    """The total of `period`'s invoice under the saved versions, to set a preview beside (None: not billed)."""
    try:
        return invoice_from_db(session, customer, period).invoice.totals["total"]
    except OutsideContract:
        return None


# Comparing two saved versions ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SiteDifference:
    """One site's amounts per line kind (and in total) under version a and b: (a, b, b - a)."""

    site: str
    name: str
    kinds: dict[str, tuple[Decimal, Decimal, Decimal]]
    total: tuple[Decimal, Decimal, Decimal]
    only_in: str | None         # "a" or "b" when the other invoice does not bill the site


@dataclass(frozen=True)
class Comparison:
    customer: str
    a: SavedVersion
    b: SavedVersion
    period: Period
    diff: list[str]                          # unified diff lines; empty when the texts are equal
    invoice_a: Preview | Refusal
    invoice_b: Preview | Refusal
    sites: tuple[SiteDifference, ...]       # empty when either invoice was refused
    account: tuple[AccountDifference, ...] = ()   # the account section's lines by kind, when either has one

    @property
    def refusal(self) -> Refusal | None:
        for shown in (self.invoice_a, self.invoice_b):
            if isinstance(shown, Refusal):
                return shown
        return None

    @property
    def totals(self) -> tuple[dict[str, tuple[Decimal, Decimal, Decimal]], tuple[Decimal, Decimal, Decimal]]:
        """The sums of the site rows: per kind, and in total."""
        kinds = {kind: _sum3(site.kinds[kind] for site in self.sites) for kind in totals_titles()}
        return kinds, _sum3(site.total for site in self.sites)

    @property
    def invoice_totals(self) -> tuple[Decimal, Decimal, Decimal]:
        """The invoice totals: the site totals' sum and the account lines' (each invoice's `totals.total`)."""
        return _sum3([self.totals[1], *(row.amounts for row in self.account)])

    @property
    def invoice_kinds(self) -> dict[str, tuple[Decimal, Decimal, Decimal]]:
        """Per `totals` entry, the invoices' sums: the site rows', and the account rows' under `account`."""
        kinds = dict(self.totals[0])
        if self.account:
            kinds["account"] = _sum3([kinds.get("account", (ZERO, ZERO, ZERO)), *(r.amounts for r in self.account)])
        return kinds


@dataclass(frozen=True)
class AccountDifference:
    """The account lines of one kind under version a and b: (a, b, b - a)."""

    kind: str
    title: str
    amounts: tuple[Decimal, Decimal, Decimal]


def account_differences(a: InvoiceDocument, b: InvoiceDocument) -> tuple[AccountDifference, ...]:
    """Per kind of account line either invoice has, in a's order then b's new ones; none without an account."""
    if a.account is None and b.account is None:
        return ()
    none = a.money.round(ZERO)
    lines = [line for invoice in (a, b) if invoice.account for line in invoice.account.lines]
    kinds = list(dict.fromkeys(line.kind for line in lines))

    def amount(invoice: InvoiceDocument, kind: str) -> Decimal:
        found = invoice.account.lines if invoice.account else ()
        return sum((line.amount for line in found if line.kind == kind), none)

    return tuple(AccountDifference(kind, line_kind(kind).title, _three(amount(a, kind), amount(b, kind)))
                 for kind in kinds)


def saved_versions(session: Session, customer: str) -> tuple[SavedVersion, ...]:
    """Every saved version, numbered as the contract's history numbers them (store/history.py)."""
    return contract_history(session, customer).versions


def compare_versions(session: Session, customer: str, a: int, b: int, period: Period) -> Comparison | Refusal:
    """Raises ledger.contracts.UnknownContract."""
    versions = {version.number: version for version in saved_versions(session, customer)}
    for field, number in (("a", a), ("b", b)):
        if number not in versions:
            return Refusal("no-such-version", f"there is no version {number} of '{customer}' "
                                              f"(versions 1 to {max(versions)})", field=field,
                           params={"version": number})
    first, second = versions[a], versions[b]
    diff = text_diff(first.text, second.text, f"version {a}", f"version {b}")
    shown = []
    for version in (first, second):
        draft = compile_draft(session, customer, version.text)
        shown.append(draft if isinstance(draft, Refusal) else preview_draft(session, draft, period))
    invoice_a, invoice_b = shown
    sites, account = (), ()
    if not any(isinstance(s, Refusal) for s in shown):
        sites = site_differences(invoice_a.invoice, invoice_b.invoice)
        account = account_differences(invoice_a.invoice, invoice_b.invoice)
    return Comparison(customer, first, second, period, diff, invoice_a, invoice_b, sites, account)


def site_differences(a: InvoiceDocument, b: InvoiceDocument) -> tuple[SiteDifference, ...]:
    """Every site either invoice bills, in a's order then b's new ones."""
    in_a, in_b = {s.site: s for s in a.sites}, {s.site: s for s in b.sites}
    order = list(in_a) + [site for site in in_b if site not in in_a]
    none = a.money.round(ZERO)      # 0.00 in the currency's places, for a kind or a site without lines
    rows = []
    for site_id in order:
        old, new = in_a.get(site_id), in_b.get(site_id)
        kinds = {kind: _three(_kind_amount(old, kind, none), _kind_amount(new, kind, none))
                 for kind in totals_titles()}
        total = _three(old.total if old else none, new.total if new else none)
        only_in = None if old and new else ("a" if old else "b")
        rows.append(SiteDifference(site_id, (new or old).name, kinds, total, only_in))
    return tuple(rows)


def _kind_amount(site: SiteResult | None, kind: str, none: Decimal) -> Decimal:
    """The site's lines that sum into the invoice's `totals` entry `kind`, added up."""
    return sum((line.amount for line in site.lines if kind_of(line).totals_key == kind), none) if site else none


def _three(a: Decimal, b: Decimal) -> tuple[Decimal, Decimal, Decimal]:
    return a, b, b - a


def _sum3(rows) -> tuple[Decimal, Decimal, Decimal]:
    a = b = ZERO
    for first, second, _ in rows:
        a, b = a + first, b + second
    return _three(a, b)


# Backtest ---------------------------------------------------------------------------------------------------------

ACCOUNT_ROW = "account"     # the site id of a backtest's row for the account section


@dataclass(frozen=True)
class BacktestRow:
    period: Period
    site: str                  # a site id, or ACCOUNT_ROW: the account lines' total (account minimum, cap, commitment)
    name: str
    issued: Decimal            # the site's total on the issued invoice (0 if it did not bill the site)
    draft: Decimal             # the site's total under the draft
    difference: Decimal        # draft - issued


@dataclass(frozen=True)
class BacktestPeriod:
    period: Period
    number: str | None         # the issued invoice's number
    rows: tuple[BacktestRow, ...]

    @property
    def issued(self) -> Decimal:
        return sum((row.issued for row in self.rows), ZERO)

    @property
    def draft(self) -> Decimal:
        return sum((row.draft for row in self.rows), ZERO)

    @property
    def difference(self) -> Decimal:
        return sum((row.difference for row in self.rows), ZERO)


@dataclass(frozen=True)
class Backtest:
    customer: str
    currency: str
    draft_version: str                     # the draft's SHA-256
    asked: int                             # how many closed periods were asked for
    periods: tuple[BacktestPeriod, ...]    # oldest first
    not_closed: tuple[tuple[Period, str], ...]   # later periods left out: (period, draft | approved | void)
    warnings: tuple[Diagnostic, ...]

    @property
    def rows(self) -> tuple[BacktestRow, ...]:
        return tuple(row for period in self.periods for row in period.rows)

    @property
    def totals(self) -> tuple[Decimal, Decimal, Decimal]:
        """(issued, draft, difference): the sums of every row."""
        rows = self.rows
        return (sum((r.issued for r in rows), ZERO), sum((r.draft for r in rows), ZERO),
                sum((r.difference for r in rows), ZERO))


def backtest(session: Session, customer: str, source_text: str, periods: int = DEFAULT_PERIODS) -> Backtest | Refusal:
    """The draft against the last `periods` closed periods: those with an issued invoice in force (not voided).

    A period with only a draft or approved invoice (or a voided one not yet issued again) is not closed: there is
    nothing issued to compare with, so it is left out and listed in `not_closed`. Each period is computed as
    `preview` computes it, on its own: its caps start from the counts of the invoices really issued before it.
    Raises ledger.contracts.UnknownContract."""
    if not 1 <= periods <= MAX_PERIODS:
        return Refusal("periods-out-of-range", f"choose between 1 and {MAX_PERIODS} periods", field="periods",
                       params={"periods": periods})
    draft = compile_draft(session, customer, source_text.replace("\r\n", "\n"))
    if isinstance(draft, Refusal):
        return draft
    issued = issued_invoices(session, customer)
    closed = sorted(issued)[-periods:]
    results = []
    for period in closed:
        shown = preview_draft(session, draft, period)
        if isinstance(shown, Refusal):
            return Refusal("backtest-period-refused", f"the draft cannot bill {period}, a closed period of the "
                                                      f"backtest: {shown.message}", field="source",
                           params={"period": period})
        results.append(BacktestPeriod(period, issued[period].number,
                                      _backtest_rows(period, issued[period].document, shown.invoice)))
    return Backtest(customer, draft.plan.terms.money.currency, draft.plan.terms.version, periods, tuple(results),
                    _not_closed(session, customer, issued, closed), draft.warnings)


def _backtest_rows(period: Period, document: dict, invoice: InvoiceDocument) -> tuple[BacktestRow, ...]:
    issued = {site["site"]: (site["name"], Decimal(site["total"])) for site in document["sites"]}
    computed = {site.site: (site.name, site.total) for site in invoice.sites}
    order = list(issued) + [site for site in computed if site not in issued]
    none = invoice.money.round(ZERO)
    rows = []
    for site in order:
        name, was = issued.get(site, (None, none))
        new_name, now = computed.get(site, (name, none))
        rows.append(BacktestRow(period, site, new_name or name, was, now, now - was))
    if "account" in document or invoice.account is not None:
        was = Decimal(document["account"]["total"]) if "account" in document else none
        now = invoice.account.total if invoice.account is not None else none
        rows.append(BacktestRow(period, ACCOUNT_ROW, "Account lines", was, now, now - was))
    return tuple(rows)


def _not_closed(session: Session, customer: str, issued: dict[Period, Invoice],
                closed: list[Period]) -> tuple[tuple[Period, str], ...]:
    """The periods after the newest closed one that have an invoice, but none issued in force."""
    newest = closed[-1] if closed else None
    query = select(Invoice).where(Invoice.customer == customer).order_by(Invoice.period, Invoice.id)
    found: dict[Period, str] = {}
    for row in session.scalars(query):
        if row.period in issued or (newest is not None and row.period < newest):
            continue
        found[row.period] = "void" if row.status == "issued" else row.status
    return tuple(sorted(found.items()))
