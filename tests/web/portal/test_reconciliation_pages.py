"""The reconciliation pages (admin_app/reconciliation.py): finance sees each period's reports with the
discrepancies highlighted and linked to the events behind them, records an explanation (CSRF, audited; a
refused one keeps what was typed, the reason beside the field), runs the reconciliation again; no other
role may reach any of it."""

from __future__ import annotations

import html
import re
from decimal import Decimal

import pytest
from sqlalchemy import select

from audit.log import AuditEntry
from engine.periods import Period
from review.models import Reconciliation, ReconciliationExplanation
from review.reconcile import Threshold, reconcile, store_report

from .conftest import CUSTOMER, OTHER_CUSTOMER, TEST_ACTOR, csrf_token, form_post

JUNE = "2026-06"
PAGES = ("/reconciliation", f"/reconciliation/{JUNE}", f"/reconciliation/{JUNE}/events?customer={CUSTOMER}")


@pytest.fixture
def reports(portal_sessions) -> dict[str, int]:
    """June of the customer fails (its draft is a copy of April's, made without `billing close`); February of
    the other customer (issued) passes."""
    ids = {}
    with portal_sessions.begin() as session:
        for name, customer, period in (("failed", CUSTOMER, Period(2026, 6)),
                                       ("passed", OTHER_CUSTOMER, Period(2026, 2))):
            report = reconcile(session, customer, period, Threshold(Decimal("0.01"), Decimal("0")))
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
