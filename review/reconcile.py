"""Reconciliation: the events, the rollups, the dashboard and the invoice of a period must agree.

    report = reconcile(session, "acme-health", Period(2026, 5), Threshold.of(environment))
    report.passed                # False when a discrepancy is above the threshold
    report.difference            # Decimal("0.00") for a clean period: every money difference, summed
    print(render_text(report))   # what `billing reconcile` prints
    row = store_report(session, report, who)          # kept (reconciliations), audited
    explain(session, row, who, "rollup repaired by hand, ticket FIN-12")   # lifts the refusal to approve

The checks, in order (CHECKS), each a function that returns findings:

- `recount`: the rollups against a recount of the raw events, per site, category and period (on-time
  events against `rollups`, late events against `late_rollups`), and what the invoice would charge
  each site if it were computed from the recount instead of the rollups;
- `dashboard`: the last dashboard snapshot (taken when the period closed) against the invoice, per site;
- `current`: the invoice against the engine's computation now (usage that arrived after the close);
- `invariants`: the invoice's own sums (lines → site totals → total, kinds → their totals), and what
  each line's kind declares of it (engine/lines.py: caps within their limits, no negative true-up);
  late-usage difference lines are exempt from the latter: they may be;
- `unbilled`: events the invoice does not bill (unknown site or category, site inactive, outside the
  contract, conflicts) and the period's late events, with counts and quantities.

Each finding says what was compared, the expected and found figures and their difference, its
status (ok, within threshold, discrepancy, note) and `events`: the query that lists the raw events
behind it. Money differences are discrepancies above the threshold (both its amount and its
percentage of the larger figure); a quantity or event count that differs between the events and the
rollups, or a broken invariant, is always a discrepancy: it is not rounding, it is data changed
behind the engine. docs/reconciliation.md says why.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import Numeric, Select, String, case, cast, func, select, type_coerce
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from audit.log import Actor, record
from engine.evaluate import bill_invoice
from engine.lines import line_kind
from engine.money import EXACT, Money, display
from engine.periods import Period
from invoicing.journal import Accounts, Posting, agreement, invoice_entries
from invoicing.legal import with_legal
from invoicing.tax import round_down, tax_amount
from ledger.billing_from_db import ComputedInvoice, invoice_from_db
from ledger.grants import grant_name, remaining
from ledger.invoices import frozen_mismatch
from ledger.models import ContractVersion, CreditGrant, GrantDraw, Invoice
from ledger.profiles import legal_terms
from metering.models import ConflictingEvent, LateRollup, Rollup, UsageEvent
from metering.rollups import as_usage
from review.models import (
    DashboardSnapshot,
    DashboardSnapshotSite,
    Reconciliation,
    ReconciliationExplanation,
)
from storage.types import decimal_text
from telemetry.metrics import RECONCILIATIONS, count_on_commit

UTC = dt.timezone.utc
ZERO = Decimal(0)
OK, WITHIN, DISCREPANCY, NOTE = "ok", "within threshold", "discrepancy", "note"
AMOUNT, QUANTITY = "amount", "quantity"
DIGEST = "digest"   # a value compared whole (a contract version, a usage digest, a field): 0 the same, 1 not
OPEN = ("draft", "approved")
# What invoicing/legal.py adds to the charges' document: compared only when the computation carries them too.
LEGAL_KEYS = ("seller", "buyer", "issue_date", "tax_point", "due_date", "payment_terms", "credits", "tax")
LEGAL_TOTALS = ("credits", "net", "tax", "due")


@dataclass(frozen=True)
class Threshold:
    """A money difference is a discrepancy when it is above both: the amount, and the percentage of the
    larger of the two figures compared."""

    amount: Decimal
    percent: Decimal

    @classmethod
    def of(cls, environment) -> "Threshold":
        """The environment's threshold (settings/environment.py), which its caller loaded and hands over."""
        return cls(Decimal(environment.reconcile_threshold_amount), Decimal(environment.reconcile_threshold_percent))

    def exceeded_by(self, expected: Decimal, found: Decimal) -> bool:
        difference = abs(found - expected)
        return difference > self.amount and difference > self.percent / 100 * max(abs(expected), abs(found))

    def __str__(self) -> str:
        return f"{self.amount:f} and {self.percent:f}%"


@dataclass(frozen=True)
class EventQuery:
    """Which raw events lie behind a finding: a customer's, over a range of local days, narrowed by site,
    category, and whether they were late; `conflicts`: the conflicting repeats instead of stored events."""

    customer: str
    first_day: dt.date
    last_day: dt.date
    site: str | None = None
    category: str | None = None
    late: bool | None = None
    conflicts: bool = False

    def statement(self) -> Select:
        table = ConflictingEvent if self.conflicts else UsageEvent
        query = select(table).where(table.customer == self.customer, table.day >= self.first_day,
                                    table.day <= self.last_day)
        if self.site is not None:
            query = query.where(table.site == self.site)
        if self.category is not None:
            query = query.where(table.category == self.category)
        if self.late is not None:
            query = query.where(table.late.is_(self.late))
        return query.order_by(table.day, table.time, table.id)

    def as_json(self) -> dict:
        return {"customer": self.customer, "from": self.first_day.isoformat(), "to": self.last_day.isoformat(),
                "site": self.site, "category": self.category, "late": self.late, "conflicts": self.conflicts}

    @classmethod
    def from_json(cls, data: dict) -> "EventQuery":
        return cls(data["customer"], dt.date.fromisoformat(data["from"]), dt.date.fromisoformat(data["to"]),
                   data.get("site"), data.get("category"), data.get("late"), bool(data.get("conflicts")))


