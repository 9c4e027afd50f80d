"""What-if pricing (store/whatif.py) on the example contract Acme Health with its example usage, issued for
2026-04 and 2026-05: previews equal the real invoices for the real text, and differ by what a hand calculation
from the events says for a changed rate; backtest rows add up to its totals."""

from __future__ import annotations

import json
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from audit.log import Actor
from dsl.compile import compile_source
from engine.periods import Period
from engine.refusal import Refusal
from ingest.pipeline import ingest_events
from ledger.contracts import save_contract
from ledger.invoices import Selector
from ledger.issuing import record_issued_invoice
from ledger.models import Invoice
from lifecycle.transitions import close, void
from metering.events import read_events
from review.whatif import DRAFT_NAME, backtest, compare_versions, preview

CONTRACTS = Path(__file__).resolve().parents[2] / "contracts"
ACME = (CONTRACTS / "acme-health.pricing").read_text(encoding="utf-8")
REVIEW_FIRST_TIER = "up to 1_000 at 2.00"
DEARER_REVIEW = ACME.replace(REVIEW_FIRST_TIER, "up to 1_000 at 2.25")
APRIL, MAY, JUNE = Period(2026, 4), Period(2026, 5), Period(2026, 6)


def quantities() -> dict[tuple[str, str, str], Decimal]:
    """(period, site, category) → units, read from the example events file (not from the database)."""
    totals: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
    for line in (CONTRACTS / "acme-health.events.jsonl").read_text(encoding="utf-8").splitlines():
        event = json.loads(line)
        data = event["data"]
        totals[(event["time"][:7], data["site"], data["category"])] += Decimal(str(data["quantity"]))
    return totals


def first_tier_extra(period: str) -> Decimal:
    """What 0.25 more per unit on review's first 1,000 units adds at lon-01 (the only site billing review)."""
    return min(quantities()[(period, "lon-01", "review")], Decimal(1000)) * Decimal("0.25")


@pytest.fixture
def acme(sessions):
    with sessions.begin() as session:
        save_contract(session, compile_source(ACME.encode(), "acme-health.pricing"), author="test")
    for _ in ingest_events(sessions, read_events(str(CONTRACTS / "acme-health.events.jsonl"))):
        pass
    with sessions.begin() as session:
        record_issued_invoice(session, "acme-health", APRIL)
        record_issued_invoice(session, "acme-health", MAY)
    return sessions


def issued_document(session, period: Period) -> dict:
    return session.scalar(select(Invoice.document).where(Invoice.customer == "acme-health", Invoice.period == period,
                                                         Invoice.status == "issued"))


def site_totals(invoice) -> dict[str, Decimal]:
    return {site.site: site.total for site in invoice.sites}


def test_the_text_in_effect_previews_exactly_the_issued_invoice(acme):
    with acme() as session:
        for period in (APRIL, MAY):
            shown = preview(session, "acme-health", ACME, period)
            assert not isinstance(shown, Refusal), shown
            assert shown.document == issued_document(session, period)
        # a browser sends a text area with CRLF line ends: still the same version
        shown = preview(session, "acme-health", ACME.replace("\n", "\r\n"), MAY)
        assert shown.document == issued_document(session, MAY)


def test_a_dearer_review_tier_changes_only_the_site_billing_review_by_the_hand_computed_amount(acme):
    with acme() as session:
        before = preview(session, "acme-health", ACME, JUNE)
        after = preview(session, "acme-health", DEARER_REVIEW, JUNE)
    old, new = site_totals(before.invoice), site_totals(after.invoice)
    assert set(old) == set(new) == {"lon-01", "lds-02"}
    assert new["lds-02"] == old["lds-02"]                     # Leeds disables review
    assert new["lon-01"] - old["lon-01"] == first_tier_extra("2026-06") == Decimal("250.00")
    assert after.invoice.totals["total"] - before.invoice.totals["total"] == Decimal("250.00")
    assert after.document["contract_version"] != before.document["contract_version"]


def test_a_draft_that_does_not_compile_is_a_refusal_with_its_diagnostics(acme):
    broken = ACME.replace("rate 0.85", "rate zero")
    with acme() as session:
        refused = preview(session, "acme-health", broken, MAY)
        assert isinstance(refused, Refusal) and refused.field == "source"
        assert "error" in refused.message and refused.diagnostics
        line = next(n for n, text in enumerate(ACME.splitlines(), 1) if "rate 0.85" in text)
        first = refused.diagnostics[0].render(DRAFT_NAME)
        assert refused.code == "draft-has-errors" and first.startswith(f"draft:{line}:") and "[syntax]" in first

        other = preview(session, "acme-health", ACME.replace('contract "acme-health"', 'contract "acme-2"'), MAY)
        assert isinstance(other, Refusal) and "'acme-2', not 'acme-health'" in other.message
        currency = preview(session, "acme-health", ACME.replace("currency GBP", "currency EUR"), MAY)
        assert isinstance(currency, Refusal) and "keep the contract's currency" in currency.message
        outside = preview(session, "acme-health", ACME, Period(2026, 3))
        assert isinstance(outside, Refusal) and outside.field == "period" and "outside the contract" in outside.message
        assert preview(session, "acme-health", "  \n", MAY).code == "empty-draft"


