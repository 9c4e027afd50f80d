"""Money is written one way on every portal page (issue #14 item 6): engine.money.display in the environment's
locale, through the portal's `money` filter: `£7,802.00`, never `GBP 7802.00`, `5302.00 GBP` or a bare `5000.00`
beside a currency code.

The test signs in as finance (and as the customer's finance user), walks every page a link leads to from the
home page on the portal fixtures (issued invoices, a draft, usage, reconciliation), adds the pages only a form
reaches (a preview, a backtest), and looks in each page's text for money written another way.
"""

from __future__ import annotations

import html
import re
from decimal import Decimal
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from conftest import TEST_SELLER

from engine.money import display
from engine.periods import Period
from ledger.models import Invoice
from lifecycle.credit_notes import credit
from lifecycle.transitions import close

from .conftest import CUSTOMER, TEST_ACTOR, csrf_token, form_post

ACME = (Path(__file__).resolve().parents[3] / "contracts" / "acme-health.pricing").read_text(encoding="utf-8")
CODES = r"(?:GBP|USD|EUR|JPY|CHF)"
AMOUNT = r"[-−+]?\d[\d,_]*\.\d{2}(?!\d)"
OTHER_WAYS = (
    re.compile(rf"\b{CODES}\s*{AMOUNT}"),                       # GBP 7802.00
    re.compile(rf"(?<![\d.]){AMOUNT}\s*{CODES}\b"),             # 5302.00 GBP
    re.compile(rf"(?<![£$€\d.,]){AMOUNT}(?=\s*(?:<>\s*)+{CODES}\b)"),   # 5000.00</td><td>GBP
)
LINK = re.compile(r'<a\b[^>]*\bhref="([^"#?]+)(?:\?[^"]*)?"')
SKIP = ("/logout", "/static/", "/csv", "/pdf", "/api/", "/metrics", "/healthz", "/readyz", "/favicon.ico",
        "/environment.css", "/account/", "/login")
MAX_PAGES = 60


def visible_text(page: str) -> str:
    """The page as read: no scripts, styles, attributes or form values (an amount typed in a form is the
    user's own writing), entities decoded; tags kept as `<>` so what stands beside what still shows."""
    page = re.sub(r"<(script|style|textarea)\b.*?</\1>", "", page, flags=re.DOTALL)
    page = re.sub(r"<[^>]*>", "<>", page)
    return html.unescape(page)


def other_ways(page: str) -> list[str]:
    text = visible_text(page)
    return [match.group(0) for pattern in OTHER_WAYS for match in pattern.finditer(text)]


def crawl(client, start: str = "/") -> dict[str, str]:
    pages, queue = {}, [start]
    while queue and len(pages) < MAX_PAGES:
        path = queue.pop(0)
        if path in pages or any(part in path for part in SKIP):
            continue
        response = client.get(path)
        if response.status_code != 200 or response.mimetype != "text/html":
            continue
        page = pages[path] = response.get_data(as_text=True)
        for link in LINK.findall(page):
            target = urlsplit(urljoin(path, html.unescape(link)))
            if not target.netloc:
                queue.append(target.path)
    return pages


def with_credit_note_and_reconciliations(client, sessions) -> int:
    """What the fixtures lack for every money figure to show: June closed, approved and issued in the portal,
    a credit note of it (partly crediting one site), and reconciliation reports. Returns June's invoice id."""
    with sessions.begin() as session:
        june = close(session, CUSTOMER, Period(2026, 6), seller=TEST_SELLER)[0].id
    for step in ("approve", "issue"):
        assert form_post(client, f"/invoices/{june}/{step}", {}, page=f"/invoices/{june}?confirm={step}"
                         ).status_code == 302
    with sessions.begin() as session:
        invoice = session.get(Invoice, june)
        site = next(site["site"] for site in invoice.document["sites"] if Decimal(site["total"]) > 20)
        credit(session, invoice, TEST_ACTOR, "one voice", [(site, "12.34")], prefix="TEST")
    for period in ("2026-04", "2026-05", "2026-06"):
        assert form_post(client, f"/reconciliation/{period}/run", {"customer": ""},
                         page=f"/reconciliation/{period}").status_code == 302
    return june


def forms_only(client) -> dict[str, str]:
    """The pages only a form reaches: the editor's preview and a backtest, on the example contract."""
    backtest = f"/contracts/{CUSTOMER}/backtest"
    token = csrf_token(client.get(backtest).get_data(as_text=True))
    return {
        "preview": client.post(f"/contracts/{CUSTOMER}/preview", data={"source": ACME, "period": "2026-05"},
                               headers={"X-CSRFToken": token}).get_data(as_text=True),
        "backtest": client.post(backtest, data={"source": ACME.replace("at 2.00", "at 2.25"), "periods": "6",
                                                "csrf_token": token}).get_data(as_text=True),
    }


def test_the_scan_finds_each_other_way_and_passes_the_one_way():
    for written in ("GBP 7802.00", "GBP 9150.00", "5302.00 GBP", "<td>5000.00</td><td>GBP</td>",
                    "<td class=num>5,000.00 <small>USD</small></td>", "total EUR −12.50"):
        assert other_ways(f"<p>{written}</p>"), written
    one_way = display(Decimal(7802), "GBP")
    assert one_way == "£7,802.00"
    for written in (one_way, "−£12.50", "£0.00 of GBP invoices", "quantity 1,234.50 units", "version 2.00",
                    '<input value="5000.00"> GBP'):
        assert not other_ways(f"<p>{written}</p>"), written


@pytest.mark.parametrize("who", ["finance", "customer_finance"])
def test_no_page_writes_money_another_way(signed_in_client, portal_sessions, who):
    june = with_credit_note_and_reconciliations(signed_in_client("finance"), portal_sessions)
    client = signed_in_client(who)
    pages = crawl(client)
    pages[f"/invoices/{june}?confirm=credit"] = client.get(f"/invoices/{june}?confirm=credit").get_data(as_text=True)
    assert len(pages) >= (8 if who == "finance" else 3)
    if who == "finance":
        assert {"/invoices", "/reconciliation", "/dashboard", "/reconciliation/2026-04"} <= set(pages)
        pages |= forms_only(client)
    assert "TEST-CN-" in pages[f"/invoices/{june}"] and "12.34" in pages[f"/invoices/{june}"]
    found = {path: other_ways(page) for path, page in pages.items()}
    assert {path: ways for path, ways in found.items() if ways} == {}
    # and money is on these pages, written the one way
    assert any(re.search(r"£\d[\d,]*\.\d\d", page) for page in pages.values())



def test_the_filter_writes_in_the_environments_locale(portal_app):
    from dataclasses import replace

    from flask import render_template_string

    template = "{{ a|money('USD') }} {{ b|money('GBP', signed=true) }} {{ c|money('GBP', signed=true) }} [{{ n|money('GBP') }}]"
    with portal_app.test_request_context():
        assert render_template_string(template, a=Decimal(7802), b="250", c="-0.001", n=None) == \
            "US$7,802.00 +£250.00 £0.00 []"
        portal_app.config["BILLING_ENVIRONMENT"] = replace(portal_app.config["BILLING_ENVIRONMENT"], locale="en_US")
        assert render_template_string(template, a=Decimal(7802), b="-12", c="0", n="") == "$7,802.00 -£12.00 £0.00 []"