@dataclass(frozen=True)
class Finding:
    check: str             # one of CHECKS' names
    kind: str              # what was compared, in words
    site: str              # "" for the whole invoice
    category: str          # "" for every category
    unit: str              # AMOUNT (the contract's currency) or QUANTITY
    expected: Decimal
    found: Decimal
    status: str            # OK, WITHIN, DISCREPANCY or NOTE
    events: EventQuery
    detail: str = ""
    count: int | None = None     # events counted, where that is what the finding is about

    @property
    def difference(self) -> Decimal:
        return self.found - self.expected

    def as_json(self) -> dict:
        return {"check": self.check, "kind": self.kind, "site": self.site, "category": self.category,
                "unit": self.unit, "expected": decimal_text(self.expected), "found": decimal_text(self.found),
                "difference": decimal_text(self.difference), "status": self.status, "detail": self.detail,
                "count": self.count, "events": self.events.as_json()}

    @classmethod
    def from_json(cls, data: dict) -> "Finding":
        return cls(data["check"], data["kind"], data["site"], data["category"], data["unit"],
                   Decimal(data["expected"]), Decimal(data["found"]), data["status"],
                   EventQuery.from_json(data["events"]), data.get("detail", ""), data.get("count"))


@dataclass(frozen=True)
class Report:
    customer: str
    period: Period
    currency: str
    places: int                      # the currency's minor unit
    threshold: Threshold
    invoice_id: int | None
    invoice_status: str | None       # draft, approved, issued, void, or None: no invoice yet
    invoice_total: str | None
    ran_at: dt.datetime
    findings: tuple[Finding, ...]
    checked: dict = field(default_factory=dict)     # check → how many comparisons it made

    @property
    def discrepancies(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.status == DISCREPANCY)

    @property
    def passed(self) -> bool:
        return not self.discrepancies

    @property
    def difference(self) -> Decimal:
        """Every money difference found, in absolute value, summed, to the currency's minor unit."""
        total = sum((abs(f.difference) for f in self.findings if f.unit == AMOUNT and f.status != NOTE), ZERO)
        return total.quantize(Decimal(1).scaleb(-self.places))

    @property
    def fingerprint(self) -> str:
        """What an explanation covers: the discrepancies as found. Another discrepancy needs its own."""
        rows = sorted(json.dumps([f.check, f.kind, f.site, f.category, decimal_text(f.expected),
                                  decimal_text(f.found)]) for f in self.discrepancies)
        return hashlib.sha256("\n".join(rows).encode()).hexdigest()

    def as_json(self) -> dict:
        return {"customer": self.customer, "period": str(self.period), "currency": self.currency,
                "places": self.places, "threshold": {"amount": decimal_text(self.threshold.amount),
                                                     "percent": decimal_text(self.threshold.percent)},
                "invoice": {"id": self.invoice_id, "status": self.invoice_status, "total": self.invoice_total},
                "ran_at": self.ran_at.isoformat(), "passed": self.passed,
                "difference": decimal_text(self.difference), "checked": self.checked,
                "findings": [f.as_json() for f in self.findings]}

    @classmethod
    def from_json(cls, data: dict) -> "Report":
        invoice = data["invoice"]
        return cls(data["customer"], Period.parse(data["period"]), data["currency"], data["places"],
                   Threshold(Decimal(data["threshold"]["amount"]), Decimal(data["threshold"]["percent"])),
                   invoice["id"], invoice["status"], invoice["total"], dt.datetime.fromisoformat(data["ran_at"]),
                   tuple(Finding.from_json(f) for f in data["findings"]), data.get("checked", {}))


@dataclass
class _Context:
    """What every check reads: the computation now, the invoice compared, and how to judge a difference."""

    session: Session
    customer: str
    period: Period
    computed: ComputedInvoice
    invoice: Invoice | None
    threshold: Threshold

    @property
    def connection(self) -> Connection:
        return self.session.connection()

    def whole_period(self, site: str | None = None, category: str | None = None, late: bool | None = None,
                     conflicts: bool = False) -> EventQuery:
        return EventQuery(self.customer, self.period.first_day, self.period.last_day, site, category, late, conflicts)

    def money_status(self, expected: Decimal, found: Decimal) -> str:
        if expected == found:
            return OK
        return DISCREPANCY if self.threshold.exceeded_by(expected, found) else WITHIN


def reconcile(session: Session, customer: str, period: Period, threshold: Threshold, *,
              computed: ComputedInvoice | None = None, invoice: Invoice | None = None,
              seller: Mapping | None = None, now: dt.datetime | None = None) -> Report:
    """Runs every check; writes nothing. Raises what invoice_from_db raises (no contract, period outside it).
    `invoice`: the one to compare (default: the period's open one, else the one in force, else the last void).
    `seller`: the environment's entity; with it an open invoice's credits, tax and buyer are compared with a
    fresh computation too, as approval compares them (a `computed` handed in is compared as it is)."""
    from ledger.invoices import Selector, find, status_of

    invoice = invoice or find(session, Selector(customer, period))
    if computed is None:
        computed = invoice_from_db(session, customer, period)
        if seller is not None and invoice is not None and invoice.status in OPEN:
            computed = with_legal_fields(session, computed, seller, now or dt.datetime.now(UTC))
    context = _Context(session, customer, period, computed, invoice, threshold)
    findings, checked = [], {}
    for check in CHECKS:
        found = check(context)
        checked[check.__name__] = sum(1 for f in found if f.status != NOTE)
        findings += found
    money = computed.invoice.money
    return Report(customer, period, money.currency, money.places, threshold,
                  invoice.id if invoice else None, status_of(session, invoice) if invoice else None,
                  invoice.document["totals"]["total"] if invoice else None,
                  now or dt.datetime.now(UTC), tuple(findings), checked)


# --- (a) the rollups against a recount of the events ------------------------------------------------------

Sums = dict[tuple[bool, str, str, dt.date], list]     # (late, site, category, day) → [quantity, events]


