"""Late events (docs/late-events.md): stored and flagged, never merged into an issued invoice, billed once
on the next open invoice as the difference they make to their own period."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from sqlalchemy import select

from engine.periods import Period
from ledger.issuing import AlreadyIssued, record_issued_invoice
from ledger.models import Invoice
from metering.models import UsageEvent

from .support import TINY, event, stored_state, write_lines


@pytest.fixture
def tiny(cli, tmp_path):
    assert cli("db", "upgrade")[0] == 0
    path = tmp_path / "tiny.pricing"
    path.write_text(TINY, encoding="utf-8")
    assert cli("contract", "save", path)[0] == 0


def ingest(cli, tmp_path, name, lines) -> str:
    status, out, err = cli("ingest", write_lines(tmp_path / name, lines))
    assert status == 0, err
    return out


def invoice(cli, period: str) -> dict:
    status, out, err = cli("invoice", "--customer", "tiny", "--period", period)
    assert status == 0, err
    document = json.loads(out)
    assert_totals_add_up(document)
    return document


def issue(sessions, period: str) -> Invoice:
    with sessions.begin() as session:
        return record_issued_invoice(session, "tiny", Period.parse(period))


def assert_totals_add_up(document: dict) -> None:
    totals = {kind: Decimal(0) for kind in ("usage", "minimum", "cap")}
    for site in document["sites"]:
        amounts = [Decimal(line["amount"]) for line in site["lines"]]
        assert Decimal(site["total"]) == sum(amounts, Decimal(0))
        for line in site["lines"]:
            totals[line["kind"]] += Decimal(line["amount"])
    for kind, amount in totals.items():
        assert Decimal(document["totals"][kind]) == amount
    assert Decimal(document["totals"]["total"]) == sum(totals.values()) == sum(
        (Decimal(s["total"]) for s in document["sites"]), Decimal(0))


def lines_of(document: dict, site: str = "s1") -> list[tuple]:
    found = next(s for s in document["sites"] if s["site"] == site)
    return [(line["kind"], line.get("late_for"), line.get("quantity"), line["amount"]) for line in found["lines"]]


def test_late_usage_is_flagged_and_billed_on_the_next_invoice_against_its_own_minimum(cli, tiny, tmp_path, sessions):
    ingest(cli, tmp_path, "april.jsonl", [event(1, "2026-04-10T10:00:00Z", "20")])
    april = invoice(cli, "2026-04")
    assert lines_of(april) == [("usage", None, "20", "20.00"), ("minimum", None, None, "30.00")]
    issue(sessions, "2026-04")

    out = ingest(cli, tmp_path, "late.jsonl", [event(2, "2026-04-20T10:00:00Z", "10"),
                                               event(3, "2026-05-02T10:00:00Z", "60")])
    assert "2 accepted (1 late)" in out
    with sessions() as session:
        assert session.scalars(select(UsageEvent.late).order_by(UsageEvent.event_id)).all() == [False, True, False]

    assert invoice(cli, "2026-04") == april        # the issued invoice does not change
    may = invoice(cli, "2026-05")
    assert lines_of(may) == [
        ("usage", None, "60", "60.00"),
        ("usage", "2026-04", "10", "10.00"),        # April's usage, billed now …
        ("minimum", "2026-04", None, "-10.00"),     # … less the true-up April already charged for it
    ]
    late_usage = next(s for s in may["sites"] if s["site"] == "s1")["lines"][1]
    assert late_usage["label"] == "Standard processing, late usage for 2026-04"

    issue(sessions, "2026-05")
    assert invoice(cli, "2026-05") == may
    assert not [line for line in lines_of(invoice(cli, "2026-06")) if line[1]]   # billed once
    assert all(row[-1] == Period(2026, 5) for row in stored_state(sessions)["late"])


def test_late_usage_continues_the_tiers_where_its_period_stopped(cli, tiny, tmp_path, sessions):
    ingest(cli, tmp_path, "april.jsonl", [event(1, "2026-04-10T10:00:00Z", "8", category="review")])
    issue(sessions, "2026-04")
    ingest(cli, tmp_path, "late.jsonl", [event(2, "2026-04-11T10:00:00Z", "5", category="review")])
    late = next(line for line in next(s for s in invoice(cli, "2026-05")["sites"] if s["site"] == "s1")["lines"]
                if line.get("late_for"))
    assert (late["quantity"], late["amount"]) == ("5", "7.00")
    assert [(t["quantity"], t["unit_price"], t["amount"]) for t in late["tiers"]] == [
        ("2", "2.00", "4.00"), ("3", "1.00", "3.00")]


def test_late_usage_counts_towards_the_cap_of_its_year(cli, tiny, tmp_path, sessions):
    ingest(cli, tmp_path, "january.jsonl", [event(1, "2026-01-10T10:00:00Z", "480")])
    issue(sessions, "2026-01")
    ingest(cli, tmp_path, "late.jsonl", [event(2, "2026-01-11T10:00:00Z", "40"),
                                         event(3, "2026-02-11T10:00:00Z", "10")])
    february = invoice(cli, "2026-02")
    assert lines_of(february) == [
        # the cap (500 a year) has counted 480 + 20 of the late 40: February's own lines are all taken off
        ("usage", None, "10", "10.00"), ("minimum", None, None, "40.00"), ("cap", None, None, "-50.00"),
        ("usage", "2026-01", "40", "40.00"), ("cap", "2026-01", None, "-20.00"),
    ]
    issued = issue(sessions, "2026-02")
    assert ["s1", "all", "500.00"] in issued.cap_counts


def test_unbillable_late_events_and_late_conflicts_are_reported_on_the_next_invoice(cli, tiny, tmp_path, sessions):
    ingest(cli, tmp_path, "april.jsonl", [event(1, "2026-04-10T10:00:00Z", "60")])
    april = invoice(cli, "2026-04")
    issue(sessions, "2026-04")
    ingest(cli, tmp_path, "late.jsonl", [event(2, "2026-04-11T10:00:00Z", "3", category="ocr"),
                                         event(1, "2026-04-10T10:00:00Z", "61")])
    assert invoice(cli, "2026-04") == april
    assert invoice(cli, "2026-05")["unbilled"] == [
        {"reason": "conflict", "site": "s1", "category": "standard", "events": 1, "quantity": "61",
         "late_for": "2026-04"},
        {"reason": "unknown category", "site": "s1", "category": "ocr", "events": 1, "quantity": "3",
         "late_for": "2026-04"},
    ]


def test_late_usage_skips_issued_periods_to_the_first_open_one(cli, tiny, tmp_path, sessions):
    ingest(cli, tmp_path, "spring.jsonl", [event(1, "2026-04-10T10:00:00Z", "60"),
                                           event(2, "2026-05-10T10:00:00Z", "60")])
    issue(sessions, "2026-04")
    issue(sessions, "2026-05")
    ingest(cli, tmp_path, "late.jsonl", [event(3, "2026-04-11T10:00:00Z", "1")])
    assert not [line for line in lines_of(invoice(cli, "2026-05")) if line[1]]
    assert ("usage", "2026-04", "1", "1.00") in lines_of(invoice(cli, "2026-06"))
    assert not [line for line in lines_of(invoice(cli, "2026-07")) if line[1]]


def test_an_invoice_is_issued_once(cli, tiny, tmp_path, sessions):
    issue(sessions, "2026-04")
    with pytest.raises(AlreadyIssued):
        issue(sessions, "2026-04")


def test_after_a_void_the_late_usage_goes_back_to_its_own_period(cli, tiny, tmp_path, sessions):
    import datetime as dt

    from ledger.models import InvoiceVoid

    ingest(cli, tmp_path, "april.jsonl", [event(1, "2026-04-10T10:00:00Z", "60")])
    first = issue(sessions, "2026-04")
    ingest(cli, tmp_path, "late.jsonl", [event(2, "2026-04-11T10:00:00Z", "5"),
                                         event(1, "2026-04-10T10:00:00Z", "61")])
    assert ("usage", "2026-04", "5", "5.00") in lines_of(invoice(cli, "2026-05"))
    with sessions.begin() as session:
        session.add(InvoiceVoid(invoice_id=first.id, voided_at=dt.datetime.now(dt.timezone.utc),
                                voided_by="test", reason="wrong address"))

    april = invoice(cli, "2026-04")    # open again: it bills its late usage and reports its late conflict
    assert lines_of(april) == [("usage", None, "65", "65.00")]
    assert [g["reason"] for g in april["unbilled"]] == ["conflict"]
    assert not [line for line in lines_of(invoice(cli, "2026-05")) if line[1]]
    issue(sessions, "2026-04")
    assert invoice(cli, "2026-04") == april
    assert not [line for line in lines_of(invoice(cli, "2026-05")) if line[1]]
    assert invoice(cli, "2026-05")["unbilled"] == []
