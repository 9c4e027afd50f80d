"""What-if pages (admin_app/whatif.py): preview fragment, version comparison, backtest; who may use them, what a
refusal keeps of what was typed, and what the audit log records.

The fixtures hold Acme Health's example contract and usage with invoices issued for 2026-04 and 2026-05.
Raising review's first tier from 2.00 to 2.25 costs 0.25 more on the first 1,000 review units of a period at
lon-01 (the only site billing review): 700 units in April (+175.00), 6,200 in May and 1,500 in June
(+250.00 each), counted from contracts/acme-health.events.jsonl.
"""

from __future__ import annotations

import html
import re
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from audit.log import AuditEntry
from dsl.compile import compile_source
from engine.money import display
from engine.periods import Period
from ledger.contracts import save_contract
from ledger.models import Invoice

from .conftest import CUSTOMER, csrf_token

ACME = (Path(__file__).resolve().parents[3] / "contracts" / "acme-health.pricing").read_text(encoding="utf-8")
DEARER_REVIEW = ACME.replace("up to 1_000 at 2.00", "up to 1_000 at 2.25")
BROKEN = ACME.replace("rate 0.85", "rate zero")
BACKTEST = f"/contracts/{CUSTOMER}/backtest"
PREVIEW = f"/contracts/{CUSTOMER}/preview"
COMPARE = f"/contracts/{CUSTOMER}/compare"


def token_of(client) -> str:
    return csrf_token(client.get(BACKTEST).get_data(as_text=True))


def post_preview(client, source: str, period: str):
    """As the editor's fetch() does: form fields, the CSRF token in the X-CSRFToken header, CRLF line ends."""
    return client.post(PREVIEW, data={"source": source.replace("\n", "\r\n"), "period": period},
                       headers={"X-CSRFToken": token_of(client)})


def post_backtest(client, source: str, periods: str):
    return client.post(BACKTEST, data={"source": source, "periods": periods, "csrf_token": token_of(client)})


def audit_entries(sessions, action: str) -> list[AuditEntry]:
    with sessions() as session:
        return session.scalars(select(AuditEntry).where(AuditEntry.action == action)
                               .order_by(AuditEntry.sequence)).all()


def issued_total(sessions, period: str) -> str:
    with sessions() as session:
        return session.scalar(select(Invoice).where(Invoice.customer == CUSTOMER, Invoice.status == "issued",
                                                    Invoice.period == Period.parse(period))).document["totals"]["total"]


def money(text: str) -> str:
    """The page's form of an amount of the document: the one way money is written (engine.money.display)."""
    return display(Decimal(text), "GBP")


def textarea(page: str, name: str) -> str:
    """The text area's text as a browser shows it (the newline after the tag is not part of it)."""
    found = re.search(rf'<textarea[^>]*name="{name}"[^>]*>(?:\r?\n)?(.*?)</textarea>', page, re.S)
    return html.unescape(found.group(1))


@pytest.mark.parametrize("role", ["deal_desk", "finance"])
def test_the_deal_desk_and_finance_may_use_every_what_if_page(signed_in_client, role):
    client = signed_in_client(role)
    assert client.get(BACKTEST).status_code == 200
    assert client.get(COMPARE).status_code == 200
    assert post_preview(client, ACME, "2026-05").status_code == 200


@pytest.mark.parametrize("role", ["admin", "customer_finance", "other_customer"])
def test_other_roles_may_not(signed_in_client, role):
    client = signed_in_client(role)
    for path in (BACKTEST, COMPARE, f"{COMPARE}?a=1&b=1&period=2026-05"):
        assert client.get(path).status_code == 403
    assert client.post(PREVIEW, data={"source": ACME, "period": "2026-05"}).status_code in (400, 403)


def test_an_unknown_contract_is_not_found_and_recorded(signed_in_client, portal_sessions):
    client = signed_in_client("deal_desk")
    assert client.get("/contracts/nobody/compare").status_code == 404
    assert client.get("/contracts/nobody/backtest").status_code == 404
    entries = audit_entries(portal_sessions, "contract.compare")
    assert [(e.resource, e.outcome) for e in entries] == [("contract:nobody", "failure")]


def test_a_preview_of_the_saved_text_shows_the_issued_invoice(signed_in_client, portal_sessions):
    client = signed_in_client("deal_desk")
    fragment = post_preview(client, ACME, "2026-05").get_data(as_text=True)
    assert 'data-outcome="invoice"' in fragment and "<html" not in fragment
    assert f'data-total="{issued_total(portal_sessions, "2026-05")}"' in fragment
    assert "London Bridge" in fragment and "Site total" in fragment
    assert re.search(r"Difference</th><td class=\"num same\">£0.00<", fragment)


def test_a_preview_of_a_changed_rate_shows_the_new_total_and_the_difference(signed_in_client, portal_sessions):
    client = signed_in_client("deal_desk")
    fragment = post_preview(client, DEARER_REVIEW, "2026-05").get_data(as_text=True)
    total = Decimal(issued_total(portal_sessions, "2026-05"))
    shown = Decimal(re.search(r'data-total="([^"]+)"', fragment).group(1))
    assert shown - total == Decimal("250.00")
    assert 'class="num more">+£250.00<' in fragment