def recount(context: _Context) -> list[Finding]:
    events, rollups = _events_recounted(context), _rollups_summed(context)
    findings, groups = [], {}
    for key in events.keys() | rollups.keys():
        groups.setdefault(key[:3], []).append(key[3])
    for (late, site, category), days in sorted(groups.items()):
        days.sort()
        counted = [events.get((late, site, category, day), [ZERO, 0]) for day in days]
        rolled = [rollups.get((late, site, category, day), [ZERO, 0]) for day in days]
        differing = [day for day, a, b in zip(days, counted, rolled) if a[0] != b[0] or a[1] != b[1]]
        quantity = (sum((a[0] for a in counted), ZERO), sum((b[0] for b in rolled), ZERO))
        count = (sum(a[1] for a in counted), sum(b[1] for b in rolled))
        table = "late rollups" if late else "rollups"
        detail = f"{count[0]} events counted, {count[1]} in the {table}"
        if differing:
            detail += (f"; {len(differing)} day{'s differ' if len(differing) != 1 else ' differs'}"
                       f" ({differing[0]:%Y-%m-%d}" + (f" to {differing[-1]:%Y-%m-%d})" if len(differing) > 1 else ")"))
        query = EventQuery(context.customer, differing[0] if differing else context.period.first_day,
                           differing[-1] if differing else context.period.last_day, site, category, late)
        findings.append(Finding("recount", f"{table} against the events", site, category, QUANTITY,
                                quantity[0], quantity[1], DISCREPANCY if differing else OK, query, detail,
                                count[0]))
    if any(f.status == DISCREPANCY and f.events.late is False for f in findings):
        findings += _charges_from_recount(context, events)
    return findings


def _events_recounted(context: _Context) -> Sums:
    table = UsageEvent.__table__
    where = (table.c.customer == context.customer, table.c.day >= context.period.first_day,
             table.c.day <= context.period.last_day)
    day = type_coerce(table.c.day, String)
    sums: Sums = {}
    if context.connection.dialect.name == "postgresql":   # NUMERIC sums exactly in the database
        query = select(table.c.late, table.c.site, table.c.category, table.c.day, func.sum(table.c.quantity),
                       func.count()).where(*where).group_by(table.c.late, table.c.site, table.c.category, table.c.day)
        for late, site, category, day_value, quantity, count in context.connection.execute(query):
            sums[(bool(late), site, category, day_value)] = [Decimal(quantity), count]
        return sums
    add = EXACT.add     # SQLite keeps decimals as text: added here, exactly
    query = select(table.c.late, table.c.site, table.c.category, day, type_coerce(table.c.quantity, String)).where(*where)
    for late, site, category, day_text, quantity in context.connection.execute(query):
        cell = sums.get(key := (bool(late), site, category, day_text))
        if cell is None:
            sums[key] = [Decimal(quantity), 1]
        else:
            cell[0] = add(cell[0], Decimal(quantity))
            cell[1] += 1
    return {(late, site, category, dt.date.fromisoformat(d)): cell for (late, site, category, d), cell in sums.items()}


def _rollups_summed(context: _Context) -> Sums:
    sums: Sums = {}
    for late, model in ((False, Rollup), (True, LateRollup)):
        table = model.__table__
        query = select(table.c.site, table.c.category, table.c.day, table.c.quantity, table.c.events).where(
            table.c.customer == context.customer, table.c.day >= context.period.first_day,
            table.c.day <= context.period.last_day)
        for site, category, day, quantity, events in context.connection.execute(query):
            cell = sums.setdefault((late, site, category, day), [ZERO, 0])   # late rows: one per invoice billing them
            cell[0] += quantity
            cell[1] += events
    return sums


def _charges_from_recount(context: _Context, events: Sums) -> list[Finding]:
    """What each site would be charged if the period's on-time usage were the recount, not the rollups."""
    computed, period = context.computed, context.period
    others = [c for c in computed.cells if Period.of(c[0]) != period]
    reopened = [c for c in computed.reopened.cells if Period.of(c[0]) == period]
    counted = [(day, site, category, quantity, count)
               for (late, site, category, day), (quantity, count) in events.items() if not late]
    result = bill_invoice(replace(computed.inputs, usage=as_usage(others, reopened, counted)))
    expected = {site.site: site.total for site in result.sites}
    found = {site.site: site.total for site in computed.result.sites}
    return [Finding("recount", "charges from the rollups against charges from the events", site, "", AMOUNT,
                    expected.get(site, ZERO), found.get(site, ZERO),
                    context.money_status(expected.get(site, ZERO), found.get(site, ZERO)),
                    context.whole_period(site), "the invoice computed from a recount of the events")
            for site in _in_order(expected, found)]


# --- (b) the dashboard at close, and the engine now, against the invoice ------------------------------------

def dashboard(context: _Context) -> list[Finding]:
    if context.invoice is None:
        return [Finding("dashboard", "no invoice for the period yet", "", "", AMOUNT, ZERO, ZERO, NOTE,
                        context.whole_period(), "run `billing close` to make its draft")]
    snapshot = latest_snapshot(context.session, context.customer, context.period)
    billed = _site_totals(context.invoice.document)
    if snapshot is None:
        open_invoice = context.invoice.status in ("draft", "approved")
        return [Finding("dashboard", "no dashboard snapshot of the period", "", "", AMOUNT, ZERO, ZERO,
                        DISCREPANCY if open_invoice else NOTE, context.whole_period(),
                        "the draft was not made by `billing close`; run it again" if open_invoice else
                        "the invoice was issued before snapshots were taken")]
    shown = {site.site: site.charges for site in snapshot.sites}
    taken = f"dashboard at {snapshot.taken_at:%Y-%m-%d %H:%M} UTC against the invoice"
    return [Finding("dashboard", "dashboard snapshot against the invoice", site, "", AMOUNT,
                    shown.get(site, ZERO), billed.get(site, ZERO),
                    context.money_status(shown.get(site, ZERO), billed.get(site, ZERO)),
                    context.whole_period(site), taken)
            for site in _in_order(shown, billed)]


