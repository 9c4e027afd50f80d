"""The usage export (admin_app/usage.py, review/usage_export.py): what a customer's finance team reconciles an
invoice against. Its billed rows add up to the invoice's usage lines, its other rows to the invoice's "not
billed" section; it is scoped to the customer, audited like any download, and safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from sqlalchemy import select

from audit.log import DENIED, FAILURE, SUCCESS, AuditEntry
from engine.periods import Period
from ledger.billing_from_db import invoice_from_db
from ledger.models import Invoice
from metering.models import LateRollup, Rollup

from .conftest import CUSTOMER, OTHER_CUSTOMER


def download(client, customer: str, since: str, until: str):
    return client.get(f"/usage/{customer}/csv", query_string={"since": since, "until": until})


def rows_of(response) -> list[dict]:
    assert response.status_code == 200 and response.mimetype == "text/csv"
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def sums(rows, status: str) -> dict[tuple[str, str], tuple[Decimal, int]]:
    totals: dict[tuple[str, str], tuple[Decimal, int]] = {}
    for row in rows:
        if row["status"] == status:
            quantity, events = totals.get((row["site"], row["category"]), (Decimal(0), 0))
            totals[(row["site"], row["category"])] = (quantity + Decimal(row["quantity"]), events + int(row["events"]))
    return totals


def usage_lines(document: dict) -> dict[tuple[str, str], tuple[Decimal, int]]:
    return {(site["site"], line["category"]): (Decimal(line["quantity"]), line["events"])
            for site in document["sites"] for line in site["lines"] if line["kind"] == "usage"}


def not_billed(document: dict) -> dict[tuple[str, str, str], tuple[Decimal, int]]:
    """The invoice's "not billed" entries that are usage (conflicts are rejected events, listed by neither)."""
    return {(entry["reason"], entry["site"], entry["category"]): (Decimal(entry["quantity"]), entry["events"])
            for entry in document["unbilled"] if entry["reason"] != "conflict"}


def not_billed_rows(rows) -> dict[tuple[str, str, str], tuple[Decimal, int]]:
    reasons = {row["status"].removeprefix("not billed: ") for row in rows if row["status"].startswith("not billed: ")}
    return {(reason, site, category): tally for reason in reasons
            for (site, category), tally in sums(rows, f"not billed: {reason}").items()}


@pytest.mark.parametrize("who, customer, periods", [
    ("customer_finance", CUSTOMER, ("2026-04", "2026-05", "2026-06")),
    ("finance", CUSTOMER, ("2026-05",)),
])
def test_the_billed_rows_add_up_to_the_invoice(signed_in_client, portal_sessions, who, customer, periods):
    client = signed_in_client(who)
    for text in periods:
        period = Period.parse(text)
        rows = rows_of(download(client, customer, period.first_day.isoformat(), period.last_day.isoformat()))
        with portal_sessions() as session:
            document = invoice_from_db(session, customer, period).document
            stored = session.scalar(select(Invoice.document).where(
                Invoice.customer == customer, Invoice.period == period, Invoice.status == "issued"))
        assert usage_lines(document), f"{customer} {period}: no usage lines to compare with"
        assert sums(rows, "billed") == usage_lines(document), f"{customer} {period}"
        if stored is not None:   # what the issued invoice froze is what the export says it billed
            assert sums(rows, "billed") == usage_lines(stored)
        assert not_billed_rows(rows) == not_billed(document), f"{customer} {period}"
        for row in rows:
            assert row["customer"] == customer and period.first_day.isoformat() <= row["day"] <= \
                period.last_day.isoformat()
            assert row["invoice_period"] == (text if row["status"] == "billed" else "")


def test_an_unknown_category_is_listed_as_not_billed(signed_in_client):
    rows = rows_of(download(signed_in_client("customer_finance"), CUSTOMER, "2026-05-01", "2026-05-31"))
    assert [(row["category"], row["quantity"], row["events"]) for row in rows
            if row["status"] == "not billed: unknown category"] == [("ocr", "5", "1")]


def test_a_range_across_periods_keeps_each_day_with_its_invoice(signed_in_client):
    rows = rows_of(download(signed_in_client("customer_finance"), CUSTOMER, "2026-04-15", "2026-05-10"))
    periods = {(row["day"][:7], row["invoice_period"]) for row in rows if row["status"] == "billed"}
    assert periods == {("2026-04", "2026-04"), ("2026-05", "2026-05")}
    assert min(row["day"] for row in rows) >= "2026-04-15" and max(row["day"] for row in rows) <= "2026-05-10"


