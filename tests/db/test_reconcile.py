"""Reconciliation (store/reconcile.py, `billing reconcile`, `billing close`): a clean period passes with a
difference of exactly 0.00; each kind of drift — a rollup altered behind the engine's back, an event deleted,
an event inserted without its rollup, usage arriving after the close, a late event, a dashboard that showed
other figures — is caught, named where it is, and blocks approving and issuing until it is resolved or
finance explains it (audited); the threshold is the environment's."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from conftest import TEST_SELLER
from sqlalchemy import delete, select, text
from sqlalchemy.exc import DBAPIError

from audit.log import Actor, AuditEntry
from engine.periods import Period
from engine.refusal import Refused
from ledger.invoices import Selector
from ledger.models import Invoice
from lifecycle.transitions import APPROVAL_GATES, approve, issue
from metering.models import Rollup, UsageEvent
from review.models import DashboardSnapshotSite, Reconciliation, ReconciliationExplanation
from review.reconcile import DISCREPANCY, NOTE, OK, WITHIN, Threshold, latest, reconcile
from settings import environment
from storage.base import FrozenRecord

from .support import TINY, event, write_lines

MAY, JUNE = Period(2026, 5), Period(2026, 6)
WHO = Actor("cli:tester", "test")
STRICT = Threshold(Decimal("0.01"), Decimal("0"))
UTC = dt.timezone.utc


@pytest.fixture
def tiny(cli, tmp_path):
    """The TINY contract with May and June usage: s1 standard 5 a day (days 1-20), s2 review 3 a day (1-10)."""
    assert cli("db", "upgrade")[0] == 0
    assert cli("contract", "save", write_lines(tmp_path / "tiny.pricing", [TINY]))[0] == 0
    lines = []
    for month in (5, 6):
        lines += [event(f"{month}-s1-{d}", f"2026-{month:02d}-{d:02d}T10:00:00Z", "5") for d in range(1, 21)]
        lines += [event(f"{month}-s2-{d}", f"2026-{month:02d}-{d:02d}T11:00:00Z", "3", site="s2", category="review")
                  for d in range(1, 11)]
    lines.append(event("unknown-site", "2026-05-04T09:00:00Z", "7", site="s9"))
    status, _, err = cli("ingest", write_lines(tmp_path / "events.jsonl", lines))
    assert status == 0, err
    return tmp_path


def report_of(sessions, period=MAY, threshold=STRICT):
    with sessions() as session:
        return reconcile(session, "tiny", period, threshold)


def which(period=MAY) -> tuple[str, ...]:
    return ("--customer", "tiny", "--period", str(period))


# --- drift, injected behind the engine's back --------------------------------------------------------------

def alter_a_rollup(sessions, tmp_path, cli):
    with sessions.begin() as session:
        row = session.get(Rollup, ("tiny", "s1", "standard", dt.date(2026, 5, 7)))
        row.quantity += Decimal("2")


def delete_an_event(sessions, tmp_path, cli):
    with sessions.begin() as session:
        session.execute(delete(UsageEvent).where(UsageEvent.event_id == "evt-5-s1-7"))


def insert_an_event_without_its_rollup(sessions, tmp_path, cli):
    with sessions.begin() as session:
        session.add(UsageEvent(source="platform/test", event_id="evt-smuggled", customer="tiny", site="s1",
                               category="standard", time=dt.datetime(2026, 5, 7, 12, tzinfo=UTC),
                               quantity=Decimal("2"), day=dt.date(2026, 5, 7), late=False,
                               received_at=dt.datetime.now(UTC)))


DRIFTS = {
    "a rollup altered": (alter_a_rollup, Decimal("102"), Decimal("100")),   # (inject, rollups, events) of s1
    "an event deleted": (delete_an_event, Decimal("100"), Decimal("95")),
    "an event inserted without its rollup": (insert_an_event_without_its_rollup, Decimal("100"), Decimal("102")),
}


def test_a_clean_period_passes_with_a_difference_of_exactly_zero(tiny, cli, sessions):
    status, out, err = cli("close", *which())
    assert status == 0, err
    assert out == "tiny 2026-05: draft created (total £190.00)\n"    # s1 100; s2 40 review + 50 true-up
    assert "tiny 2026-05: reconciliation passed (difference £0.00" in err
    report = report_of(sessions)
    assert report.passed and report.difference == Decimal("0.00") and str(report.difference) == "0.00"
    assert {f.status for f in report.findings} <= {OK, NOTE}
    assert report.checked["recount"] == 3 and report.checked["dashboard"] == 2 and report.checked["invariants"] >= 4
    unbilled = [f for f in report.findings if f.check == "unbilled"]
    assert [(f.kind, f.site, f.found, f.count) for f in unbilled] == [("unknown site", "s9", Decimal("7"), 1)]
    status, out, err = cli("reconcile", *which())
    assert status == 0, err
    assert "reconciliation passed (difference £0.00; threshold £0.01 and 0%)" in out
    assert "unknown site: s9 / standard: 1 events, quantity 7" in out
    assert cli("approve", *which())[0] == 0
    assert cli("issue", *which())[0] == 0
    with sessions() as session:
        runs = session.scalars(select(Reconciliation).order_by(Reconciliation.id)).all()
        assert [(r.passed, r.difference, r.ran_by.startswith("cli:")) for r in runs] == [(True, Decimal("0.00"), True)] * 2
        assert session.scalar(select(AuditEntry).where(AuditEntry.action == "reconciliation.run")) is not None


@pytest.mark.parametrize("drift", DRIFTS)
def test_each_drift_is_caught_and_blocks_approval_until_explained(drift, tiny, cli, sessions):
    inject, rollups, events = DRIFTS[drift]
    assert cli("close", *which())[0] == 0
    inject(sessions, tiny, cli)

    status, out, err = cli("reconcile", *which())
    assert status == 1, out + err
    assert "reconciliation FAILED" in out and "failed: approve and issue are refused" in err
    report = report_of(sessions)
    found = [f for f in report.discrepancies if f.check == "recount" and f.unit == "quantity"]
    assert [(f.site, f.category, f.expected, f.found) for f in found] == [("s1", "standard", events, rollups)]
    assert (found[0].events.first_day, found[0].events.last_day) == (dt.date(2026, 5, 7),) * 2
    with sessions() as session:   # the query behind the finding lists the events of the day that differs
        behind = session.scalars(found[0].events.statement()).all()
    assert sum((e.quantity for e in behind), Decimal(0)) == events - 95    # the other 19 days hold 95

    status, out, err = cli("close", *which())    # closing again does not make the drift go away
    assert status == 1 and "reconciliation FAILED" in err and "the reconciliation of 1 draft failed" in err
    status, _, err = cli("approve", *which())
    assert status == 1 and "cannot be approved: its reconciliation FAILED" in err
    assert "; see `billing reconcile --customer tiny --period 2026-05`, resolve them and run `billing close " \
           "--customer tiny --period 2026-05` again" in err and "--period 2026-05 --explain TEXT`)" in err

    status, out, err = cli("reconcile", *which(), "--explain", "rollup of 7 May checked by hand: FIN-12")
    assert status == 0, err
    assert "explained by cli:" in out and "FIN-12" in out
    assert cli("approve", *which())[0] == 0
    assert cli("issue", *which())[0] == 0
    with sessions() as session:
        entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "reconciliation.explain"))
        assert entry.details["text"] == "rollup of 7 May checked by hand: FIN-12"
        assert entry.resource.startswith("reconciliation:tiny/2026-05#")


@pytest.mark.parametrize("drift", ["an event deleted", "an event inserted without its rollup"])
def test_drift_after_approval_blocks_issuing(drift, tiny, cli, sessions):
    assert cli("close", *which())[0] == 0
    assert cli("approve", *which())[0] == 0
    DRIFTS[drift][0](sessions, tiny, cli)     # the rollups, so the invoice itself, did not change
    status, out, err = cli("issue", *which())
    assert (status, out) == (1, "")
    assert "cannot be issued: its reconciliation FAILED: 2 discrepancies" in err    # quantity, and its charge
    with sessions() as session:
        assert session.scalar(select(Invoice).where(Invoice.customer == "tiny")).status == "approved"


def test_an_explanation_covers_only_the_discrepancies_it_explained(tiny, cli, sessions):
    assert cli("close", *which())[0] == 0
    delete_an_event(sessions, tiny, cli)
    assert cli("reconcile", *which(), "--explain", "deleted on purpose")[0] == 0
    insert_an_event_without_its_rollup(sessions, tiny, cli)    # another drift on top: not explained
    status, _, err = cli("approve", *which())
    assert status == 1 and "its reconciliation FAILED" in err
    with sessions.begin() as session, pytest.raises(Refused, match="reconciliation FAILED"):
        approve(session, Selector("tiny", MAY), WHO, threshold=STRICT, seller=TEST_SELLER)


def test_usage_after_the_close_is_caught_until_closed_again(tiny, cli, sessions):
    assert cli("close", *which())[0] == 0
    assert cli("ingest", write_lines(tiny / "more.jsonl", [event("after-close", "2026-05-21T10:00:00Z", "40")]))[0] == 0
    status, out, _ = cli("reconcile", *which())
    assert status == 1
    stale = [f for f in report_of(sessions).discrepancies if f.check == "current"]
    assert [(f.site, f.expected, f.found) for f in stale] == [("s1", Decimal("140.00"), Decimal("100.00"))]
    assert "s1: invoice against the engine's computation now: expected £140.00, found £100.00" in out
    assert cli("approve", *which())[0] == 1
    assert cli("close", *which())[0] == 0          # resolved: the draft now bills it
    assert report_of(sessions).passed and cli("approve", *which())[0] == 0


def test_a_late_event_is_reported_with_its_period_and_blocks_the_invoice_that_must_bill_it(tiny, cli, sessions):
    for step in ("close", "approve", "issue"):
        assert cli(step, *which())[0] == 0
    assert cli("close", *which(JUNE))[0] == 0
    status, _, err = cli("ingest", write_lines(tiny / "late.jsonl", [event("late-1", "2026-05-22T10:00:00Z", "4")]))
    assert status == 0, err
    status, out, _ = cli("reconcile", *which(MAY))     # May is issued: its late event is listed, not a discrepancy
    assert status == 0
    assert "late: arrived after the period was issued: s1 / standard: 1 events; the next open invoice bills it" in out
    status, _, err = cli("issue", *which(JUNE))
    assert status == 1
    status, out, _ = cli("reconcile", *which(JUNE))    # June's draft was made before the late event came
    assert status == 1 and "invoice against the engine's computation now" in out
    assert cli("close", *which(JUNE))[0] == 0
    assert report_of(sessions, JUNE).passed


def test_a_dashboard_that_showed_other_figures_is_judged_by_the_environments_threshold(tiny, cli, sessions,
                                                                                       tmp_path, monkeypatch):
    assert cli("close", *which())[0] == 0
    with sessions.begin() as session:    # as a stale dashboard cache would have shown it
        site = session.scalars(select(DashboardSnapshotSite).where(DashboardSnapshotSite.site == "s1")).one()
        site.charges += Decimal("0.50")
    status, out, _ = cli("reconcile", *which())
    assert status == 1 and "s1: dashboard snapshot against the invoice: expected £100.50, found £100.00" in out
    assert report_of(sessions).difference == Decimal("0.50")

    folder = tmp_path / "environments"
    folder.mkdir()
    settings = (environment.ENVIRONMENTS / "test.toml").read_text(encoding="utf-8")
    for name, amount, percent, passes in [("lenient", "1.00", "0", True), ("relative", "0", "1", True),
                                          ("both", "0.10", "0.1", False)]:
        (folder / f"{name}.toml").write_text(
            settings.replace('name = "test"', f'name = "{name}"')
            .replace('reconcile_threshold_amount = "0.01"', f'reconcile_threshold_amount = "{amount}"')
            .replace('reconcile_threshold_percent = "0"', f'reconcile_threshold_percent = "{percent}"'),
            encoding="utf-8")
        monkeypatch.setattr(environment, "ENVIRONMENTS", folder)
        monkeypatch.setenv("BILLING_ENV", name)
        status, out, _ = cli("reconcile", *which())
        assert (status == 0) is passes, (name, out)
        statuses = {f.status for f in report_of(sessions, threshold=Threshold.of(environment.load())).findings}
        assert (WITHIN in statuses) is passes and (DISCREPANCY in statuses) is not passes
    monkeypatch.setenv("BILLING_ENV", "lenient")
    assert cli("approve", *which())[0] == 0


def test_an_invoice_that_breaks_its_own_invariants_is_caught(tiny, cli, sessions):
    assert cli("close", *which())[0] == 0
    with sessions.begin() as session:
        draft = session.scalar(select(Invoice).where(Invoice.customer == "tiny"))
        document = {**draft.document, "totals": {**draft.document["totals"], "total": "191.00"}}
        draft.document = document
    report = report_of(sessions)
    broken = [(f.kind, f.expected, f.found) for f in report.discrepancies if f.check == "invariants"]
    assert broken == [("site totals sum to the invoice total", Decimal("190.00"), Decimal("191.00"))]


def test_reconcile_exit_codes_and_mistakes(tiny, cli, sessions):
    assert cli("reconcile", "--period", "2026-05")[0] == 0            # no draft yet: notes only
    status, out, _ = cli("reconcile", "--period", "2026-05", "--format", "json")
    assert status == 0 and '"passed": true' in out
    status, _, err = cli("reconcile", "--period", "2026-05", "--explain", "why")
    assert status == 2 and "--explain needs --customer" in err
    status, _, err = cli("reconcile", "--period", "May")
    assert status == 2 and "--period" in err
    status, _, err = cli("reconcile", "--customer", "nobody", "--period", "2026-05")
    assert status == 1 and "nobody" in err and "Traceback" not in err
    assert cli("close", *which())[0] == 0
    status, _, err = cli("reconcile", *which(), "--explain", "nothing wrong")
    assert status == 1 and "passed: nothing to explain" in err
    delete_an_event(sessions, tiny, cli)
    status, _, err = cli("reconcile", *which(), "--explain", "   ")
    assert status == 1 and "needs a text" in err


def test_explanations_are_never_changed(tiny, cli, sessions):
    assert cli("close", *which())[0] == 0
    delete_an_event(sessions, tiny, cli)
    assert cli("reconcile", *which(), "--explain", "checked")[0] == 0
    with sessions() as session:
        row = latest(session, "tiny", MAY)
        assert session.get(ReconciliationExplanation, row.id).text == "checked"
    for statement in ("UPDATE reconciliation_explanations SET text = 'x'", "DELETE FROM reconciliation_explanations"):
        with pytest.raises(DBAPIError, match="cannot be changed or deleted"):
            with sessions.begin() as session:
                session.execute(text(statement))
    with pytest.raises(FrozenRecord):
        with sessions.begin() as session:
            session.scalars(select(ReconciliationExplanation)).one().text = "edited"


def test_the_reconciliation_is_an_approval_gate_and_runs_on_issue(tiny, sessions, cli):
    assert [gate.__name__ for gate in APPROVAL_GATES][-1] == "reconciliation_passed"
    assert cli("close", *which())[0] == 0
    with sessions.begin() as session:
        approve(session, Selector("tiny", MAY), WHO, threshold=STRICT, seller=TEST_SELLER)
    delete_an_event(sessions, tiny, cli)
    with sessions.begin() as session, pytest.raises(Refused, match="cannot be issued: its reconciliation FAILED"):
        issue(session, Selector("tiny", MAY), WHO, threshold=STRICT, prefix="TEST", seller=TEST_SELLER)


def test_the_gates_refusal_writes_money_in_the_environments_locale(tiny, sessions, cli):
    """The reconciliation's headline inside an approval or issue refusal is said as the environment writes money."""
    assert cli("close", *which())[0] == 0
    delete_an_event(sessions, tiny, cli)
    with sessions.begin() as session, pytest.raises(Refused) as refused:
        approve(session, Selector("tiny", MAY), WHO, threshold=STRICT, seller=TEST_SELLER, locale="de_DE")
    assert refused.value.refusal.code == "reconciliation-failed"
    assert "\xa0£" in refused.value.refusal.message and "£0.01" not in refused.value.refusal.message
    with sessions.begin() as session, pytest.raises(Refused) as refused:
        approve(session, Selector("tiny", MAY), WHO, threshold=STRICT, seller=TEST_SELLER)
    assert "£0.01" in refused.value.refusal.message