def current(context: _Context) -> list[Finding]:
    if context.invoice is None:
        return []
    billed = _site_totals(context.invoice.document)
    now = _site_totals(context.computed.document)
    return [Finding("current", "invoice against the engine's computation now", site, "", AMOUNT,
                    now.get(site, ZERO), billed.get(site, ZERO),
                    context.money_status(now.get(site, ZERO), billed.get(site, ZERO)),
                    context.whole_period(site), "usage or contract changed since the invoice was made"
                    if now.get(site, ZERO) != billed.get(site, ZERO) else "")
            for site in _in_order(now, billed)]


def with_legal_fields(session: Session, computed: ComputedInvoice, seller: Mapping,
                      now: dt.datetime) -> ComputedInvoice:
    """The computation made legal as `close` makes a draft: the buyer's profile, the grants it draws, the tax at
    the rate in force today in the seller's time zone (invoicing/legal.py)."""
    as_of = now.astimezone(ZoneInfo(seller["timezone"])).date()
    legal = legal_terms(session, computed.document, seller, None)
    return replace(computed, document=with_legal(computed.document, legal, issue_date=None, as_of=as_of))


# --- (b) the open invoice against a fresh computation, line by line ----------------------------------------

def fresh(context: _Context) -> list[Finding]:
    """What approval compares (lifecycle.transitions.draft_is_current): the contract version, the usage digest
    and every line, total and field of the draft against the computation now. Any difference is a discrepancy,
    whatever the threshold: approval would refuse the draft. Issued invoices are not recomputed here."""
    invoice = context.invoice
    if invoice is None or invoice.status not in OPEN:
        return []
    computed, findings = context.computed, []
    stored, now = invoice.document, computed.document
    if _has_legal(stored) and not _has_legal(now):   # a run without the seller: the charges only
        stored = _charges_only(stored)

    def compare(kind: str, site: str, category: str, unit: str, expected: Decimal, found: Decimal,
                detail: str = "") -> None:
        findings.append(Finding("fresh", kind, site, category, unit, expected, found,
                                OK if expected == found else DISCREPANCY, context.whole_period(site or None,
                                                                                             category or None),
                                detail))

    version_now = computed.result.plan.terms.version
    same = invoice.contract_sha == version_now
    then = _version(context.session, invoice.customer, invoice.contract_sha)
    compare("contract version against the version in force now", "", "", DIGEST, ZERO, ZERO if same else Decimal(1),
            "" if same else f"the invoice was computed with {then}; the period's version now is "
                            f"{_version(context.session, invoice.customer, version_now)}")
    same = invoice.usage_hash == computed.usage_hash
    compare("usage digest against the usage now", "", "", DIGEST, ZERO, ZERO if same else Decimal(1),
            "" if same else f"the rollups or late rows behind the invoice changed since it was made "
                            f"(digest {invoice.usage_hash[:12]} then, {computed.usage_hash[:12]} now)")
    sites_now = {site["site"]: site for site in now["sites"]}
    sites_then = {site["site"]: site for site in stored["sites"]}
    for site in _in_order(sites_now, sites_then):
        _compare_lines(compare, site, sites_now.get(site, {}).get("lines", []),
                       sites_then.get(site, {}).get("lines", []))
        rest_now = {k: v for k, v in sites_now.get(site, {}).items() if k != "lines"}
        rest_then = {k: v for k, v in sites_then.get(site, {}).items() if k != "lines"}
        if rest_now != rest_then:
            compare("site against the computation now", site, "", DIGEST, ZERO, Decimal(1),
                    "differs in " + ", ".join(sorted(k for k in rest_now.keys() | rest_then.keys()
                                                     if rest_now.get(k) != rest_then.get(k))))
    account_now, account_then = now.get("account") or {}, stored.get("account") or {}
    if account_now or account_then:
        _compare_lines(compare, "", account_now.get("lines", []), account_then.get("lines", []))
    totals_now, totals_then = now["totals"], stored["totals"]
    for key in _in_order(totals_now, totals_then):
        compare(f"totals: {key} against the computation now", "", "", AMOUNT,
                Decimal(totals_now.get(key, "0")), Decimal(totals_then.get(key, "0")))
    for key in sorted((now.keys() | stored.keys()) - {"sites", "account", "totals"}):
        if now.get(key) != stored.get(key):
            compare(f"{key} against the computation now", "", "", DIGEST, ZERO, Decimal(1),
                    f"the invoice's {key} is not what a close would make now")
    if not any(f.status == DISCREPANCY for f in findings) and stored != now:   # never pass what approval refuses
        compare("the invoice against the computation now", "", "", DIGEST, ZERO, Decimal(1),
                "the documents differ")
    return findings


def _compare_lines(compare, site: str, now: list[dict], then: list[dict]) -> None:
    """Each line matched by its kind's match key (engine/lines.py); one finding per line that differs, one for
    the lines that agree."""
    def keyed(lines: list[dict]) -> dict:
        keys: dict = {}
        for line in lines:
            kind = line_kind(line["kind"])
            key = (line["kind"], kind.match_key(kind.from_json(line)), "late_for" in line)
            while key in keys:   # two lines alike: matched in their order
                key = (*key, len(keys))
            keys[key] = line
        return keys

    lines_now, lines_then = keyed(now), keyed(then)
    agree = 0
    for key in _in_order(lines_now, lines_then):
        a, b = lines_now.get(key), lines_then.get(key)
        if a == b:
            agree += 1
            continue
        line = a or b
        kind = line_kind(line["kind"])
        categories = " ".join(line.get("categories") or ([line["category"]] if line.get("category") else []))
        if a is None:
            detail = "only on the invoice: the computation now has no such line"
        elif b is None:
            detail = "not on the invoice: the computation now has it"
        else:
            fields = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k) and k != "source")
            detail = ("; ".join(f"{k} {_shown(b.get(k))} on the invoice, {_shown(a.get(k))} now" for k in fields)
                      or "its contract line moved")
        compare(f"{kind.title} line against the computation now", site, categories, AMOUNT,
                Decimal(a["amount"]) if a else ZERO, Decimal(b["amount"]) if b else ZERO, detail)
    if agree:
        compare("lines against the computation now", site, "", AMOUNT, ZERO, ZERO,
                f"{agree} line{'s agree' if agree != 1 else ' agrees'}")


