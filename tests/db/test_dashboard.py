"""The dashboard's figures are the invoice's: the same engine on the same rollups, read from its lines.

Checked on every period of both example contracts (SQLite, and PostgreSQL when BILLING_TEST_POSTGRES_URL is set):
site charges equal the draft invoice's site totals exactly; each minimum and cap with a line shows that line's
figures; a minimum already met and a cap not reached show the engine's commitment and cap counts; the cache serves
an unchanged period from memory, recomputes after an ingest batch, and computes once for concurrent requests.
"""

from __future__ import annotations

import json
import threading
from decimal import Decimal
from pathlib import Path

import pytest

from dsl.compile import compile_file
from engine.lines import CapLine, MinimumLine
from engine.periods import Period
from ingest.pipeline import ingest_events
from ledger.billing_from_db import invoice_from_db
from ledger.contracts import save_contract
from ledger.invoices import counts_from_json
from ledger.issuing import record_issued_invoice
from metering.events import read_events
from review.dashboard import dashboard, figures
from review.dashboard_cache import DashboardCache

CONTRACTS = Path(__file__).resolve().parents[2] / "contracts"
PERIODS = {"acme-health": [Period(2026, 4), Period(2026, 5), Period(2026, 6)],
           "northwind": [Period(2026, 2), Period(2026, 3), Period(2026, 4), Period(2026, 5)]}


@pytest.fixture
def examples(sessions, tmp_path):
    """Both example contracts and their events; Northwind's events under a source of their own (the two files
    share event ids, so under one source Northwind's would be conflicts): its minimum is met in February and its
    annual cap reached in April."""
    with sessions.begin() as session:
        for name in ("acme-health", "northwind-cap"):
            save_contract(session, compile_file(str(CONTRACTS / f"{name}.pricing")), author="test")
    northwind = tmp_path / "northwind.jsonl"
    northwind.write_text((CONTRACTS / "northwind-cap.events.jsonl").read_text()
                         .replace('"source": "platform/main"', '"source": "platform/northwind"'))
    for path in (CONTRACTS / "acme-health.events.jsonl", northwind):
        for _ in ingest_events(sessions, read_events(str(path))):
            pass
    return sessions


def ingest_one(sessions, tmp_path: Path, number: int, quantity: int, *, site="lon-01", day="2026-06-20") -> None:
    path = tmp_path / f"batch-{number}.jsonl"
    path.write_text(json.dumps({
        "specversion": "1.0", "id": f"dashboard-{number}", "source": "test/dashboard", "type": "unit.processed",
        "time": f"{day}T10:00:00Z",
        "data": {"customer": "acme-health", "site": site, "category": "standard", "quantity": quantity},
    }) + "\n")
    for _ in ingest_events(sessions, read_events(str(path))):
        pass


def test_the_figures_api_is_the_draft_invoices_site_totals(examples):
    with examples() as session:
        for customer, periods in PERIODS.items():
            for period in periods:
                now = figures(session, customer, period)
                invoice = invoice_from_db(session, customer, period).invoice
                assert [(s.site, s.name, s.charges) for s in now.sites] == [
                    (s.site, s.name, s.total) for s in invoice.sites]
                assert now.total == invoice.totals["total"]
                assert now.computed.invoice == invoice


def test_minimum_and_cap_progress_are_the_invoice_lines(examples):
    seen = {"minimum line": 0, "minimum met": 0, "cap line": 0, "cap not reached": 0}
    with examples() as session:
        for customer, periods in PERIODS.items():
            for period in periods:
                board = dashboard(session, customer, period)
                computed = invoice_from_db(session, customer, period)
                assert board.totals == computed.invoice.totals
                assert sum((site.charges for site in board.sites), Decimal(0)) == computed.invoice.totals["total"]
                for site, invoiced in zip(board.sites, computed.invoice.sites, strict=True):
                    assert site.charges == invoiced.total
                    assert sum(site.kind_totals.values()) == invoiced.total
                    minimum_lines = [l for l in invoiced.lines if isinstance(l, MinimumLine)]
                    for line in minimum_lines:
                        shown = next(m for m in site.minimums if m.categories == line.categories)
                        assert (shown.commitment, shown.counted, shown.shortfall) == (
                            line.commitment, line.basis, line.amount)
                        seen["minimum line"] += 1
                    for minimum in site.minimums:
                        if minimum.met:
                            assert not any(l.categories == minimum.categories for l in minimum_lines)
                            assert minimum.counted >= minimum.commitment > 0
                            seen["minimum met"] += 1
                    after = computed.result.cap_counts
                    cap_lines = [l for l in invoiced.lines if isinstance(l, CapLine)]
                    for cap in site.caps:
                        line = next((l for l in cap_lines if l.categories == cap.categories), None)
                        key = (site.site, "all" if cap.categories == ("all",) else ",".join(sorted(cap.categories)))
                        assert cap.counted_before + cap.counted_now == after[key]
                        if line is not None:
                            assert (cap.limit, cap.counted_before, cap.in_scope, -cap.reduction) == (
                                line.limit, line.counted_before, line.in_scope, line.amount)
                            assert cap.remaining == 0 and cap.reached
                            seen["cap line"] += 1
                        else:
                            assert cap.reduction == 0 and cap.in_scope == cap.counted_now
                            seen["cap not reached"] += 1
    assert all(seen.values()), seen      # the examples exercise every case


