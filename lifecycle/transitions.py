"""The invoice lifecycle: draft (recomputed freely) → approved → issued → void.

    close(session, "acme-health", Period(2026, 5))              # a draft, created or recomputed
    close_and_reconcile(session, "acme-health", Period(2026, 5), who, threshold=threshold)   # … and reconciled
    why_stale(session, draft, invoice_from_db(…))               # None, or why approving it would be refused
    approve(session, Selector("acme-health", Period(2026, 5)), who, threshold=threshold,   # APPROVAL_GATES first
            profile_required=True, treatments=("uk_standard", "reverse_charge"))           # production's policy
    issue(session, Selector(...), who, threshold=threshold, prefix="UK", locale="en_GB")   # UK-2026-000042, its PDF
    void(session, Selector(number="UK-2026-000042"), who, "wrong site list")
    close(session, "acme-health", Period(2026, 5))              # the re-issue's draft replaces the void one

Issuing numbers the invoice PREFIX-YYYY-NNNNNN, gap-free per environment and
year of issue, from a counter row locked in the issuing transaction (FOR UPDATE
on PostgreSQL; SQLite's writers hold the database lock from BEGIN IMMEDIATE).
The number is taken only when everything else has succeeded but the commit, so
a refusal or a failed PDF rolls the counter back with the rest.

An issued invoice never changes (triggers of migration 0004, and the ORM guard
in store/models.py). A void is a row of its own (`invoice_voids`: who, when,
why); the status shown is derived (`status_of`). A voided period is open again:
`billing close` makes a new draft that `replaces` the voided invoice, and it gets
its own number when issued.

Every refusal raises `Refused` (engine/refusal.py: a code, a message, the next
step when there is one) before anything is written; approve, issue and
void are recorded in the audit log in their own transaction. Approving and
issuing run the period's reconciliation again (`reconciliation_passed`): a
discrepancy above the threshold refuses them until it is resolved or explained.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Callable
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from audit.log import Actor, invoice_resource, record
from engine.periods import Period
from engine.refusal import Refusal, Refused
from invoicing.invoice import Invoice as InvoiceDocument
from invoicing.legal import with_legal
from invoicing.stored import legal_fields
from invoicing.tax import needs_fx_rate
from ledger.billing_from_db import ComputedInvoice, invoice_from_db
from ledger.contracts import UnknownContract
from ledger.grants import consume
from ledger.invoices import Selector, document_sha256, find, frozen_mismatch, status_of
from ledger.issuing import computed_fields, freeze
from ledger.models import Contract, Invoice, InvoicePdf, InvoiceVoid
from ledger.profiles import legal_terms, missing_for, profile_of
from lifecycle.models import InvoiceCounter
from review.models import ReconciliationExplanation
from review.reconcile import (
    EventQuery,
    Report,
    Threshold,
    explanation_of,
    headline,
    reconcile,
    store_report,
    take_snapshot,
)
from storage.db import dialect_insert
from telemetry.metrics import INVOICES, count_on_commit

UTC = dt.timezone.utc
NUMBER_DIGITS = 6


@dataclass(frozen=True)
class Policy:
    """What the environment asks of an approval, handed in by the caller: the reconciliation's threshold, and
    whether every invoice needs a complete billing profile (production) with a treatment it issues, and the
    locale its refusals write money in (the environment's)."""

    threshold: Threshold
    profile_required: bool = False
    treatments: tuple[str, ...] = ()
    locale: str = "en_GB"


# Checks that a draft must pass to be approved, in order: each returns None, or why it may not be approved.
Gate = Callable[[Session, Invoice, ComputedInvoice, Policy], "Refusal | None"]


@dataclass(frozen=True)
class Stale:
    """Why a draft is not what closing its period now would make: one reason a clause, in the order of
    `why_stale`, and the totals then and now (the documents' decimal strings)."""

    made_at: dt.datetime
    reasons: tuple[str, ...]
    total_then: str
    total_now: str
    currency: str

    def sentence(self) -> str:
        return (f"what it bills changed since the draft was made ({self.made_at.astimezone(UTC):%Y-%m-%d %H:%M} "
                f"UTC): {'; '.join(self.reasons)}")


def why_stale(session: Session, draft: Invoice, computed: ComputedInvoice) -> Stale | None:
    """None when `draft` is what `computed` (its period computed now, with the same legal terms) would store;
    else every reason it is not: the contract version, the usage (events that arrived since it was made), the
    customer's billing profile, the credit grants, the tax rate, the seller; what the approval gate says and
    what the invoice page shows before Approve."""
    if draft.usage_hash == computed.usage_hash and draft.document == computed.document:
        return None
    then, now = draft.document, computed.document
    reasons = []
    in_force_now = computed.result.plan.terms.version
    if draft.contract_sha != in_force_now:
        reasons.append(_contract_changed(session, draft, in_force_now))
    if draft.usage_hash != computed.usage_hash:
        reasons.append(_usage_changed(session, draft))
    if ("seller" in then) != ("seller" in now):
        reasons.append("the draft was made without the legal terms (seller, buyer, tax) this environment bills with"
                       if "seller" in now else "the draft has legal terms (seller, buyer, tax) this environment has not")
    else:
        reasons += _legal_changed(session, draft, then, now)
    if not reasons:
        reasons.append("the charges computed now differ from the draft's")
    return Stale(draft.created_at, tuple(reasons), then["totals"]["total"], now["totals"]["total"],
                 now.get("currency", ""))


def stale_now(session: Session, row: Invoice, *, seller: Mapping | None = None,
              now: dt.datetime | None = None) -> Stale | None:
    """`why_stale` of an open (draft or approved) invoice against its period computed now, as approving it
    would compute it. Refused as `close` is: no contract, a period outside it, a version that no longer compiles."""
    now = now or dt.datetime.now(UTC)
    return why_stale(session, row, _legal(session, _compute(session, row.customer, row.period), seller, None, now))


def _legal_changed(session: Session, draft: Invoice, then: dict, now: dict) -> list[str]:
    """What changed in the legal terms (invoicing/legal.py): the buyer's profile, the tax rate, the credits
    drawn, the seller."""
    reasons = []
    tax_then, tax_now = then.get("tax") or {}, now.get("tax") or {}
    if (then.get("buyer"), then.get("payment_terms"), tax_then.get("treatment")) != \
            (now.get("buyer"), now.get("payment_terms"), tax_now.get("treatment")):
        profile = profile_of(session, draft.customer)
        reasons.append("the customer's billing profile changed" + (
            f" (now revision {profile.revision}, saved by {profile.saved_by} on {profile.saved_at:%Y-%m-%d})"
            if profile is not None else " (it has none now)"))
    elif tax_then.get("rate") != tax_now.get("rate"):
        reasons.append(f"the tax rate in force changed ({tax_then.get('rate')}% then, {tax_now.get('rate')}% now)")
    if then.get("credits", []) != now.get("credits", []):
        reasons.append(f"the credit grants it draws on changed (credits {then['totals'].get('credits', '0')} then, "
                       f"{now['totals'].get('credits', '0')} now)")
    if then.get("seller") != now.get("seller"):
        reasons.append("the seller's details this environment bills with changed")
    return reasons


def _contract_changed(session: Session, draft: Invoice, in_force_now: str) -> str:
    """Which saved version (ledger/history.py numbers them in the order saved) the draft used and which bills
    its period now, with the period each is in effect from."""
    from ledger.history import contract_history

    versions = contract_history(session, draft.customer).versions
    used = next((v for v in versions if v.sha256 == draft.contract_sha), None)
    current = next((v for v in reversed(versions) if v.sha256 == in_force_now and v.effective <= draft.period
                    and v.replaced_by is None), None) or next((v for v in versions if v.sha256 == in_force_now), None)

    def named(version) -> str:
        return f"version {version.number} (in effect from {version.effective})" if version else "a version since replaced"

    return f"the contract changed: the draft used {named(used)}, {named(current)} bills {draft.period} now"


def _usage_changed(session: Session, draft: Invoice) -> str:
    """How many events of the period, late events of earlier ones (which a draft bills), and conflicting
    repeats arrived since the draft was made (review/reconcile.py's EventQuery: the events finance can list)."""
    period = draft.period
    earlier_late = dict(first_day=dt.date.min, last_day=period.first_day - dt.timedelta(days=1), late=True)

    def arrived(conflicts: bool) -> int:
        found = 0
        for query in (EventQuery(draft.customer, period.first_day, period.last_day, conflicts=conflicts),
                      EventQuery(draft.customer, conflicts=conflicts, **earlier_late)):
            statement = query.statement().order_by(None)
            statement = statement.where(statement.selected_columns.received_at > draft.created_at)
            found += session.scalar(select(func.count()).select_from(statement.subquery()))
        return found

    events, conflicts = arrived(False), arrived(True)
    if not events and not conflicts:
        return ("the usage it counted changed, though no event arrived since: the rollups differ from what it "
                "counted (the reconciliation compares them with the events)")
    said = [f"{events} event{'s' if events != 1 else ''}"] if events else []
    said += [f"{conflicts} conflicting repeat{'s' if conflicts != 1 else ''}"] if conflicts else []
    return f"{' and '.join(said)} arrived since"


def draft_is_current(session: Session, draft: Invoice, computed: ComputedInvoice,
                     policy: Policy) -> Refusal | None:
    """What is approved is what was reviewed: any change since the close (why_stale) needs a new close."""
    stale = why_stale(session, draft, computed)
    if stale is not None:
        return Refusal("draft-outdated", stale.sentence(), params=_period_of(draft), action="close")
    return None


def profile_complete(session: Session, draft: Invoice, computed: ComputedInvoice,
                     policy: Policy) -> Refusal | None:
    """The buyer can be named and taxed: a profile with what its treatment needs (name and address; the tax id
    for reverse_charge; the reason for exempt), and a treatment the environment issues. A profile that exists
    is checked everywhere; having none is refused only where the policy requires one (production)."""
    profile = profile_of(session, draft.customer)
    if profile is None and not policy.profile_required:
        return None
    missing = missing_for(profile)
    if missing:
        return Refusal("profile-incomplete", f"the billing profile of '{draft.customer}' lacks {', '.join(missing)}",
                       params={"customer": draft.customer})
    if policy.treatments and profile.tax_treatment not in policy.treatments:
        return Refusal("treatment-not-issued", f"the billing profile of '{draft.customer}' says "
                                               f"{profile.tax_treatment}, which this environment does not issue "
                                               f"({' or '.join(policy.treatments)} only)",
                       params={"customer": draft.customer})
    return None


def reconciliation_passed(session: Session, draft: Invoice, computed: ComputedInvoice,
                          policy: Policy) -> Refusal | None:
    """The reconciliation of the period (review/reconcile.py), run now, finds no discrepancy above the
    environment's threshold, or finance recorded an explanation of exactly the discrepancies it finds."""
    report = reconcile(session, draft.customer, draft.period, policy.threshold, computed=computed,
                       invoice=draft)
    if report.passed or explanation_of(session, draft, report) is not None:
        return None
    return Refusal("reconciliation-failed", f"its {headline(report, policy.locale)}", params=_period_of(draft),
                   action="reconcile")


APPROVAL_GATES: tuple[Gate, ...] = (draft_is_current, profile_complete, reconciliation_passed)


def render_issued_pdf(invoice: InvoiceDocument, number: str, issued_on: dt.date, locale: str) -> bytes:
    """The issued invoice's PDF (invoicing/pdf.py)."""
    from invoicing.pdf import render_pdf

    return render_pdf(invoice, number=number, status="issued", issued_on=issued_on, locale=locale)


def close(session: Session, customer: str, period: Period, *, now: dt.datetime | None = None,
          seller: Mapping | None = None) -> tuple[Invoice, str]:
    """Creates or recomputes the period's draft; returns it and what happened: created, refreshed, unchanged.
    Every close records what the dashboard shows for the period (store/reconcile.py compares it with the draft).

    An approved invoice is recomputed too and goes back to draft if anything changed.
    Refused: no such contract, a period outside it, an invoice already issued."""
    now = now or dt.datetime.now(UTC)
    _lock_contract(session, customer)
    row = find(session, Selector(customer, period))
    if row is not None and status_of(session, row) == "issued":
        raise Refused(Refusal("already-issued", f"the invoice of '{customer}' for {period} is issued as {_name(row)}",
                              params={"number": _name(row)}, action="void"))
    computed = _legal(session, _compute(session, customer, period), seller, None, now)
    fields = computed_fields(computed)
    count_on_commit(session, INVOICES.labels("closed").inc)
    if row is not None and row.status in ("draft", "approved"):
        if all(getattr(row, name) == value for name, value in fields.items()):
            outcome = "unchanged"
        else:
            for name, value in fields.items():
                setattr(row, name, value)
            row.status, row.approved_at, row.approved_by, row.created_at = "draft", None, None, now
            outcome = "refreshed"
        session.flush()
        take_snapshot(session, customer, period, row.id, now=now)
        return row, outcome
    draft = Invoice(customer=customer, period=period, status="draft", created_at=now,
                    replaces_id=row.id if row is not None else None, **fields)
    session.add(draft)
    session.flush()
    take_snapshot(session, customer, period, draft.id, now=now)
    return draft, "created"


@dataclass(frozen=True)
class Closed:
    """A period's draft closed and reconciled: what `billing close` prints and the portal shows."""

    invoice: Invoice
    outcome: str                                   # created, refreshed, unchanged
    report: Report
    explanation: ReconciliationExplanation | None  # recorded earlier for exactly these discrepancies

    @property
    def passed(self) -> bool:
        """Approval may follow: no discrepancy above the threshold, or each one explained."""
        return self.report.passed or self.explanation is not None

    @property
    def verdict(self) -> str:
        """The reconciliation's verdict as the audit log records it (`invoice.close`): passed, explained or failed."""
        return "passed" if self.report.passed else "explained" if self.explanation is not None else "failed"


def close_and_reconcile(session: Session, customer: str, period: Period, who: Actor, *, threshold: Threshold,
                        seller: Mapping | None = None, now: dt.datetime | None = None) -> Closed:
    """The one "close a period": the draft created or recomputed (`close`), then the period's reconciliation
    run on it and stored, audited as `reconciliation.run` (review/reconcile.py), in the caller's transaction.
    A failed reconciliation keeps the draft; approval refuses it until it is resolved or explained."""
    row, outcome = close(session, customer, period, now=now, seller=seller)
    report = reconcile(session, customer, period, threshold, invoice=row, seller=seller, now=now)
    store_report(session, report, who)
    explained = explanation_of(session, row, report) if not report.passed else None
    return Closed(row, outcome, report, explained)


def approve(session: Session, which: Selector, who: Actor, *, threshold: Threshold, profile_required: bool = False,
            treatments: tuple[str, ...] = (), seller: Mapping | None = None,
            now: dt.datetime | None = None, locale: str = "en_GB") -> Invoice:
    now = now or dt.datetime.now(UTC)
    policy = Policy(threshold, profile_required, treatments, locale)
    row = _locked(session, which)
    status = status_of(session, row)
    if status == "approved":
        raise Refused(Refusal("already-approved", f"{which} is already approved (by {row.approved_by} at "
                                                  f"{row.approved_at:%Y-%m-%d %H:%M} UTC)", params={"status": status}))
    if status != "draft":
        raise Refused(Refusal("not-a-draft", f"{which} is {status}: only a draft can be approved",
                              params={"status": status}))
    computed = _legal(session, _compute(session, row.customer, row.period), seller, None, now)
    for gate in APPROVAL_GATES:
        refusal = gate(session, row, computed, policy)
        if refusal is not None:
            raise Refused(refusal.prefixed(f"{which} cannot be approved"))
    row.status, row.approved_at, row.approved_by = "approved", now, who.name
    session.flush()
    count_on_commit(session, INVOICES.labels("approved").inc)
    record(session, who, "invoice.approve", invoice_resource(row.customer, row.period, row.id),
           details={"total": row.document["totals"]["total"], "usage_hash": row.usage_hash}, at=now)
    return row


@dataclass(frozen=True)
class Issued:
    invoice: Invoice
    pdf: bytes


def issue(session: Session, which: Selector, who: Actor, *, threshold: Threshold, prefix: str,
          locale: str = "en_GB", seller: Mapping | None = None, now: dt.datetime | None = None,
          render: Callable[[InvoiceDocument, str, dt.date, str], bytes] = render_issued_pdf) -> Issued:
    """Numbers, freezes and stores the approved invoice with its PDF. Refused: not approved, or what would
    be issued differs from what was approved, or the PDF cannot be made."""
    now = now or dt.datetime.now(UTC)
    row = _locked(session, which)
    status = status_of(session, row)
    if status != "approved":
        raise Refused(Refusal("not-approved", f"{which} is {status}: only an approved invoice can be issued",
                              params={"status": status, **_period_of(row)},
                              action="approve" if status == "draft" else None))
    charges = _compute(session, row.customer, row.period)
    computed = _legal(session, charges, seller, None, now)
    if row.usage_hash != computed.usage_hash or row.document != computed.document:
        raise Refused(Refusal("changed-since-approval", f"{which} changed since it was approved (usage or contract), "
                                                        "so it must be reviewed and approved again",
                              params=_period_of(row), action="close"))
    refusal = reconciliation_passed(session, row, computed, Policy(threshold, locale=locale))
    if refusal is not None:
        raise Refused(refusal.prefixed(f"{which} cannot be issued"))
    if seller is not None:   # the dates, and the tax at the tax point's rate, are known now
        computed = _legal(session, charges, seller, _local_date(now, seller), now)
        if needs_fx_rate(computed.document.get("tax")):
            tax_point, currency = computed.document["tax_point"], computed.document["currency"]
            raise Refused(Refusal("fx-rate-missing", f"{which} states its UK VAT in GBP, and no GBP rate for "
                                                     f"{currency} on its tax point {tax_point} is recorded",
                                  params={"currency": currency, "date": tax_point}))
    number = next_number(session, who.environment, prefix, now.year)
    try:
        pdf = render(replace(computed.invoice, legal=legal_fields(computed.document)), number, now.date(), locale)
    except Exception as exc:   # whatever the renderer's failure, nothing is issued and the number is not used
        raise Refused(Refusal("pdf-failed", f"{which}: the PDF cannot be made, so nothing was issued: {exc}")) \
            from exc
    row.number, row.issued_by = number, who.name
    freeze(session, row, computed, now)
    consume(session, row)
    sha256 = hashlib.sha256(pdf).hexdigest()
    session.add(InvoicePdf(invoice_id=row.id, pdf=pdf, sha256=sha256))
    session.flush()
    count_on_commit(session, INVOICES.labels("issued").inc)
    record(session, who, "invoice.issue", invoice_resource(row.customer, row.period, row.id),
           details={"number": number, "total": row.document["totals"]["total"], "pdf_sha256": sha256,
                    "document_sha256": document_sha256(row.document), "replaces": _replaced_number(session, row)},
           at=now)
    return Issued(row, pdf)


def void(session: Session, which: Selector, who: Actor, reason: str, *, charges_vat: bool = False,
         now: dt.datetime | None = None) -> Invoice:
    """Records the void of an issued invoice; the invoice row is not touched. Where the seller `charges_vat`
    (uk-prod), an issued VAT invoice is never voided: a credit note corrects it (interfaces §4, Corrections)."""
    now = now or dt.datetime.now(UTC)
    if not reason.strip():
        raise Refused(Refusal("reason-missing", "a void needs a reason", field="reason"))
    row = _locked(session, which)
    status = status_of(session, row)
    if status != "issued":
        open_draft = status in ("draft", "approved")
        raise Refused(Refusal("not-issued", f"{which} is {status}: only an issued invoice can be voided"
                              + (" (a draft is simply recomputed)" if open_draft else ""),
                              params={"status": status, **_period_of(row)}, action="close" if open_draft else None))
    if charges_vat:
        raise Refused(Refusal("vat-invoice-not-voided", f"{which} is a VAT invoice: it is never voided, but "
                                                        "corrected by a credit note (and a new invoice when needed)",
                              params={"number": row.number}, action="credit"))
    from lifecycle.credit_notes import notes_of

    credited = notes_of(session, [row.id]).get(row.id)
    if credited:
        raise Refused(Refusal("credited", f"{which} has credit notes ({', '.join(note.number for note in credited)}): "
                                          "voiding it would credit the customer twice",
                              params={"number": row.number}, action="credit"))
    session.add(InvoiceVoid(invoice_id=row.id, voided_at=now, voided_by=who.name, reason=reason.strip()))
    session.flush()
    count_on_commit(session, INVOICES.labels("voided").inc)
    record(session, who, "invoice.void", invoice_resource(row.customer, row.period, row.id),
           details={"number": row.number, "reason": reason.strip()}, at=now)
    return row


def stored_pdf(session: Session, row: Invoice) -> InvoicePdf | None:
    return session.get(InvoicePdf, row.id)


def customers_billed_in(session: Session, period: Period) -> list[str]:
    """Every contract whose term covers `period`, by id."""
    from engine.evaluate import OutsideContract
    from ledger.contracts import load_contract

    covered = []
    for contract_id in session.scalars(select(Contract.id).order_by(Contract.id)):
        timeline = load_contract(session, contract_id).timeline
        try:
            timeline.require_billed(period)
        except OutsideContract:
            continue
        covered.append(contract_id)
    return covered


def next_number(session: Session, environment: str, prefix: str, year: int) -> str:
    """The next number of the environment's year, from its counter row, locked until the transaction ends."""
    table = InvoiceCounter.__table__
    session.execute(dialect_insert(session.connection(), table)
                    .values(environment=environment, year=year, last=0).on_conflict_do_nothing())
    counter = session.scalars(select(InvoiceCounter).where(InvoiceCounter.environment == environment,
                                                           InvoiceCounter.year == year)
                              .with_for_update().execution_options(populate_existing=True)).one()
    counter.last += 1
    session.flush()
    return f"{prefix}-{year}-{counter.last:0{NUMBER_DIGITS}d}"


def _locked(session: Session, which: Selector) -> Invoice:
    """The invoice, read again once its contract is locked (a concurrent step may have moved it on)."""
    row = existing(session, which)
    _lock_contract(session, row.customer)
    session.refresh(row)
    return row


def existing(session: Session, which: Selector) -> Invoice:
    """The invoice `which` names; Refused when there is none (no-invoice), or when an issued one is not what
    was issued (tampered)."""
    row = find(session, which)
    if row is None:
        if which.number is None:
            raise Refused(Refusal("no-invoice", f"there is no invoice of '{which.customer}' for {which.period}",
                                  params={"customer": which.customer, "period": which.period}, action="close"))
        raise Refused(Refusal("no-invoice", f"there is no invoice numbered {which.number}",
                              params={"number": which.number}))
    mismatch = frozen_mismatch(session, row)
    if mismatch:
        raise Refused(Refusal("tampered", f"{mismatch}: it is withheld, because the database was changed "
                                          "outside the application", params={"number": row.number}))
    return row


def _lock_contract(session: Session, customer: str) -> None:
    """Locks the contract row, as ingest and issuing do, so no event slips into a period being decided."""
    if session.get(Contract, customer, with_for_update=True, populate_existing=True) is None:
        raise UnknownContract(customer)


def _compute(session: Session, customer: str, period: Period) -> ComputedInvoice:
    """UnknownContract and StoredVersionInvalid are refusals already; a period outside the contract becomes one."""
    from engine.evaluate import OutsideContract

    try:
        return invoice_from_db(session, customer, period)
    except OutsideContract as exc:
        raise Refused(Refusal("outside-contract", str(exc), field="period", params={"period": period})) from None


def _legal(session: Session, computed: ComputedInvoice, seller: Mapping | None, issue_date: dt.date | None,
           now: dt.datetime) -> ComputedInvoice:
    """The computation with the legal fields of interfaces §4 (invoicing/legal.py) when the environment bills as
    a `seller`; a draft (no issue date) is taxed at the rate in force today, in the seller's time zone."""
    if seller is None:
        return computed
    as_of = _local_date(now, seller)
    legal = legal_terms(session, computed.document, seller, issue_date)
    return replace(computed, document=with_legal(computed.document, legal, issue_date=issue_date, as_of=as_of))


def _local_date(now: dt.datetime, seller: Mapping) -> dt.date:
    return now.astimezone(ZoneInfo(seller["timezone"])).date()


def _period_of(row: Invoice) -> dict[str, str]:
    """What the actions `close`, `approve` and `reconcile` need: the invoice's customer and period."""
    return {"customer": row.customer, "period": str(row.period)}


def _name(row: Invoice) -> str:
    return row.number or f"invoice #{row.id}"


def _replaced_number(session: Session, row: Invoice) -> str | None:
    if row.replaces_id is None:
        return None
    replaced = session.get(Invoice, row.replaces_id)
    return _name(replaced)