def _shown(value) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)[:80]
    return "none" if value is None else str(value)


def _version(session: Session, customer: str, sha: str) -> str:
    version = session.scalar(select(ContractVersion).where(ContractVersion.contract_id == customer,
                                                           ContractVersion.sha256 == sha).limit(1))
    if version is None:
        return f"version {sha[:12]} (no longer stored)"
    return f"version {sha[:12]} (in effect from {version.effective}, saved {version.saved_at:%Y-%m-%d %H:%M} UTC " \
           f"by {version.author})"


def _has_legal(document: dict) -> bool:
    return "net" in document.get("totals", {})


def _charges_only(document: dict) -> dict:
    return {**{k: v for k, v in document.items() if k not in LEGAL_KEYS},
            "totals": {k: v for k, v in document["totals"].items() if k not in LEGAL_TOTALS}}


# --- (c) the invoice's own invariants ---------------------------------------------------------------------

def invariants(context: _Context) -> list[Finding]:
    if context.invoice is None:
        return []
    document, findings = context.invoice.document, []
    mismatch = frozen_mismatch(context.session, context.invoice)
    if mismatch:   # the database was changed outside the application: what follows checks a forgery
        findings.append(Finding("invariants", "the stored invoice against the hashes frozen at its issue", "", "",
                                QUANTITY, ZERO, Decimal(1), DISCREPANCY, context.whole_period(), mismatch))

    def holds(kind: str, site: str, expected: Decimal, found: Decimal, detail: str = "", unit: str = AMOUNT) -> None:
        findings.append(Finding("invariants", kind, site, "", unit, expected, found,
                                OK if expected == found else DISCREPANCY,
                                context.whole_period(site or None), detail))

    kinds: dict[str, Decimal] = {}
    for site in document["sites"]:
        lines = site["lines"]
        holds("lines sum to the site total", site["site"], sum((Decimal(l["amount"]) for l in lines), ZERO),
              Decimal(site["total"]), f"{len(lines)} lines")
        for line in lines:
            kind = line_kind(line["kind"])
            kinds[kind.totals_key] = kinds.get(kind.totals_key, ZERO) + Decimal(line["amount"])
            if "late_for" in line:   # a late-usage difference may lower a true-up or a cap reduction
                continue
            for broken in kind.invariants(kind.from_json(line)):
                holds(broken.rule, site["site"], broken.expected, broken.found, broken.detail)
    account = document.get("account")
    if account is not None:   # the account section's lines (spec §4.9): their sum, their kinds' invariants
        holds("account lines sum to the account total", "", sum((Decimal(l["amount"]) for l in account["lines"]), ZERO),
              Decimal(account["total"]), f"{len(account['lines'])} lines")
        for line in account["lines"]:
            kind = line_kind(line["kind"])
            kinds[kind.totals_key] = kinds.get(kind.totals_key, ZERO) + Decimal(line["amount"])
            for broken in kind.invariants(kind.from_json(line)):
                holds(broken.rule, "", broken.expected, broken.found, broken.detail)
    totals = document["totals"]
    holds("site totals sum to the invoice total" if account is None else
          "site totals and account lines sum to the invoice total", "",
          sum((Decimal(s["total"]) for s in document["sites"]), ZERO) + Decimal(account["total"] if account else 0),
          Decimal(totals["total"]), f"{len(document['sites'])} sites")
    for kind, amount in sorted(kinds.items()):
        holds(f"{kind} lines sum to the {kind} total", "", amount, Decimal(totals.get(kind, "0")))
    return findings


# --- (c) net, tax, due, the credits drawn and the journal --------------------------------------------------

def totals(context: _Context) -> list[Finding]:
    """interfaces §4: net = total + credits, due = net + tax, tax = net × rate rounded down (invoicing/tax.py),
    credits within each grant and as the grant ledger records them (ledger/grants.py), and the invoice's journal
    (invoicing/journal.py) balanced and agreeing with it. Any difference is a discrepancy: these are exact."""
    invoice = context.invoice
    if invoice is None or not _has_legal(invoice.document):
        return []
    document, findings = invoice.document, []
    money = Money.of(document["currency"])
    figures = {key: Decimal(document["totals"][key]) for key in ("total", "credits", "net", "tax", "due")}

    def holds(kind: str, expected: Decimal, found: Decimal, detail: str = "", unit: str = AMOUNT) -> None:
        findings.append(Finding("totals", kind, "", "", unit, expected, found,
                                OK if expected == found else DISCREPANCY, context.whole_period(), detail))

    holds("net = total + credits", figures["total"] + figures["credits"], figures["net"])
    holds("due = net + tax", figures["net"] + figures["tax"], figures["due"])
    holds("credits = the grants drawn", sum((Decimal(c["amount"]) for c in document.get("credits", ())), ZERO),
          figures["credits"], f"{len(document.get('credits', ()))} grants")
    section = document.get("tax")
    if section is None:
        holds("no tax section: no tax", ZERO, figures["tax"])
    else:
        rate = Decimal(section["rate"])
        holds("tax = net × rate, rounded down", tax_amount(Decimal(section["net"]), rate, money),
              Decimal(section["amount"]), f"{section['treatment']} at {rate:f} on {section['net']}")
        holds("the tax section's net is the invoice's net", figures["net"], Decimal(section["net"]))
        holds("the tax section's amount is the invoice's tax", Decimal(section["amount"]), figures["tax"])
        if section.get("fx_rate") and section.get("amount_gbp") is not None:
            gbp = Money.of("GBP")
            holds("tax in GBP = tax × the GBP rate, rounded down",
                  round_down(Decimal(section["amount"]) * Decimal(section["fx_rate"]), gbp),
                  Decimal(section["amount_gbp"]), f"at {section['fx_rate']} GBP per {document['currency']}")
    _grants(context, holds)
    lines = invoice_entries(document, Accounts(), Posting(context.period.last_day, invoice.number or "draft",
                                                           "invoice"))
    for what, expected, found in agreement(document, lines):
        holds(f"journal: {what}", expected, found, f"{len(lines)} journal lines")
    return findings


