"""The portal's credit-note form credits account lines as `billing credit --account KIND --amount A` does
(lifecycle/credit_notes.py): the lines that charge are offered with their registry title, their amount and what
remains creditable; the lines that reduce the invoice are shown with why they have nothing to credit; each refusal
is shown beside its field with what was typed; the success message writes money in the environment's locale.

The invoice is globex's August 2026 (contracts/globex-research.pricing, tests/web/portal/test_dashboard_account.py's
`globex` fixture): its prepaid commitment is billed that month (a commitment fee that charges) and drawn down by the
month's charges (a commitment drawdown that reduces the invoice).

Also here: a close whose reconciliation fails says its headline (review/reconcile.py `headline`) in the
environment's locale.
"""

from __future__ import annotations

import dataclasses
import html as html_lib
import re
from decimal import Decimal

import pytest
from sqlalchemy import select, text

from audit.log import AuditEntry
from engine.lines import line_kind
from engine.money import display
from ledger.models import Invoice
from lifecycle.models import CreditNote
from review.reconcile import Report, headline, latest

from .conftest import CUSTOMER, add_portal_user, form_post
from .test_dashboard_account import AUGUST, GLOBEX, globex  # noqa: F401  (the fixture)
from .test_invoice_pages import JUNE, fresh_june_draft  # noqa: F401  (the fixture)

CENT = Decimal("0.01")


def _text(response) -> str:
    page = response.get_data(as_text=True)
    return html_lib.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def _shown(amount: Decimal, locale: str) -> str:
    """Money as the page shows it, with its spaces as _text leaves them."""
    return re.sub(r"\s+", " ", display(amount, "EUR", locale))


def _august(sessions, globex) -> Invoice:  # noqa: F811
    with sessions() as session:
        return session.scalar(select(Invoice).where(Invoice.number == globex[AUGUST]))


def _lines(invoice: Invoice) -> dict[str, Decimal]:
    return {line["kind"]: Decimal(line["amount"]) for line in invoice.document["account"]["lines"]}


def _notes(sessions) -> list[CreditNote]:
    with sessions() as session:
        return session.scalars(select(CreditNote).order_by(CreditNote.id)).all()


def _paths(invoice: Invoice) -> tuple[str, str]:
    return f"/invoices/{invoice.id}/credit", f"/invoices/{invoice.id}?confirm=credit"


def test_the_form_offers_the_account_lines_that_charge(signed_in_client, portal_app, portal_sessions, globex):  # noqa: F811
    invoice = _august(portal_sessions, globex)
    lines = _lines(invoice)
    assert lines["commitment_fee"] > 0 > lines["commitment_drawdown"]
    locale = portal_app.config["BILLING_ENVIRONMENT"].locale
    response = signed_in_client("finance").get(_paths(invoice)[1])
    page, text = response.get_data(as_text=True), _text(response)
    for kind, amount in lines.items():
        title = line_kind(kind).title
        assert title in text and f"(on the invoice: {_shown(amount, locale)})" in text
        if amount > 0:
            assert f'name="amount-account-{kind}"' in page
        else:   # a reduction is shown with why, and has no field
            assert f'name="amount-account-{kind}"' not in page and f'id="amount-account-{kind}-why"' in page
    assert "It reduces the invoice: a credit note has nothing on it to credit." in text
    # what remains creditable on the fee: all of it (no credit note yet), never more than the invoice's net
    net = Decimal(invoice.document["totals"]["net"])
    fee_row = page[page.index('name="amount-account-commitment_fee"') - 900:page.index('name="amount-account-commitment_fee"')]
    assert display(min(lines["commitment_fee"], net), "EUR", locale) in fee_row


def test_crediting_an_account_line_through_the_portal(signed_in_client, portal_app, portal_sessions, globex):  # noqa: F811
    invoice = _august(portal_sessions, globex)
    site = invoice.document["sites"][0]["site"]
    # in another locale than the default, so the message cannot pass by writing money the one default way
    env = portal_app.config["BILLING_ENVIRONMENT"]
    portal_app.config["BILLING_ENVIRONMENT"] = dataclasses.replace(env, locale="de_DE")
    client = signed_in_client("finance")
    path, page = _paths(invoice)
    done = form_post(client, path, {"scope": "sites", "amount-account-commitment_fee": "500.00",
                                    f"amount-{site}": "12.50", "reason": "fee waived in part"},
                     page=page, follow_redirects=True)
    [note] = _notes(portal_sessions)
    assert note.invoice_id == invoice.id and note.reason == "fee waived in part"
    assert note.lines == [{"site": site, "name": invoice.document["sites"][0]["name"], "amount": "12.50"},
                          {"account": "commitment_fee", "name": line_kind("commitment_fee").title,
                           "amount": "500.00"}]
    assert note.total == Decimal("512.50") + (Decimal(note.tax["amount"]) if note.tax else 0)
    text = _text(done)
    assert f"Credit note {note.number} issued: {_shown(note.total, 'de_DE')} credited" in text
    assert f"{note.total:f} EUR" not in text
    # what remains on the fee is what the invoice charged less what was credited on it
    again = client.get(page).get_data(as_text=True)
    fee_at = again.index('name="amount-account-commitment_fee"')
    left = min(_lines(invoice)["commitment_fee"] - Decimal("500.00"),
               Decimal(invoice.document["totals"]["net"]) - Decimal("512.50"))
    assert display(left, "EUR", "de_DE") in again[fee_at - 900:fee_at]
    with portal_sessions() as session:
        entries = session.scalars(select(AuditEntry).where(AuditEntry.action == "credit_note.issue")).all()
    assert [(e.outcome, e.details.get("number")) for e in entries] == [("success", note.number)]


