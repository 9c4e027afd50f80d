"""The reconciliation pages (admin_app/reconciliation.py): finance sees each period's reports with the
discrepancies highlighted and linked to the events behind them, records an explanation (CSRF, audited; a
refused one keeps what was typed, the reason beside the field), runs the reconciliation again; no other
role may reach any of it."""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import re
from dataclasses import replace
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from audit.log import AuditEntry
from engine.periods import Period
from invoicing.journal import Accounts, Posting, agreement, invoice_entries
from ledger.models import Invoice
from review.models import Reconciliation, ReconciliationExplanation
from review.reconcile import (
    DISCREPANCY,
    EventQuery,
    Finding,
    Report,
    Threshold,
    explain,
    reconcile,
    store_report,
)

from .conftest import CUSTOMER, OTHER_CUSTOMER, TEST_ACTOR, csrf_token, form_post

JUNE = "2026-06"
PAGES = ("/reconciliation", f"/reconciliation/{JUNE}", f"/reconciliation/{JUNE}/events?customer={CUSTOMER}",
         "/reconciliation/journal", f"/reconciliation/journal?period={JUNE}")


@pytest.fixture
def reports(portal_sessions) -> dict[str, int]:
    """June of the customer fails (its draft is a copy of April's, made without `billing close`); February of
    the other customer (issued) passes."""
    ids = {}
    with portal_sessions.begin() as session:
        for name, customer, period in (("failed", CUSTOMER, Period(2026, 6)),
                                       ("passed", OTHER_CUSTOMER, Period(2026, 2))):
            report = reconcile(session, customer, period, Threshold(Decimal("0.01"), Decimal(0)))
            ids[name] = store_report(session, report, TEST_ACTOR).id
    return ids


def text_of(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def test_finance_sees_the_periods_and_the_failed_report_highlighted(signed_in_client, reports, portal_sessions):
    client = signed_in_client("finance")
    index = text_of(client.get("/reconciliation"))
    assert "2026-06" in index and "2026-02" in index
    assert re.search(r"acme-health</td>\s*<td><span class=\"verdict verdict-failed\">failed", index)
    assert re.search(r"northwind</td>\s*<td><span class=\"verdict verdict-passed\">passed", index)
    assert "US$0.00" in index and "USD 0.00" not in index   # money as people read it (engine.money.display)

    response = client.get(f"/reconciliation/{JUNE}")
    assert response.status_code == 200
    page = text_of(response)
    assert 'class="panel report report-failed"' in page and 'role="alert"' in page
    with portal_sessions() as session:
        stored = session.get(Reconciliation, reports["failed"]).report
    discrepancies = [f for f in stored["findings"] if f["status"] == "discrepancy"]
    assert discrepancies and page.count('<tr class="finding-discrepancy">') == 2 * len(discrepancies)
    assert "no dashboard snapshot of the period" in page
    with portal_sessions() as session:
        actions = [e.action for e in session.scalars(select(AuditEntry).order_by(AuditEntry.sequence))]
    assert actions[-2:] == ["reconciliation.list", "reconciliation.view"]


def test_each_discrepancy_links_to_the_events_behind_it(signed_in_client, reports):
    client = signed_in_client("finance")
    page = client.get(f"/reconciliation/{JUNE}").get_data(as_text=True)
    alert = page[page.index('role="alert"'):page.index("</table>", page.index('role="alert"'))]
    links = [html.unescape(link) for link in re.findall(r'href="(/reconciliation/2026-06/events\?[^"]+)"', alert)]
    assert links
    for link in links:
        assert f"customer={CUSTOMER}" in link and "from=2026-06-01" in link and "to=2026-06-30" in link
    events = client.get(links[0])
    assert events.status_code == 200
    body = text_of(events)
    count = int(re.search(r"<strong>(\d+)</strong> events?", body).group(1))
    assert count > 0 and body.count('<td class="mono small">') == min(count, 500)   # one row per event


def test_an_explanation_is_recorded_audited_and_a_refused_one_keeps_the_text(signed_in_client, reports,
                                                                           portal_sessions):
    client = signed_in_client("finance")
    page = f"/reconciliation/{JUNE}"
    typed = "Copied from April by the fixture; " + "x" * 2000
    refused = form_post(client, f"{page}/explain", {"reconciliation": reports["failed"], "text": typed}, page=page)
    assert refused.status_code == 400
    body = text_of(refused)
    assert typed in body and "At most 2,000 characters." in body
    assert re.search(r'class="field has-error', body)

    empty = form_post(client, f"{page}/explain", {"reconciliation": reports["failed"], "text": "  "}, page=page)
    assert empty.status_code == 400 and "Say why these discrepancies may stand" in text_of(empty)

    reason = "The June draft was copied from April by hand; FIN-7 replaces it."
    done = form_post(client, f"{page}/explain", {"reconciliation": reports["failed"], "text": reason}, page=page)
    assert done.status_code == 302
    shown = text_of(client.get(page))
    assert reason in shown and "verdict-explained" in shown
    with portal_sessions() as session:
        explanation = session.get(ReconciliationExplanation, reports["failed"])
        assert (explanation.explained_by, explanation.text) == ("finance@example.com", reason)
        entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "reconciliation.explain")).one()
        assert entry.actor == "finance@example.com" and entry.details["text"] == reason

    again = form_post(client, f"{page}/explain", {"reconciliation": reports["failed"], "text": "Second thoughts"},
                      page="/reconciliation")
    assert again.status_code == 400 and "explained already" in text_of(again)

    passed = form_post(client, "/reconciliation/2026-02/explain", {"reconciliation": reports["passed"], "text": "x"},
                       page="/reconciliation")
    assert passed.status_code == 400 and "nothing to explain" in text_of(passed)
    elsewhere = form_post(client, f"{page}/explain", {"reconciliation": reports["passed"], "text": "x"}, page=page)
    assert elsewhere.status_code == 404      # a report of another period