def _grants(context: _Context, holds) -> None:
    """Each credit draws on a grant of this customer, no more than the grant's amount; an issued invoice's draws
    are the grant ledger's rows for it; an open one's no more than the grant has left; no grant overdrawn."""
    session, invoice = context.session, context.invoice
    credits = {c["grant"]: -Decimal(c["amount"]) for c in invoice.document.get("credits", ())}
    issued = invoice.status == "issued"
    recorded: dict[str, Decimal] = {}
    if issued:
        for grant_id, amount in session.execute(select(GrantDraw.grant_id, GrantDraw.amount)
                                                .where(GrantDraw.invoice_id == invoice.id)):
            recorded[grant_name(grant_id)] = recorded.get(grant_name(grant_id), ZERO) + amount
    for name in _in_order(credits, recorded):
        drawn = credits.get(name, ZERO)
        grant_id = int(name.removeprefix("G-")) if name.removeprefix("G-").isdigit() else None
        grant = session.get(CreditGrant, grant_id) if grant_id is not None else None
        if grant is None or grant.customer != invoice.customer:
            holds(f"credit {name} draws on a grant of {invoice.customer}", ZERO, drawn,
                  "no such grant of this customer")
            continue
        holds(f"credit {name}: no more than the grant's amount", min(drawn, grant.amount), drawn,
              f"granted {grant.amount:f}")
        if issued:
            holds(f"credit {name}: as the grant ledger records it", recorded.get(name, ZERO), drawn,
                  "grant_draws of this invoice")
        else:
            left = remaining(session, grant)
            holds(f"credit {name}: no more than the grant has left", min(drawn, left), drawn, f"{left:f} left")
        overdrawn = grant.amount - remaining(session, grant)
        holds(f"grant {name}: drawn in all no more than granted", min(overdrawn, grant.amount), overdrawn,
              "draws of the invoices in force")


# --- (d) what the invoice does not bill --------------------------------------------------------------------

def unbilled(context: _Context) -> list[Finding]:
    document = context.invoice.document if context.invoice else context.computed.document
    findings = []
    for group in document["unbilled"]:
        late_for = group.get("late_for")
        query = context.whole_period(group["site"], group["category"], conflicts=group["reason"] == "conflict")
        if late_for:
            owner = Period.parse(late_for)
            query = EventQuery(context.customer, owner.first_day, owner.last_day, group["site"], group["category"],
                               None if group["reason"] == "conflict" else True, group["reason"] == "conflict")
        quantity = Decimal(group["quantity"])
        findings.append(Finding("unbilled", group["reason"] + (f" (late usage for {late_for})" if late_for else ""),
                                group["site"], group["category"], QUANTITY, quantity, quantity, NOTE, query,
                                f"{group['events']} events", group["events"]))
    late = LateRollup.__table__
    query = select(late.c.site, late.c.category, late.c.billed_on, func.min(late.c.day), func.max(late.c.day),
                   func.count(), func.sum(late.c.events)).where(
        late.c.customer == context.customer, late.c.day >= context.period.first_day,
        late.c.day <= context.period.last_day).group_by(late.c.site, late.c.category, late.c.billed_on)
    quantities = _late_quantities(context)
    for site, category, billed_on, first, last, _, events in context.connection.execute(query):
        billed_on = Period.parse(billed_on) if isinstance(billed_on, str) else billed_on
        quantity = quantities.get((site, category, billed_on), ZERO)
        where = f"billed on the invoice of {billed_on}" if billed_on else "the next open invoice bills it"
        first, last = (d if isinstance(d, dt.date) else dt.date.fromisoformat(d) for d in (first, last))
        findings.append(Finding("unbilled", "late: arrived after the period was issued", site, category, QUANTITY,
                                quantity, quantity, NOTE, EventQuery(context.customer, first, last, site, category, True),
                                f"{events} events; {where}", int(events)))
    return findings


def _late_quantities(context: _Context) -> dict:
    late = LateRollup.__table__
    sums: dict = {}
    for site, category, billed_on, quantity in context.connection.execute(
            select(late.c.site, late.c.category, late.c.billed_on, late.c.quantity).where(
                late.c.customer == context.customer, late.c.day >= context.period.first_day,
                late.c.day <= context.period.last_day)):
        sums[(site, category, billed_on)] = sums.get((site, category, billed_on), ZERO) + quantity
    return sums


CHECKS = (recount, dashboard, current, fresh, invariants, totals, unbilled)
CHECK_TITLES = {
    "recount": "(a) rollups against a recount of the events",
    "dashboard": "(b) the dashboard at close against the invoice",
    "current": "(b) the invoice against the engine now",
    "fresh": "(b) the open invoice against a fresh computation, line by line",
    "invariants": "(c) the invoice's own sums and limits",
    "totals": "(c) net, tax, due, credits drawn and the journal",
    "unbilled": "(d) events the invoice does not bill",
}


def _site_totals(document: dict) -> dict[str, Decimal]:
    return {site["site"]: Decimal(site["total"]) for site in document["sites"]}


def _in_order(*figures: dict) -> list[str]:
    seen: dict[str, None] = {}
    for figure in figures:
        seen.update(dict.fromkeys(figure))
    return list(seen)