def test_refusals_are_shown_beside_the_account_line(signed_in_client, portal_sessions, globex):  # noqa: F811
    invoice = _august(portal_sessions, globex)
    lines = _lines(invoice)
    client = signed_in_client("finance")
    path, page = _paths(invoice)
    too_much = f"{lines['commitment_fee'] + CENT}"
    refused = form_post(client, path, {"scope": "sites", "amount-account-commitment_fee": too_much,
                                       "reason": "waived"}, page=page)
    html = refused.get_data(as_text=True)
    assert refused.status_code == 400 and 'id="amount-account-commitment_fee-error"' in html
    assert f'value="{too_much}"' in html and "waived</textarea>" in html
    assert "that remains creditable on it" in _text(refused)
    # a line that reduces the invoice has no field; a POST naming it anyway is refused beside its row
    reduction = form_post(client, path, {"scope": "sites", "amount-account-commitment_drawdown": "10.00",
                                         "reason": "waived"}, page=page)
    html = reduction.get_data(as_text=True)
    assert reduction.status_code == 400 and 'id="amount-account-commitment_drawdown-error"' in html
    assert "it reduces the invoice, so a credit note has nothing on it to credit" in _text(reduction)
    # every line within itself, but more in all than the invoice's net: said beside the choice
    everything = {f"amount-{s['site']}": s["total"] for s in invoice.document["sites"] if Decimal(s["total"]) > 0}
    over = form_post(client, path, {"scope": "sites", **everything,
                                    "amount-account-commitment_fee": f"{lines['commitment_fee']}",
                                    "reason": "waived"}, page=page)
    assert sum(map(Decimal, everything.values())) + lines["commitment_fee"] > Decimal(invoice.document["totals"]["net"])
    html = over.get_data(as_text=True)
    assert over.status_code == 400 and 'id="scope-error"' in html and "more than the" in _text(over)
    assert f'value="{lines["commitment_fee"]}"' in html
    assert _notes(portal_sessions) == []
    with portal_sessions() as session:
        outcomes = session.scalars(select(AuditEntry.outcome).where(AuditEntry.action == "credit_note.issue")).all()
    assert outcomes == ["failure"] * 3


def test_customer_users_cannot_credit_account_lines(signed_in_client, portal_sessions, users, globex):  # noqa: F811
    invoice = _august(portal_sessions, globex)
    path, page = _paths(invoice)
    for principal in ("customer_finance", "other_customer"):   # customer users of other customers: not even seen
        client = signed_in_client(principal)
        assert client.get(page).status_code == 404
        assert client.post(path, data={"scope": "sites", "amount-account-commitment_fee": "1.00",
                                       "reason": "x"}).status_code == 403
    assert _notes(portal_sessions) == []


@pytest.fixture
def globex_user_client(portal_app, portal_sessions, portal_clock, globex):  # noqa: F811
    """A client signed in as globex's own customer finance user."""
    from identity.accounts import User
    from identity.signin import open_session

    made = add_portal_user(portal_sessions, "globex.finance@example.com", "customer_finance", GLOBEX)
    client = portal_app.test_client()
    with portal_sessions.begin() as session:
        token, _ = open_session(session, session.get(User, made.id), "127.0.0.1", portal_clock())
    with client.session_transaction() as cookie:
        cookie["_user_id"] = token
        cookie["_fresh"] = True
    return client


def test_globex_own_user_sees_the_invoice_but_no_credit_form(globex_user_client, portal_sessions, globex):  # noqa: F811
    invoice = _august(portal_sessions, globex)
    path, page = _paths(invoice)
    response = globex_user_client.get(page)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and globex[AUGUST] in html
    assert "amount-account-" not in html and f'action="{path}"' not in html
    assert globex_user_client.post(path, data={"scope": "all", "reason": "x"}).status_code == 403
    assert _notes(portal_sessions) == []


def test_a_failed_reconciliation_is_said_in_the_environments_locale(signed_in_client, portal_app, portal_sessions,
                                                                    fresh_june_draft):  # noqa: F811
    env = portal_app.config["BILLING_ENVIRONMENT"]
    portal_app.config["BILLING_ENVIRONMENT"] = dataclasses.replace(env, locale="de_DE")
    client = signed_in_client("finance")
    with portal_sessions.begin() as session:   # a rollup changed behind the engine: it no longer sums its events
        session.execute(text("UPDATE rollups SET quantity = quantity + 100 WHERE customer = :c AND day = "
                             "(SELECT MIN(day) FROM rollups WHERE customer = :c AND day >= :d)"),
                        {"c": CUSTOMER, "d": JUNE.first_day})
    page = f"/invoices/{fresh_june_draft}"
    done = html_lib.unescape(form_post(client, f"{page}/refresh", {}, page=page,
                                       follow_redirects=True).get_data(as_text=True))
    with portal_sessions() as session:
        report = Report.from_json(latest(session, CUSTOMER, JUNE).report)
    assert not report.passed and headline(report, "de_DE") != headline(report, "en_GB")
    assert f"its {headline(report, 'de_DE')}: it cannot be approved" in done
    assert headline(report, "en_GB") not in done