def test_counted_before_is_what_the_issued_invoice_records(examples):
    with examples.begin() as session:
        for period in (Period(2026, 2), Period(2026, 3), Period(2026, 4)):
            board = dashboard(session, "northwind", period)
            row = record_issued_invoice(session, "northwind", period)
            recorded = counts_from_json(row.cap_counts_before)
            for site in board.sites:
                for cap in site.caps:
                    assert cap.counted_before == recorded.get((site.site, "all"), Decimal(0))
    with examples() as session:
        board = dashboard(session, "northwind", Period(2026, 5))
        assert [(p.period, p.source) for p in board.history] == [
            (Period(2026, 2), "issued"), (Period(2026, 3), "issued"), (Period(2026, 4), "issued"),
            (Period(2026, 5), "computed")]
        issued = {p.period: p for p in board.history if p.source == "issued"}
        for period, point in issued.items():
            assert point.charges == invoice_from_db(session, "northwind", period).invoice.totals["total"]


def test_a_part_month_minimum_is_prorated_by_the_engine(examples):
    with examples() as session:
        board = dashboard(session, "acme-health", Period(2026, 6))
    leeds = next(site for site in board.sites if site.site == "lds-02")
    assert leeds.minimums[0].prorated and leeds.minimums[0].full_commitment == Decimal("2500.00")
    assert leeds.minimums[0].commitment == Decimal("1333.33")      # 16 of 30 days, as the invoice line says
    assert leeds.caps == ()                                         # `no cap`


def test_the_cache_serves_unchanged_figures_and_recomputes_after_a_batch(examples, tmp_path):
    cache = DashboardCache()
    june = Period(2026, 6)
    with examples() as session:
        first = cache.get(session, "acme-health", june)
        assert cache.computations == 3          # June, and May and April for its history, each once
        assert cache.get(session, "acme-health", june) is first
        assert cache.computations == 3
    ingest_one(examples, tmp_path, 1, 100)
    with examples() as session:
        second = cache.get(session, "acme-health", june)
    assert cache.computations == 4 and second is not first      # June's events leave May and April as they were
    assert second.history[:-1] == first.history[:-1]
    assert second.totals["usage"] == first.totals["usage"] + Decimal("85.00")
    assert second.events == first.events + 1


def test_another_customers_events_cost_a_check_not_a_computation(examples, tmp_path):
    cache = DashboardCache(recheck=3600)
    with examples() as session:
        first = cache.get(session, "northwind", Period(2026, 3))
    assert cache.computations == 2               # March, and February for its history
    ingest_one(examples, tmp_path, 2, 5)       # acme-health's usage: northwind's digest is unchanged
    with examples() as session:
        assert cache.get(session, "northwind", Period(2026, 3)) is first
    assert cache.computations == 2


def test_the_periodic_recheck_finds_what_the_stamp_cannot_see(examples):
    clock = [0.0]
    cache = DashboardCache(clock=lambda: clock[0], recheck=2)
    with examples() as session:
        cache.get(session, "acme-health", Period(2026, 6))
    # Usage that moved no stamp (as an ingest committing out of the order of its event ids on PostgreSQL would).
    with examples.begin() as session:
        session.connection().exec_driver_sql(
            "UPDATE rollups SET events = events + 1 WHERE customer = 'acme-health' AND site = 'lon-01' "
            "AND day = (SELECT MIN(day) FROM rollups WHERE customer = 'acme-health' AND day >= '2026-06-01')")
    with examples() as session:
        cache.get(session, "acme-health", Period(2026, 6))
        assert cache.computations == 3          # within the recheck interval: served from memory
        clock[0] = 3
        cache.get(session, "acme-health", Period(2026, 6))
        assert cache.computations == 4


def test_concurrent_requests_wait_for_one_computation(examples):
    started, release = threading.Event(), threading.Event()

    def slow(session, customer, period, **options):
        started.set()
        release.wait(10)
        return dashboard(session, customer, period, **options)

    cache = DashboardCache(compute=slow)
    results, errors = [], []

    def request():
        try:
            with examples() as session:
                results.append(cache.get(session, "acme-health", Period(2026, 6)))
        except Exception as exc:   # reported below
            errors.append(exc)

    threads = [threading.Thread(target=request) for _ in range(6)]
    for thread in threads:
        thread.start()
    assert started.wait(10)
    release.set()
    for thread in threads:
        thread.join(20)
    assert errors == [] and len(results) == 6
    assert all(result is results[0] for result in results)
    assert cache.computations == len(results[0].history)    # the period, and each open period before it once
