"""The dashboard of a contract with an account block (contracts/globex-research.pricing): the account cap's
progress, the commitment's balance and burn-down, the year-end projection; an issued period shows its issued
invoice; an issued invoice changed outside the application is withheld and reported, never shown.

The usage is written here month by month, so every expected figure follows from the contract's prices:
Berlin infers 125,000 units a month (at 0.02: 2,500.00), Munich labels 3,200 (200 free, at 0.50: 1,500.00), so
each whole month counts 4,000.00 towards the account cap (limit 40,000.00) and the prepaid commitment (6,000.00).
December, the open period, has 60,000 and 1,000 so far (1,200.00 + 400.00). August and September are issued
through the lifecycle (so their documents' digests are in the audit log), October and November are open.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from db.test_lifecycle import _issue
from db.test_tampering import _tamper
from sqlalchemy import select

from audit.log import AuditEntry
from dsl.compile import compile_file
from engine.periods import Period
from ingest.pipeline import ingest_events
from ledger.contracts import save_contract
from ledger.models import Invoice
from metering.events import read_events
from review.dashboard_cache import DashboardCache

from .conftest import CONTRACTS

GLOBEX = "globex"
WHOLE_MONTH = {("ber", "infer"): 125_000, ("muc", "label"): 3_200}
DECEMBER_SO_FAR = {("ber", "infer"): 60_000, ("muc", "label"): 1_000}
MONTH_SPEND = Decimal(125000) * Decimal("0.02") + (3_200 - 200) * Decimal("0.50")           # 4,000.00
DECEMBER_SPEND = Decimal(60000) * Decimal("0.02") + (1_000 - 200) * Decimal("0.50")         # 1,600.00
CAP, COMMITMENT = Decimal("40000.00"), Decimal("6000.00")
AUGUST, SEPTEMBER, DECEMBER = Period(2026, 8), Period(2026, 9), Period(2026, 12)


def _events(tmp_path) -> str:
    lines, number = [], 0
    months = [(Period(2026, m), WHOLE_MONTH) for m in (8, 9, 10, 11)] + [(DECEMBER, DECEMBER_SO_FAR)]
    for period, quantities in months:
        for (site, category), quantity in quantities.items():
            number += 1
            lines.append(json.dumps({
                "specversion": "1.0", "id": f"globex-{number}", "source": "test/globex", "type": "unit.processed",
                "time": f"{period}-10T10:00:00Z",
                "data": {"customer": GLOBEX, "site": site, "category": category, "quantity": quantity}}))
    path = tmp_path / "globex.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.fixture
def globex(portal_sessions, portal_clock, tmp_path):
    """The globex contract, its usage to 16 December 2026 (the portal's clock), August and September issued."""
    portal_clock.now = dt.datetime(2026, 12, 16, 11, 0, tzinfo=dt.UTC)     # day 16 of 31 in Berlin
    with portal_sessions.begin() as session:
        save_contract(session, compile_file(str(CONTRACTS / "globex-research.pricing")), author="test")
    for _ in ingest_events(portal_sessions, read_events(_events(tmp_path))):
        pass
    numbers = {period: _issue(portal_sessions, GLOBEX, period).number for period in (AUGUST, SEPTEMBER)}
    return numbers


def test_the_account_year_is_the_engines_counts_and_the_months_invoices(signed_in_client, globex):
    data = signed_in_client("finance").get(f"/dashboard/{GLOBEX}/data").get_json()
    assert data["period"] == str(DECEMBER) and data["status"] == "open"
    account = data["account"]
    assert (account["year_start"], account["year_end"]) == ("2026-08", "2027-07")
    spent = 4 * MONTH_SPEND + DECEMBER_SPEND
    assert Decimal(account["cap"]["counted"]) == spent and Decimal(account["cap"]["limit"]) == CAP
    assert Decimal(account["cap"]["remaining"]) == CAP - spent
    commitment = account["commitment"]
    assert commitment["billing"] == "prepaid" and Decimal(commitment["drawn"]) == COMMITMENT
    assert Decimal(commitment["balance"]) == 0 and Decimal(commitment["spent"]) == spent
    months = account["months"]
    assert [(m["period"], m["source"]) for m in months[:5]] == [
        ("2026-08", "issued"), ("2026-09", "issued"), ("2026-10", "computed"), ("2026-11", "computed"),
        ("2026-12", "projected")]
    assert [m["period"] for m in months] == [str(AUGUST.shift(n)) for n in range(12)]
    assert [Decimal(m["billed"]) for m in months[:4]] == [MONTH_SPEND] * 4
    # the cumulative line of the burn-down is the running sum of the months above it
    running = Decimal(0)
    for month in months:
        running += Decimal(month["billed"])
        assert Decimal(month["cumulative"]) == running


def test_the_projection_runs_the_years_rate_to_its_end(signed_in_client, globex):
    data = signed_in_client("finance").get(f"/dashboard/{GLOBEX}/data").get_json()
    projection, account = data["account"]["projection"], data["account"]
    assert Decimal(projection["rate"]) == MONTH_SPEND                 # the average of August to November
    assert "4 earlier months" in projection["method"]
    # December counts the larger of its 1,600.00 so far and the rate; January to July the rate
    year_counted = 4 * MONTH_SPEND + max(DECEMBER_SPEND, MONTH_SPEND) + 7 * MONTH_SPEND
    assert Decimal(projection["year_counted"]) == year_counted
    assert Decimal(projection["year_spend"]) == min(year_counted, CAP)
    assert Decimal(account["cap"]["projected_overrun"]) == year_counted - CAP
    # the running count reaches 40,000.00 after ten months of 4,000.00: May 2027
    assert account["cap"]["projected_reached_in"] == str(AUGUST.shift(int(CAP / MONTH_SPEND) - 1))
    assert account["commitment"]["met_in"] == "2026-09" and account["commitment"]["shortfall_in"] is None
    assert "reached in 2027-05" in data["display"]["acct:proj:cap"]


def test_the_page_shows_the_account_progress_burn_down_and_projection(signed_in_client, globex):
    page = signed_in_client("finance").get(f"/dashboard/{GLOBEX}").get_data(as_text=True)
    assert "Account, contract year 2026-08 to 2027-07" in page
    assert "€17,600.00 of €40,000.00" in page and "€22,400.00 left" in page
    assert "€0.00 left of €6,000.00" in page
    assert "Year-end projection" in page and "Run rate" in page and "earlier months" in page
    assert page.count('class="month projected"') == 8 and page.count('class="month issued"') == 2
    assert "limit-cap" in page and "limit-commit" in page
    assert "Commitment drawdown" in page or "drawn from the prepaid balance" not in page


def test_an_issued_period_shows_its_invoice_and_its_number(signed_in_client, globex, portal_sessions):
    client = signed_in_client("finance")
    page = client.get(f"/dashboard/{GLOBEX}?period=2026-09").get_data(as_text=True)
    number = globex[SEPTEMBER]
    assert f"Invoice <strong>{number}</strong>" in page and f"invoice {number}" in page
    for wording in ("Charges so far", "if the period closed now", "day 30 of 30", "Counted so far"):
        assert wording not in page
    data = client.get(f"/dashboard/{GLOBEX}/data?period=2026-09").get_json()
    with portal_sessions() as session:
        document = session.scalar(select(Invoice.document).where(Invoice.number == number))
    assert data["status"] == "issued" and data["invoice_number"] == number and data["elapsed_days"] is None
    assert data["totals"] == {kind: document["totals"][kind] for kind in data["totals"]}
    assert [(s["site"], s["charges"]) for s in data["sites"]] == [(s["site"], s["total"]) for s in document["sites"]]
    assert [line["kind"] for line in data["account_lines"]] == [line["kind"] for line in document["account"]["lines"]]
    assert "Year-end projection" not in page and data["account"]["projection"] is None
    assert [m["source"] for m in data["account"]["months"]] == ["issued", "issued"]     # nothing projected
    assert data["account"]["cap"]["projected_reached_in"] is None


def test_an_open_period_says_it_is_open(signed_in_client, globex):
    page = signed_in_client("finance").get(f"/dashboard/{GLOBEX}").get_data(as_text=True)
    assert "Charges so far" in page and "day 16 of 31" in page


def _tamper_september(portal_sessions, number: str) -> None:
    with portal_sessions() as session:
        row = session.scalar(select(Invoice).where(Invoice.number == number))
        json_type = "JSON" if session.connection().dialect.name == "postgresql" else "TEXT"
        invoice_id = row.id
    _tamper(portal_sessions, invoice_id, "UPDATE invoices SET document = CAST(replace(CAST(document AS TEXT), "
                                         f"'Munich', 'Forged') AS {json_type}) WHERE id = :id")


def test_a_tampered_issued_invoice_is_withheld_and_reported(signed_in_client, globex, portal_sessions):
    number = globex[SEPTEMBER]
    client = signed_in_client("finance")
    before = client.get(f"/dashboard/{GLOBEX}/data?period=2026-09").get_json()
    _tamper_september(portal_sessions, number)
    with portal_sessions() as session:
        forged = session.scalar(select(Invoice.document).where(Invoice.number == number))
    assert "Forged" in json.dumps(forged) and "Forged" not in json.dumps(before)   # the stored document changed
    response = client.get(f"/dashboard/{GLOBEX}?period=2026-09")
    page = response.get_data(as_text=True)
    assert response.status_code == 500
    assert f"the stored document of invoice {number} is not the one issued" in page
    assert "Forged" not in page
    data = client.get(f"/dashboard/{GLOBEX}/data?period=2026-09")
    assert data.status_code == 500 and data.get_json()["status"] == "withheld"
    # the open period still shows, and says September is withheld and left out
    current = client.get(f"/dashboard/{GLOBEX}")
    text = current.get_data(as_text=True)
    assert current.status_code == 200 and "2026-09: the stored document of invoice" in text
    months = client.get(f"/dashboard/{GLOBEX}/data").get_json()["account"]["months"]
    assert "2026-09" not in [m["period"] for m in months[:4]]
    with portal_sessions() as session:
        failures = session.scalars(select(AuditEntry).where(AuditEntry.action.like("dashboard.%"),
                                                            AuditEntry.outcome == "failure")).all()
    assert {entry.resource for entry in failures} == {f"dashboard:{GLOBEX}/2026-09"}
    assert all(entry.details["code"] == "tampered" for entry in failures) and len(failures) >= 3


def test_the_cache_checks_the_shown_invoice_every_time_and_the_others_at_each_recheck(globex, portal_sessions):
    clock = [0.0]
    cache = DashboardCache(clock=lambda: clock[0], recheck=2)
    with portal_sessions() as session:
        september = cache.get(session, GLOBEX, SEPTEMBER)
        december = cache.get(session, GLOBEX, DECEMBER)
    assert september.tampered is None and december.withheld == ()
    computations = cache.computations
    _tamper_september(portal_sessions, globex[SEPTEMBER])
    with portal_sessions() as session:
        shown = cache.get(session, GLOBEX, SEPTEMBER)        # its own page: checked on every request
        assert shown is not september and "is not the one issued" in shown.tampered
        assert cache.get(session, GLOBEX, DECEMBER) is december   # within the recheck interval: kept
        clock[0] = 3
        rechecked = cache.get(session, GLOBEX, DECEMBER)
    assert rechecked is not december and [p for p, _ in rechecked.withheld] == [SEPTEMBER]
    assert cache.computations > computations