def test_a_refused_preview_says_why_beside_the_field(signed_in_client, portal_sessions):
    client = signed_in_client("deal_desk")
    broken = post_preview(client, BROKEN, "2026-05").get_data(as_text=True)
    line = next(n for n, text in enumerate(ACME.splitlines(), 1) if "rate 0.85" in text)
    assert 'data-outcome="refused"' in broken and 'data-field="source"' in broken
    assert f"{line}:" in broken and "unexpected" in broken

    period = post_preview(client, ACME, "May").get_data(as_text=True)
    assert 'data-field="period"' in period and "YYYY-MM" in period
    outside = post_preview(client, ACME, "2025-01").get_data(as_text=True)
    assert 'data-field="period"' in outside and "outside the contract" in outside

    entries = audit_entries(portal_sessions, "contract.preview")
    assert [e.outcome for e in entries] == ["failure"] * 3
    assert entries[0].actor == "deal.desk@example.com" and entries[0].details["field"] == "source"


def test_a_preview_needs_the_csrf_token(signed_in_client):
    client = signed_in_client("deal_desk")
    assert client.post(PREVIEW, data={"source": ACME, "period": "2026-05"}).status_code == 400


def test_comparing_two_versions_shows_the_text_diff_and_the_invoice_difference(signed_in_client, portal_sessions):
    with portal_sessions.begin() as session:
        save_contract(session, compile_source(DEARER_REVIEW.encode(), "v2"), effective=Period(2026, 6),
                      author="test", comment="dearer review")
    client = signed_in_client("finance")
    page = client.get(f"{COMPARE}?a=1&b=2&period=2026-06").get_data(as_text=True)
    assert re.search(r'<tr class="diff-removed">.*?<code>\s*up to 1_000 at 2.00</code>', page, re.S)
    assert re.search(r'<tr class="diff-added">.*?<code>\s*up to 1_000 at 2.25</code>', page, re.S)
    london = re.search(r"<tr class=\"changed\">\s*<td>London Bridge.*?</tr>", page, re.S).group(0)
    assert "+£250.00" in london
    leeds = re.search(r"<tr class=\"\">\s*<td>Leeds.*?</tr>", page, re.S).group(0)
    assert "+" not in leeds
    total = re.search(r'<tr class="total-row">.*?</tr>', page, re.S).group(0)
    assert "<strong>" not in total and total.count("+£250.00") == 2     # usage and total

    default = client.get(COMPARE).get_data(as_text=True)         # the two newest, the last issued period
    assert 'value="1" selected' in default and 'value="2" selected' in default
    assert 'value="2026-05"' in default and "Invoice of 2026-05" in default

    entries = audit_entries(portal_sessions, "contract.compare")
    assert entries[0].details == {"a": 1, "b": 2, "period": "2026-06"} and entries[0].outcome == "success"


def test_a_refused_comparison_keeps_what_was_asked(signed_in_client):
    client = signed_in_client("deal_desk")
    page = client.get(f"{COMPARE}?a=1&b=9&period=June").get_data(as_text=True)
    assert re.search(r'id="b-error">There is no version 9', page) is None   # the period is checked first
    assert 'id="period-error"' in page and 'value="June"' in page
    page = client.get(f"{COMPARE}?a=1&b=9&period=2026-05").get_data(as_text=True)
    assert 'id="b-error">There is no version 9 of' in page
    assert '<option value="9" selected>9</option>' in page
    page = client.get(f"{COMPARE}?a=x&b=1&period=2026-05").get_data(as_text=True)
    assert 'id="a-error">Choose a version number' in page


def test_the_backtest_form_starts_from_the_newest_version(signed_in_client, portal_sessions):
    client = signed_in_client("deal_desk")
    page = client.get(BACKTEST).get_data(as_text=True)
    assert textarea(page, "source") == ACME
    assert 'name="periods"' in page and 'value="6"' in page
    assert audit_entries(portal_sessions, "contract.view")[-1].details == {"page": "backtest", "version": 1}


def test_a_backtest_shows_each_closed_period_and_site_with_totals(signed_in_client, portal_sessions):
    client = signed_in_client("deal_desk")
    page = post_backtest(client, DEARER_REVIEW, "6").get_data(as_text=True)
    periods = re.findall(r'<tbody class="backtest-period" data-period="([^"]+)"', page)
    assert periods == ["2026-04", "2026-05"]
    april = re.search(r'data-period="2026-04".*?</tbody>', page, re.S).group(0)
    assert "+£175.00" in april and money(issued_total(portal_sessions, "2026-04")) in april
    assert 'id="backtest-difference">+£425.00<' in page
    assert "2026-06 (draft)" in page                          # the fixture's draft: not closed
    assert textarea(page, "source") == DEARER_REVIEW
    entry = audit_entries(portal_sessions, "contract.backtest")[-1]
    assert entry.outcome == "success" and entry.details["periods"] == ["2026-04", "2026-05"]
    assert entry.details["difference"] == "425.00"


def test_a_refused_backtest_keeps_the_text_and_says_why_beside_the_field(signed_in_client, portal_sessions):
    client = signed_in_client("deal_desk")
    page = post_backtest(client, BROKEN, "6").get_data(as_text=True)
    assert textarea(page, "source") == BROKEN
    assert 'id="source-error">The draft has 1 error' in page and "unexpected" in page
    page = post_backtest(client, ACME, "0").get_data(as_text=True)
    assert 'id="periods-error">Choose between 1 and 36 periods.' in page and 'value="0"' in page
    assert textarea(page, "source") == ACME
    page = post_backtest(client, ACME.replace('"acme-health"', '"acme-2"', 1), "2").get_data(as_text=True)
    assert "not &#39;acme-health&#39;" in page or "not 'acme-health'" in page
    assert [e.outcome for e in audit_entries(portal_sessions, "contract.backtest")] == ["failure"] * 3