def test_comparing_two_versions_gives_the_text_diff_and_the_difference_per_site_and_kind(acme):
    with acme.begin() as session:
        save_contract(session, compile_source(DEARER_REVIEW.encode(), "v2"), effective=JUNE, author="test")
    with acme() as session:
        compared = compare_versions(session, "acme-health", 1, 2, JUNE)
        missing = compare_versions(session, "acme-health", 1, 3, JUNE)
    assert f"-        {REVIEW_FIRST_TIER}" in compared.diff and "+        up to 1_000 at 2.25" in compared.diff
    by_site = {site.site: site for site in compared.sites}
    assert by_site["lon-01"].kinds["usage"][2] == Decimal("250.00")
    assert by_site["lon-01"].kinds["minimum"][2] == by_site["lon-01"].kinds["cap"][2] == 0
    assert by_site["lon-01"].total == (site_totals(compared.invoice_a.invoice)["lon-01"],
                                       site_totals(compared.invoice_b.invoice)["lon-01"], Decimal("250.00"))
    assert by_site["lds-02"].total[2] == 0
    kinds, total = compared.totals
    assert total == (compared.invoice_a.invoice.totals["total"], compared.invoice_b.invoice.totals["total"],
                     Decimal("250.00"))
    assert kinds["usage"][2] == Decimal("250.00")
    assert isinstance(missing, Refusal) and missing.field == "b" and "no version 3" in missing.message


def test_a_backtest_shows_each_closed_period_per_site_and_its_totals_are_the_sums_of_the_rows(acme):
    with acme.begin() as session:
        close(session, "acme-health", JUNE)                   # a draft only: not closed
    with acme() as session:
        tested = backtest(session, "acme-health", DEARER_REVIEW, periods=3)
        unchanged = backtest(session, "acme-health", ACME, periods=1)
        issued = {period: issued_document(session, period) for period in (APRIL, MAY)}
    assert [p.period for p in tested.periods] == [APRIL, MAY]
    assert tested.not_closed == ((JUNE, "draft"),)
    for period in tested.periods:
        document = issued[period.period]
        assert [(r.site, r.issued) for r in period.rows] == [(s["site"], Decimal(s["total"]))
                                                               for s in document["sites"]]
        assert period.issued == Decimal(document["totals"]["total"])
        assert period.difference == first_tier_extra(str(period.period))
        for row in period.rows:
            assert row.difference == row.draft - row.issued
    rows = tested.rows
    assert tested.totals == (sum(r.issued for r in rows), sum(r.draft for r in rows),
                             sum(r.difference for r in rows))
    assert tested.totals[2] == first_tier_extra("2026-04") + first_tier_extra("2026-05") == Decimal("425.00")
    assert [p.period for p in unchanged.periods] == [MAY] and unchanged.totals[2] == 0


def test_a_backtest_refuses_what_it_cannot_run(acme):
    with acme() as session:
        assert backtest(session, "acme-health", ACME, periods=0).code == "periods-out-of-range"
        assert backtest(session, "acme-health", ACME, periods=37).field == "periods"
        assert backtest(session, "acme-health", ACME.replace("GBP", "GBX"), periods=2).field == "source"
        ended = ACME.replace("starts   2026-04-01", "starts   2026-04-01\n    ends 2026-04-30")
        refused = backtest(session, "acme-health", ended, periods=2)
        assert isinstance(refused, Refusal) and "cannot bill 2026-05" in refused.message
        assert refused.code == "backtest-period-refused" and refused.field == "source"


def test_a_voided_period_is_not_closed_until_it_is_issued_again(acme):
    with acme.begin() as session:
        void(session, Selector("acme-health", MAY), Actor("cli:test", "test"), "wrong site list")
    with acme() as session:
        tested = backtest(session, "acme-health", DEARER_REVIEW, periods=6)
    assert [p.period for p in tested.periods] == [APRIL]
    assert tested.not_closed == ((MAY, "void"),)
    assert tested.totals[2] == first_tier_extra("2026-04")