# --- snapshots, stored reports, explanations ---------------------------------------------------------------

def take_snapshot(session: Session, customer: str, period: Period, invoice_id: int | None = None, *,
                  now: dt.datetime | None = None) -> DashboardSnapshot:
    """Records what the dashboard shows for the period now (store/dashboard.py), site by site."""
    from review.dashboard import figures

    shown = figures(session, customer, period)
    snapshot = DashboardSnapshot(customer=customer, period=period, taken_at=now or dt.datetime.now(UTC),
                                 currency=shown.computed.invoice.money.currency, total=shown.total,
                                 invoice_id=invoice_id)
    snapshot.sites = [DashboardSnapshotSite(site=site.site, name=site.name, charges=site.charges, position=n)
                      for n, site in enumerate(shown.sites)]
    session.add(snapshot)
    session.flush()
    return snapshot


def latest_snapshot(session: Session, customer: str, period: Period) -> DashboardSnapshot | None:
    return session.scalar(select(DashboardSnapshot).where(DashboardSnapshot.customer == customer,
                                                          DashboardSnapshot.period == period)
                          .order_by(DashboardSnapshot.taken_at.desc(), DashboardSnapshot.id.desc()).limit(1))


def reconciliation_resource(customer: str, period: Period, row_id: int | None = None) -> str:
    return f"reconciliation:{customer}/{period}" + (f"#{row_id}" if row_id is not None else "")


def store_report(session: Session, report: Report, who: Actor) -> Reconciliation:
    """Keeps the report and records the run in the audit log, in the caller's transaction."""
    row = Reconciliation(customer=report.customer, period=report.period, invoice_id=report.invoice_id,
                         ran_at=report.ran_at, ran_by=who.name, passed=report.passed, difference=report.difference,
                         fingerprint=report.fingerprint, report=report.as_json())
    session.add(row)
    session.flush()
    count_on_commit(session, RECONCILIATIONS.labels("passed" if report.passed else "failed").inc)
    record(session, who, "reconciliation.run", reconciliation_resource(report.customer, report.period, row.id),
           details={"passed": report.passed, "difference": decimal_text(report.difference),
                    "discrepancies": len(report.discrepancies), "invoice_id": report.invoice_id},
           at=report.ran_at)
    return row


def latest(session: Session, customer: str, period: Period) -> Reconciliation | None:
    return session.scalar(select(Reconciliation).where(Reconciliation.customer == customer,
                                                       Reconciliation.period == period)
                          .order_by(Reconciliation.ran_at.desc(), Reconciliation.id.desc()).limit(1))


def latest_per_customer(session: Session, period: Period | None = None) -> list[Reconciliation]:
    """The last run of each (customer, period), newest period first; of one period when given."""
    newest = (select(Reconciliation.customer, Reconciliation.period, func.max(Reconciliation.id).label("id"))
              .group_by(Reconciliation.customer, Reconciliation.period))
    if period is not None:
        newest = newest.where(Reconciliation.period == period)
    newest = newest.subquery()
    return list(session.scalars(select(Reconciliation).join(newest, Reconciliation.id == newest.c.id)
                                .order_by(Reconciliation.period.desc(), Reconciliation.customer)))


@dataclass(frozen=True)
class Listed:
    """One row of the list of last runs: read from the database without the report's findings."""

    id: int
    customer: str
    period: Period
    passed: bool
    explained: bool
    difference: Decimal
    currency: str
    invoice_id: int | None
    invoice_status: str | None
    ran_at: dt.datetime
    ran_by: str

    @property
    def outcome(self) -> str:
        return "passed" if self.passed else "explained" if self.explained else "failed"


OUTCOMES = ("failed", "explained", "passed")
LIST_SORTS = ("period", "customer", "outcome", "difference", "ran")


def last_runs(session: Session, *, period: Period | None = None, customer: str | None = None,
              outcome: str | None = None, sort: str = "period", descending: bool = True, page: int = 1,
              per_page: int = 50) -> tuple[list[Listed], int]:
    """The last run of each (customer, period), filtered, sorted and paged by the database; and how many there
    are in all. `customer`: contract ids containing it; `outcome`: one of OUTCOMES; `sort`: one of LIST_SORTS
    (ties fall to the period, newest first, then the customer)."""
    explained = select(ReconciliationExplanation.reconciliation_id).where(
        ReconciliationExplanation.reconciliation_id == Reconciliation.id).exists()
    newest = select(func.max(Reconciliation.id).label("id")).group_by(Reconciliation.customer, Reconciliation.period)
    if period is not None:
        newest = newest.where(Reconciliation.period == period)
    if customer:
        newest = newest.where(Reconciliation.customer.contains(customer, autoescape=True))
    newest = newest.subquery()
    conditions = []
    if outcome == "passed":
        conditions.append(Reconciliation.passed.is_(True))
    elif outcome in ("failed", "explained"):
        conditions += [Reconciliation.passed.is_(False), explained if outcome == "explained" else ~explained]
    rank = case((Reconciliation.passed.is_(True), 2), (explained, 1), else_=0)
    column = {"period": Reconciliation.period, "customer": Reconciliation.customer, "outcome": rank,
              "difference": cast(Reconciliation.difference, Numeric(20, 6)),   # SQLite keeps decimals as text
              "ran": Reconciliation.ran_at}[sort]
    order = [column.desc() if descending else column.asc(), Reconciliation.period.desc(), Reconciliation.customer]
    counted = session.execute(select(Reconciliation.id, func.count().over())   # the page's ids, and how many in all
                              .join(newest, newest.c.id == Reconciliation.id).where(*conditions)
                              .order_by(*order).limit(per_page).offset((max(page, 1) - 1) * per_page)).all()
    if not counted:
        total = 0 if page <= 1 else session.scalar(select(func.count()).select_from(Reconciliation).join(
            newest, newest.c.id == Reconciliation.id).where(*conditions))
        return [], total
    ids, total = [row[0] for row in counted], counted[0][1]
    report = Reconciliation.report   # read from the page's rows only: a sort never carries the reports along
    query = select(Reconciliation.id, Reconciliation.customer, Reconciliation.period, Reconciliation.passed,
                   explained, Reconciliation.difference, report["currency"].as_string(),
                   report["invoice"]["id"].as_integer(), report["invoice"]["status"].as_string(),
                   Reconciliation.ran_at, Reconciliation.ran_by).where(Reconciliation.id.in_(ids))
    rows = {row[0]: Listed(*row) for row in session.execute(query)}
    return [rows[i] for i in ids], total


