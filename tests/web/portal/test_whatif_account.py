"""What-if pages on a contract with an account block: preview, compare and backtest show the account lines and
invoice totals, not only the sites; compare's text difference is for people; the backtest keeps the draft
("Back to editing" with its text, "Save this version" through the editor's own save route)."""

from __future__ import annotations

import re
from decimal import Decimal

from sqlalchemy import select

from admin_app.whatif import diff_rows
from dsl.compile import compile_source
from engine.money import display
from engine.periods import Period
from ledger.contracts import save_contract
from ledger.history import contract_history, text_diff
from ledger.models import Invoice
from review import whatif

from . import test_dashboard_account
from .conftest import CONTRACTS, csrf_token, form_post
from .test_dashboard_account import GLOBEX, SEPTEMBER

globex = test_dashboard_account.globex      # the fixture: the contract, its usage, two issued periods
RAISED = "minimum 5_000.00 monthly"


def _text() -> str:
    return (CONTRACTS / "globex-research.pricing").read_text()


def _raised() -> str:
    return _text().replace("minimum 1_000.00 monthly", RAISED)


def _save_second_version(sessions) -> None:
    with sessions.begin() as session:
        save_contract(session, compile_source(_raised().encode(), "v2"), effective=Period(2027, 1), author="test")


def test_the_preview_shows_the_account_lines_and_their_total(signed_in_client, globex):
    client = signed_in_client("deal_desk")
    answer = form_post(client, f"/contracts/{GLOBEX}/preview", {"source": _raised(), "period": "2026-09"},
                       page=f"/contracts/{GLOBEX}")
    page = answer.get_data(as_text=True)
    assert answer.status_code == 200 and "whatif-account" in page
    assert "account monthly minimum 5000.00" in page and "drawn from the prepaid balance" in page
    total = Decimal(re.search(r'data-total="([^"]+)"', page).group(1))
    assert "Account lines" in page
    sites = [Decimal(re.sub(r"[^\d.-]", "", t)) for t in re.findall(r'<tr class="subtotal"><td colspan="2">Site total</td><td class="num">'
                                            r'([^<]+)</td>', page)]
    account = Decimal(re.search(r'<tr class="subtotal"><td>Account lines</td><td class="num">([^<]+)</td>',
                                page).group(1).replace(",", "").replace("€", ""))
    assert sum(s for s in sites) + account == total


def test_compare_has_account_rows_invoice_totals_and_a_diff_for_people(signed_in_client, globex, portal_sessions):
    _save_second_version(portal_sessions)
    page = signed_in_client("finance").get(f"/contracts/{GLOBEX}/compare?a=1&b=2&period=2026-09")
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "---" not in text and "+++" not in text and "@@" not in text
    assert '<th class="ln" scope="col">v1</th><th class="ln" scope="col">v2</th>' in text
    assert RAISED in text and 'class="diff-gap"' in text
    assert 'data-kind="account_minimum"' in text and "Invoice total" in text
    with portal_sessions() as session:
        compared = whatif.compare_versions(session, GLOBEX, 1, 2, SEPTEMBER)
    a, b = compared.invoice_a.invoice.totals["total"], compared.invoice_b.invoice.totals["total"]
    assert compared.invoice_totals == (a, b, b - a) and b - a > 0
    kinds = compared.invoice_kinds
    assert sum(kind[2] for kind in kinds.values()) == b - a      # the columns sum to the invoice difference
    assert f"+{display(b - a, 'EUR')}" in text


def test_the_backtest_has_the_account_lines_and_issued_invoice_totals(signed_in_client, globex, portal_sessions):
    client = signed_in_client("deal_desk")
    answer = form_post(client, f"/contracts/{GLOBEX}/backtest", {"source": _raised(), "periods": "2"})
    page = answer.get_data(as_text=True)
    assert answer.status_code == 200 and 'class="account-row"' in page
    with portal_sessions() as session:
        tested = whatif.backtest(session, GLOBEX, _raised(), 2)
        issued = {row.period: row.document for row in session.scalars(select(Invoice).where(
            Invoice.customer == GLOBEX, Invoice.status == "issued"))}
    for period in tested.periods:
        assert period.rows[-1].site == whatif.ACCOUNT_ROW
        assert period.issued == Decimal(issued[period.period]["totals"]["total"])
        assert period.rows[-1].issued == Decimal(issued[period.period]["account"]["total"])


def test_back_to_editing_keeps_the_draft(signed_in_client, globex):
    client = signed_in_client("deal_desk")
    edited = _raised() + "\n# a note of the draft\n"
    page = form_post(client, f"/contracts/{GLOBEX}/backtest", {"source": edited, "periods": "2"}).get_data(
        as_text=True)
    assert "Back to editing" in page and "Save this version" in page
    back = client.post(f"/contracts/{GLOBEX}/draft", data={"source": edited, "base": "1",
                                                           "csrf_token": csrf_token(page)})
    text = back.get_data(as_text=True)
    assert back.status_code == 200 and "# a note of the draft" in text and RAISED in text
    assert client.post(f"/contracts/{GLOBEX}/draft", data={"source": edited}).status_code == 400   # no CSRF token


def test_save_this_version_uses_the_editors_save(signed_in_client, globex, portal_sessions):
    client = signed_in_client("deal_desk")
    page = form_post(client, f"/contracts/{GLOBEX}/backtest", {"source": _raised(), "periods": "2"}).get_data(
        as_text=True)
    form = re.search(r'<form class="save-version" method="post" action="([^"]+)">', page)
    assert form.group(1) == f"/contracts/{GLOBEX}/save"
    source = re.search(r'name="source" type="hidden" value="([^"]*)"', page)
    base = re.search(r'name="base" type="hidden" value="([^"]*)"', page).group(1)
    assert base == "1" and source is not None
    saved = client.post(form.group(1), data={"source": _raised(), "base": base, "comment": "raise the minimum",
                                             "effective": "2027-01", "csrf_token": csrf_token(page)})
    assert saved.status_code == 302
    with portal_sessions() as session:
        newest = contract_history(session, GLOBEX).versions[-1]
    assert newest.number == 2 and RAISED in newest.text and newest.comment == "raise the minimum"


def test_finance_may_backtest_but_not_save(signed_in_client, globex):
    client = signed_in_client("finance")
    page = form_post(client, f"/contracts/{GLOBEX}/backtest", {"source": _raised(), "periods": "2"}).get_data(
        as_text=True)
    assert "Back to editing" in page and "Save this version" not in page
    assert client.post(f"/contracts/{GLOBEX}/save", data={"source": _raised(), "comment": "x",
                                                         "csrf_token": csrf_token(page)}).status_code == 403


def test_the_diff_rows_carry_both_line_numbers_and_no_headers():
    old = "\n".join(f"line {n}" for n in range(1, 30)) + "\n"
    new = old.replace("line 3\n", "line three\n").replace("line 25\n", "line twenty-five\n")
    rows = diff_rows(text_diff(old, new, "version 1", "version 2"), "version 1")
    assert not any(row.text.startswith(("---", "+++", "@@")) for row in rows)
    assert [(row.kind, row.old, row.new) for row in rows if row.kind in ("added", "removed")] == [
        ("removed", 3, None), ("added", None, 3), ("removed", 25, None), ("added", None, 25)]
    [gap] = [row for row in rows if row.kind == "gap"]
    assert gap.text == "lines 7–21 of version 1 unchanged"
    assert all(row.old == row.new for row in rows if row.kind == "context")