def test_running_again_stores_a_report_and_audits_it(signed_in_client, reports, portal_sessions):
    client = signed_in_client("finance")
    page = f"/reconciliation/{JUNE}"
    token = csrf_token(client.get(page).get_data(as_text=True))
    response = client.post(f"{page}/run", data={"csrf_token": token, "customer": CUSTOMER})
    assert response.status_code == 302
    with portal_sessions() as session:
        runs = session.scalars(select(Reconciliation).where(Reconciliation.customer == CUSTOMER)).all()
        assert len(runs) == 2 and runs[-1].ran_by == "finance@example.com" and not runs[-1].passed
        assert session.scalars(select(AuditEntry).where(AuditEntry.action == "reconciliation.run",
                                                        AuditEntry.actor == "finance@example.com")).one()
    assert "1 failed" in text_of(client.get(page))
    assert client.post(f"{page}/run", data={"customer": CUSTOMER}).status_code == 400     # no CSRF token


@pytest.mark.parametrize("principal", ["admin", "deal_desk", "customer_finance", "other_customer"])
def test_no_other_role_may_reach_reconciliation(principal, signed_in_client, reports):
    client = signed_in_client(principal)
    for path in PAGES:
        assert client.get(path).status_code == 403, path
    assert client.post(f"/reconciliation/{JUNE}/explain", data={}).status_code == 403
    assert signed_in_client("anonymous").get("/reconciliation").status_code == 302


def test_pages_without_reports_or_with_a_bad_period(signed_in_client):
    client = signed_in_client("finance")
    assert "No reconciliation has run yet" in text_of(client.get("/reconciliation"))
    assert "No reconciliation of 2026-06 yet" in text_of(client.get(f"/reconciliation/{JUNE}"))
    assert client.get("/reconciliation/June").status_code == 404
    assert client.get(f"/reconciliation/{JUNE}/events?customer=acme-health&from=junk").status_code == 200


# --- the list at real size: filtered, sorted and paged by the database ------------------------------------------

def store_runs(sessions, customers: int, periods: int) -> None:
    """`customers` × `periods` stored runs; customer n's period p failed when n + p is a multiple of 4, with a
    money difference of n + p; the first failed one is explained."""
    with sessions.begin() as session:
        first = None
        for n in range(customers):
            for p in range(periods):
                period = Period(2024, 1).shift(p)
                failed = (n + p) % 4 == 0
                findings = (Finding("current", "x", "s1", "", "amount", Decimal(0), Decimal(n + p), DISCREPANCY,
                                    EventQuery(f"c-{n:02d}", period.first_day, period.last_day)),) if failed else ()
                report = Report(f"c-{n:02d}", period, "GBP", 2, Threshold(Decimal(0), Decimal(0)), None, None, None,
                                dt.datetime(2026, 7, 1, tzinfo=dt.UTC), findings, {})
                row = store_report(session, report, TEST_ACTOR)
                if failed and first is None:
                    first = row
        explain(session, first, TEST_ACTOR, "known")


def listed(page: str) -> list[tuple[str, str, str]]:
    """(period, customer, outcome) of each row shown."""
    return re.findall(r'<td><a href="/reconciliation/(\d{4}-\d{2})">[^<]*</a></td>\s*<td>([^<]+)</td>\s*'
                      r'<td><span class="verdict verdict-(\w+)">', page)