class NothingToExplain(Exception):
    """The explanation was not recorded; the message says why."""


def explain(session: Session, row: Reconciliation, who: Actor, text: str, *,
            now: dt.datetime | None = None) -> ReconciliationExplanation:
    """Records why a failed reconciliation may stand; approve and issue then accept these discrepancies (the
    same ones: the fingerprint must match). Audited; explanations are never changed."""
    text = text.strip()
    if not text:
        raise NothingToExplain("an explanation needs a text: say why these discrepancies may stand")
    if row.passed:
        raise NothingToExplain(f"the reconciliation of '{row.customer}' for {row.period} passed: nothing to explain")
    if session.get(ReconciliationExplanation, row.id) is not None:
        raise NothingToExplain(f"reconciliation #{row.id} is explained already")
    now = now or dt.datetime.now(UTC)
    explanation = ReconciliationExplanation(reconciliation_id=row.id, explained_at=now, explained_by=who.name,
                                            text=text)
    session.add(explanation)
    session.flush()
    record(session, who, "reconciliation.explain", reconciliation_resource(row.customer, row.period, row.id),
           details={"text": text, "fingerprint": row.fingerprint, "difference": decimal_text(row.difference),
                    "invoice_id": row.invoice_id}, at=now)
    return explanation


def explanation_of(session: Session, invoice: Invoice, report: Report) -> ReconciliationExplanation | None:
    """An explanation recorded for this invoice and exactly these discrepancies, if any."""
    return session.scalar(select(ReconciliationExplanation).join(
        Reconciliation, Reconciliation.id == ReconciliationExplanation.reconciliation_id).where(
        Reconciliation.customer == invoice.customer, Reconciliation.period == invoice.period,
        Reconciliation.invoice_id == invoice.id, Reconciliation.fingerprint == report.fingerprint).limit(1))


# --- the report as text -------------------------------------------------------------------------------------

def headline(report: Report, locale: str = "en_GB") -> str:
    """One line: the outcome, the money difference and the threshold, money as people read it (engine.money.display
    in `locale`, the environment's)."""
    outcome = "passed" if report.passed else \
        f"FAILED: {len(report.discrepancies)} discrepanc{'y' if len(report.discrepancies) == 1 else 'ies'}"
    return (f"reconciliation {outcome} (difference {_money(report.difference, report, locale)}; "
            f"threshold {_money(report.threshold.amount, report, locale)} and {report.threshold.percent:f}%)")


def render_text(report: Report, explanation: ReconciliationExplanation | None = None, locale: str = "en_GB") -> str:
    """What `billing reconcile` prints; money written the one way (engine.money.display in `locale`)."""
    lines = [f"{report.customer} {report.period}: {headline(report, locale)}"]
    if report.invoice_id is not None:
        lines.append(f"  invoice #{report.invoice_id} ({report.invoice_status}), total "
                     f"{_money(report.invoice_total, report, locale)}")
    for name, title in CHECK_TITLES.items():
        own = [f for f in report.findings if f.check == name]
        if name == "unbilled":
            if not own:
                lines.append(f"  {title}: none")
                continue
            lines.append(f"  {title}: {len(own)} group{'s' if len(own) != 1 else ''}")
            lines += [f"      {f.kind}: {_where(f)}: {f.detail}, quantity {f.found:f}" for f in own]
            continue
        if not own:
            continue
        compared = [f for f in own if f.status != NOTE]
        wrong = [f for f in own if f.status in (DISCREPANCY, WITHIN)]
        state = "all agree" if not wrong else f"{len(wrong)} differ"
        lines.append(f"  {title}: {len(compared)} compared, {state}")
        for f in [f for f in own if f.status == NOTE]:
            lines.append(f"      note: {f.kind} ({f.detail})")
        for f in wrong:
            if f.unit == DIGEST:
                lines.append(f"    !! {_where(f)}: {f.kind}: differs" + (f"; {f.detail}" if f.detail else ""))
                continue
            lines.append(f"    {'!!' if f.status == DISCREPANCY else '~ '} {_where(f)}: {f.kind}: expected "
                         f"{_figure(f, f.expected, report, locale)}, found {_figure(f, f.found, report, locale)} "
                         f"(difference {_signed(f, report, locale)})"
                         + (f"; {f.detail}" if f.detail else ""))
    if explanation is not None:
        lines.append(f"  explained by {explanation.explained_by} at {explanation.explained_at:%Y-%m-%d %H:%M} UTC: "
                     f"{explanation.text}")
    return "\n".join(lines)


def _where(finding: Finding) -> str:
    return " / ".join(part for part in (finding.site or "invoice", finding.category) if part)


def _money(amount, report: Report, locale: str) -> str:
    return display(Decimal(str(amount)), report.currency, locale)


def _figure(finding: Finding, value: Decimal, report: Report, locale: str = "en_GB") -> str:
    return _money(value, report, locale) if finding.unit == AMOUNT else f"{value:f}"


def _signed(finding: Finding, report: Report, locale: str = "en_GB") -> str:
    value = finding.difference
    text = _figure(finding, value, report, locale)
    return f"+{text}" if value > 0 else text