def test_another_customers_export_is_not_found_and_recorded(signed_in_client, portal_sessions):
    own = download(signed_in_client("other_customer"), OTHER_CUSTOMER, "2026-02-01", "2026-02-28")
    assert {row["customer"] for row in rows_of(own)} <= {OTHER_CUSTOMER}
    assert download(signed_in_client("other_customer"), CUSTOMER, "2026-05-01", "2026-05-31").status_code == 404
    assert download(signed_in_client("finance"), "nobody", "2026-05-01", "2026-05-31").status_code == 404
    assert signed_in_client("deal_desk").get(f"/usage/{CUSTOMER}/csv").status_code == 403
    page = signed_in_client("other_customer").get("/usage", query_string={"customer": CUSTOMER}).get_data(as_text=True)
    assert CUSTOMER not in page.replace("acme-health.", "")   # their own customer only: nothing of acme shown
    with portal_sessions() as session:
        refused = [(e.actor, e.resource, e.outcome, e.details.get("reason")) for e in session.scalars(
            select(AuditEntry).where(AuditEntry.action == "usage.download").order_by(AuditEntry.sequence))]
    assert refused[0][1:3] == ("usage:northwind/2026-02-01..2026-02-28", SUCCESS)
    assert refused[1:] == [
        ("northwind.finance@example.com", "usage:acme-health/2026-05-01..2026-05-31", DENIED, "not visible to this user"),
        ("finance@example.com", "usage:nobody/2026-05-01..2026-05-31", FAILURE, "no such customer")]


def test_a_download_is_audited(signed_in_client, portal_sessions):
    rows = rows_of(download(signed_in_client("customer_finance"), CUSTOMER, "2026-05-01", "2026-05-31"))
    with portal_sessions() as session:
        entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "usage.download")).one()
    assert (entry.actor, entry.resource, entry.outcome) == ("customer.finance@example.com",
                                                           "usage:acme-health/2026-05-01..2026-05-31", SUCCESS)
    assert entry.details == {"format": "csv", "rows": len(rows), "time_zone": "Europe/London"}


def test_cells_are_safe_in_a_spreadsheet_and_numbers_stay_numbers(signed_in_client, portal_sessions):
    with portal_sessions.begin() as session:
        session.add(Rollup(customer=CUSTOMER, site="=HYPERLINK(\"http://x\")", category="@SUM(A1)",
                           day=Period(2026, 5).first_day, quantity=Decimal("-12.50"), events=2))
    text = download(signed_in_client("customer_finance"), CUSTOMER, "2026-05-01", "2026-05-01").get_data(as_text=True)
    assert "'=HYPERLINK" in text and "'@SUM(A1)" in text
    row = next(csv.DictReader(io.StringIO(text)))
    assert (row["quantity"], row["events"], row["status"]) == ("-12.50", "2", "not billed: unknown site")


@pytest.mark.parametrize("query, message", [({"since": "2026-05-31", "until": "2026-05-01"}, "swap them"),
                                            ({"since": "31/05/2026"}, "Not a valid date value")])
def test_a_wrong_range_is_said_beside_its_field(signed_in_client, query, message):
    page = signed_in_client("customer_finance").get("/usage", query_string=query)
    assert page.status_code == 400 and message in page.get_data(as_text=True)
    assert signed_in_client("customer_finance").get(f"/usage/{CUSTOMER}/csv", query_string=query).status_code == 400


def test_the_page_shows_the_sums_the_csv_adds_up_to(signed_in_client, portal_sessions):
    page = signed_in_client("finance").get("/usage", query_string={"customer": CUSTOMER, "since": "2026-05-01",
                                                                  "until": "2026-05-31"}).get_data(as_text=True)
    assert "<td>lon-01</td><td>review</td><td>billed</td><td class=\"num\">6200</td><td class=\"num\">4</td>" in page
    assert f"/usage/{CUSTOMER}/csv?since=2026-05-01&amp;until=2026-05-31" in page
    with portal_sessions() as session:
        assert session.scalar(select(AuditEntry.resource).where(AuditEntry.action == "usage.view")) == \
            "usage:acme-health/2026-05-01..2026-05-31"


def test_late_usage_is_listed_with_the_invoice_that_bills_it(signed_in_client, portal_sessions):
    with portal_sessions.begin() as session:
        session.add(LateRollup(customer=CUSTOMER, site="lon-01", category="standard", day=Period(2026, 5).first_day,
                               quantity=Decimal("7"), events=1, billed_on=Period(2026, 6)))
        session.add(LateRollup(customer=CUSTOMER, site="lon-01", category="standard", day=Period(2026, 5).last_day,
                               quantity=Decimal("3"), events=1, billed_on=None))
        session.add(LateRollup(customer=CUSTOMER, site="lon-01", category="ocr", day=Period(2026, 5).last_day,
                               quantity=Decimal("2"), events=1, billed_on=None))
    rows = rows_of(download(signed_in_client("customer_finance"), CUSTOMER, "2026-05-01", "2026-05-31"))
    late = [(row["day"], row["category"], row["quantity"], row["status"], row["invoice_period"]) for row in rows
            if row["status"] == "billed late" or (row["category"] == "ocr" and row["day"] == "2026-05-31")]
    assert late == [("2026-05-01", "standard", "7", "billed late", "2026-06"),
                    ("2026-05-31", "ocr", "2", "not billed: unknown category", ""),
                    ("2026-05-31", "standard", "3", "billed late", "")]