def test_the_list_is_paged_filtered_and_sorted_by_the_database(signed_in_client, portal_sessions):
    store_runs(portal_sessions, 5, 24)     # 120 reports: three pages of 50
    client = signed_in_client("finance")
    first = text_of(client.get("/reconciliation"))
    rows = listed(first)
    assert len(rows) == 50 and "120 reports; page 1 of 3." in first
    assert rows[0][0] == "2025-12" and [r[0] for r in rows] == sorted((r[0] for r in rows), reverse=True)
    last = listed(text_of(client.get("/reconciliation?page=3")))
    assert len(last) == 20 and last[-1][0] == "2024-01"
    assert listed(text_of(client.get("/reconciliation?page=99"))) == last       # past the end: the last page

    one = listed(text_of(client.get("/reconciliation?customer=c-03&sort=period&dir=asc")))
    assert [r[1] for r in one] == ["c-03"] * 24 and one[0][0] == "2024-01"
    failed = listed(text_of(client.get("/reconciliation?outcome=failed")))
    assert len(failed) == 30 - 1 and {r[2] for r in failed} == {"failed"}     # 30 failed, one explained
    assert [r[2] for r in listed(text_of(client.get("/reconciliation?outcome=explained")))] == ["explained"]
    period = listed(text_of(client.get("/reconciliation?period=2025-06&sort=customer&dir=desc")))
    assert [r[1] for r in period] == ["c-04", "c-03", "c-02", "c-01", "c-00"]
    by_difference = text_of(client.get("/reconciliation?sort=difference&dir=desc"))
    # the largest failed difference is 24 (n + p a multiple of 4), four times: ties fall to the newest period
    assert [r[:2] for r in listed(by_difference)[:2]] == [("2025-12", "c-01"), ("2025-11", "c-02")]
    assert "£24.00" in by_difference
    bad = client.get("/reconciliation?period=June&sort=nonsense&dir=up&page=x")
    assert bad.status_code == 200 and "Write the period as YYYY-MM" in text_of(bad)
    assert len(listed(text_of(bad))) == 50
    with portal_sessions() as session:
        entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "reconciliation.list")
                                .order_by(AuditEntry.sequence.desc())).first()
    assert entry.details["of"] == 120 and entry.details["page"] == 1


# --- the journal download ------------------------------------------------------------------------------------------

def test_finance_downloads_the_journal_of_a_month_audited(signed_in_client, portal_sessions, portal_clock):
    month = portal_clock().astimezone(ZoneInfo("Europe/London")).strftime("%Y-%m")
    client = signed_in_client("finance")
    form = client.get("/reconciliation/journal")
    assert form.status_code == 200 and f'value="{month}"' in text_of(form)
    response = client.get(f"/reconciliation/journal?period={month}")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert f'filename="journal-test-{month}.csv"' in response.headers["Content-Disposition"]
    assert response.headers["Cache-Control"] == "no-store"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    with portal_sessions() as session:     # the fixture issued three invoices today (no legal fields: due = total)
        issued = session.scalars(select(Invoice).where(Invoice.status == "issued")).all()
    assert {r["document"] for r in rows} == {row.number or f"invoice #{row.id}" for row in issued}
    for row in issued:
        own = [r for r in rows if r["document"] == (row.number or f"invoice #{row.id}")]
        assert sum(Decimal(r["debit"]) for r in own) == sum(Decimal(r["credit"]) for r in own) \
            == Decimal(row.document["totals"]["total"])
        lines = invoice_entries(row.document, Accounts(), Posting(portal_clock().date(), "x", "invoice"))
        assert all(expected == found for _, expected, found in agreement(row.document, lines))
    with portal_sessions() as session:
        entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "journal.download")).one()
    assert entry.resource == f"journal:{month}" and entry.actor == "finance@example.com"
    assert entry.details["lines"] == len(rows)

    empty = client.get("/reconciliation/journal?period=2020-01")
    assert empty.status_code == 200 and empty.get_data(as_text=True).count("\n") == 1   # the header only
    bad = client.get("/reconciliation/journal?period=June")
    assert bad.status_code == 400 and "Write the month as YYYY-MM" in text_of(bad)


def test_a_wrong_accounts_table_is_said_and_audited_not_a_traceback(signed_in_client, portal_app, portal_sessions,
                                                                    portal_clock):
    environment = portal_app.config["BILLING_ENVIRONMENT"]
    portal_app.config["BILLING_ENVIRONMENT"] = replace(environment, accounts={"recievable": "1100"})
    response = signed_in_client("finance").get("/reconciliation/journal?period=2026-06")
    assert response.status_code == 409 and "recievable" in text_of(response)
    with portal_sessions() as session:
        entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "journal.download")).one()
    assert entry.outcome == "failure"
