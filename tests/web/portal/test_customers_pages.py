"""Customers in the portal (admin_app/customers.py): billing profiles with their history, edited by finance
and audited as `billing customer set` audits; credit grants added, revoked and read as a ledger by finance,
and read by a customer user for their own customer only."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from decimal import Decimal

import pytest
from sqlalchemy import select

from audit.log import AuditEntry
from billing.cli import main
from engine.money import display
from engine.periods import Period
from ledger.grants import add_grant
from ledger.models import CreditGrant, CustomerProfile, GrantDraw, Invoice, InvoiceVoid
from ledger.profiles import save_profile

from .conftest import CUSTOMER, OTHER_CUSTOMER, TEST_ACTOR, form_post

UTC = dt.timezone.utc
PROFILE = {"name": "Acme Health Ltd", "address": "1 High Street\nLondon\nEC1A 1AA", "tax_id": "GB123456789",
           "purchase_order": "PO-7781", "terms_days": "45", "tax_treatment": "uk_standard", "exempt_reason": ""}
ROUTES = [("GET", "/customers"), ("GET", f"/customers/{CUSTOMER}"), ("GET", f"/customers/{CUSTOMER}/edit"),
          ("POST", f"/customers/{CUSTOMER}/edit"), ("GET", f"/customers/{CUSTOMER}/grants"),
          ("POST", f"/customers/{CUSTOMER}/grants"), ("POST", f"/customers/{CUSTOMER}/grants/G-000001/revoke"),
          ("GET", "/credits")]
# Who gets what on each route (the customer user is of CUSTOMER; "other_customer" of OTHER_CUSTOMER).
EXPECTED = {
    "anonymous": [302] * 8,
    "admin": [200, 200, 403, 403, 403, 403, 403, 403],
    "deal_desk": [403] * 8,
    "finance": [200, 200, 200, 400, 200, 400, 400, 403],      # a POST without its CSRF token: 400
    "customer_finance": [403, 403, 403, 403, 200, 403, 403, 200],
    "other_customer": [403, 403, 403, 403, 404, 403, 403, 200],
}


def audit(sessions, action: str) -> list[AuditEntry]:
    with sessions() as session:
        return session.scalars(select(AuditEntry).where(AuditEntry.action == action)
                               .order_by(AuditEntry.sequence)).all()


def grant(sessions, customer: str = CUSTOMER, amount: str = "500.00", **kwargs) -> int:
    with sessions.begin() as session:
        return add_grant(session, customer, Decimal(amount), TEST_ACTOR, **kwargs).id


@pytest.mark.parametrize("principal", EXPECTED)
def test_who_may_open_each_page(signed_in_client, principal, portal_sessions):
    grant(portal_sessions)
    client = signed_in_client(principal)
    answers = [client.open(path, method=method).status_code for method, path in ROUTES]
    assert answers == EXPECTED[principal]
    if principal == "anonymous":
        assert client.get("/customers").headers["Location"].startswith("/login")


def test_a_customer_user_of_another_customer_is_refused_and_recorded(signed_in_client, portal_sessions):
    grant(portal_sessions)
    client = signed_in_client("other_customer")
    assert client.get(f"/customers/{CUSTOMER}/grants").status_code == 404
    assert client.get("/customers/no-such-customer/grants").status_code == 404
    denied = audit(portal_sessions, "grant.list")
    assert [(entry.outcome, entry.resource) for entry in denied] == [
        ("denied", f"customer:{CUSTOMER}"), ("failure", "customer:no-such-customer")]
    own = client.get("/credits").get_data(as_text=True)
    assert "G-000001" not in own and "No credit grants." in own and "Northwind" in own


def test_finance_lists_customers_with_their_profiles(signed_in_client, portal_sessions):
    with portal_sessions.begin() as session:
        save_profile(session, OTHER_CUSTOMER, TEST_ACTOR, {"name": "Northwind Imaging Inc.", "address": ["1 Main St"],
                                                           "tax_treatment": "exempt"})
    page = signed_in_client("finance").get("/customers").get_data(as_text=True)
    assert f'href="/customers/{CUSTOMER}"' in page and f'href="/customers/{OTHER_CUSTOMER}"' in page
    northwind = page[page.index("Northwind Imaging Inc."):]
    assert "incomplete" in northwind[:600] and "the exemption certificate or reason" in northwind[:600]
    assert "Exempt from tax" in northwind[:600]
    assert [entry.details["shown"] for entry in audit(portal_sessions, "customer.list")] == [2]
    admin_page = signed_in_client("admin").get("/customers").get_data(as_text=True)
    assert "/grants" not in admin_page   # admin reads who is billed, never amounts


def test_finance_edits_a_profile_audited_as_the_command_line(signed_in_client, portal_sessions, db_url,
                                                             monkeypatch, capsys):
    client = signed_in_client("finance")
    path = f"/customers/{CUSTOMER}/edit"
    answer = form_post(client, path, PROFILE)
    assert answer.status_code == 302 and answer.headers["Location"] == f"/customers/{CUSTOMER}"
    with portal_sessions() as session:
        profile = session.get(CustomerProfile, CUSTOMER)
        assert (profile.name, profile.address, profile.tax_id, profile.terms_days, profile.revision) == (
            "Acme Health Ltd", ["1 High Street", "London", "EC1A 1AA"], "GB123456789", 45, 1)
        assert profile.saved_by == "finance@example.com"
    # the same change made by `billing customer set` is recorded the same way
    monkeypatch.setenv("BILLING_DATABASE_URL", db_url)
    assert main(["customer", "set", CUSTOMER, "--purchase-order", "PO-9000"]) == 0
    capsys.readouterr()
    assert form_post(client, path, {**PROFILE, "purchase_order": "PO-9001", "terms_days": ""}).status_code == 302
    unchanged = form_post(client, path, {**PROFILE, "purchase_order": "PO-9001", "terms_days": ""},
                          follow_redirects=True)
    assert "Nothing changed: the profile stays at revision 3." in unchanged.get_data(as_text=True)
    web, cli, web_again = audit(portal_sessions, "customer.profile")
    assert (web.actor, web.outcome, web.resource) == ("finance@example.com", "success", f"customer:{CUSTOMER}")
    assert web.details["changed"]["tax_treatment"] == ["none", "uk_standard"]
    assert cli.actor.startswith("cli:") and cli.details == {"revision": 2, "changed": {
        "purchase_order": ["PO-7781", "PO-9000"]}}
    assert web_again.details == {"revision": 3, "changed": {"purchase_order": ["PO-9000", "PO-9001"],
                                                            "terms_days": [45, None]}}
    page = client.get(f"/customers/{CUSTOMER}").get_data(as_text=True)
    history = page[page.index('id="history"'):]
    rows = re.findall(r"<tr>\s*<td>(\d+)</td>", history)
    assert rows == ["3", "2", "1"]                       # newest first
    assert "PO-9000 → PO-9001" in history and "net 45 days → the seller&#39;s default" in history
    assert "finance@example.com" in history and cli.actor in history
    assert "net 30 days" in page                         # the seller's default terms, said as such


def test_a_refused_profile_keeps_what_was_typed(signed_in_client, portal_sessions, portal_app):
    client = signed_in_client("finance")
    path = f"/customers/{CUSTOMER}/edit"
    answer = form_post(client, path, {**PROFILE, "name": "Typed Name Ltd", "terms_days": "-5"})
    page = answer.get_data(as_text=True)
    assert answer.status_code == 400 and 'value="Typed Name Ltd"' in page and "1 High Street\nLondon" in page
    assert 'value="-5"' in page and 'id="terms_days-error"' in page
    assert form_post(client, path, {**PROFILE, "tax_treatment": "reverse_charge"}).status_code == 302
    # an environment that does not issue the reverse charge: its form offers only what it issues
    env = portal_app.config["BILLING_ENVIRONMENT"]
    portal_app.config["BILLING_ENVIRONMENT"] = dataclasses.replace(env, tax_treatments=("uk_standard", "none"))
    form = client.get(path).get_data(as_text=True)
    assert re.findall(r'<option[^>]*value="(\w+)"', form) == ["uk_standard", "none"]
    assert "This environment does not issue reverse_charge" in form
    refused = form_post(client, path, {**PROFILE, "tax_treatment": "exempt", "name": "Kept Ltd"})
    page = refused.get_data(as_text=True)
    assert refused.status_code == 400 and 'value="Kept Ltd"' in page and 'id="tax_treatment-error"' in page
    assert client.post(path, data=PROFILE).status_code == 400           # no CSRF token
    with portal_sessions() as session:
        profile = session.get(CustomerProfile, CUSTOMER)
        assert (profile.tax_treatment, profile.name, profile.revision) == ("reverse_charge", "Acme Health Ltd", 1)


def test_finance_adds_and_revokes_a_grant(signed_in_client, portal_sessions):
    client = signed_in_client("finance")
    path = f"/customers/{CUSTOMER}/grants"
    bad = form_post(client, path, {"amount": "12.345", "reason": "typed reason", "from_period": "2026-06"})
    page = bad.get_data(as_text=True)
    assert bad.status_code == 400 and 'value="typed reason"' in page and 'id="amount-error"' in page
    assert "2 decimal places" in page
    assert form_post(client, path, {"amount": "abc", "priority": "5"}).status_code == 400
    added = form_post(client, path, {"amount": "250.00", "from_period": "2026-06", "expires": "2026-12-31",
                                     "priority": "5", "reason": "service credit"})
    assert added.status_code == 302 and added.headers["Location"].endswith("#G-000001")
    with portal_sessions() as session:
        row = session.scalars(select(CreditGrant)).one()
        assert (row.amount, row.from_period, row.expires, row.priority, row.granted_by) == (
            Decimal("250.00"), Period(2026, 6), dt.date(2026, 12, 31), 5, "finance@example.com")
    refused, entry = audit(portal_sessions, "grant.add")   # the refused amount is recorded too
    assert (refused.outcome, refused.resource, refused.details["code"]) == ("failure", "customer:acme-health",
                                                                         "grant-amount")
    assert entry.resource == "grant:G-000001" and entry.details["amount"] == "250.00"

    confirm = client.get(f"{path}?revoke=G-000001").get_data(as_text=True)
    assert 'action="/customers/acme-health/grants/G-000001/revoke"' in confirm
    revoke = f"{path}/G-000001/revoke"
    missing = form_post(client, revoke, {"reason": ""}, page=f"{path}?revoke=G-000001")
    assert missing.status_code == 400 and "Give the reason for the revoke." in missing.get_data(as_text=True)
    assert form_post(client, revoke, {"reason": "granted twice"}, page=path).status_code == 302
    [entry] = audit(portal_sessions, "grant.revoke")
    assert entry.details["reason"] == "granted twice" and entry.details["remaining"] == "250.00"
    page = client.get(path).get_data(as_text=True)
    assert '<span class="status status-disabled">revoked</span>' in page and "granted twice" in page
    assert "Revoke…" not in page
    again = form_post(client, revoke, {"reason": "once more"}, page=path)
    assert again.status_code == 302 and "was revoked already" in client.get(path).get_data(as_text=True)


def test_a_grant_of_another_customer_cannot_be_revoked_through_this_one(signed_in_client, portal_sessions):
    other = grant(portal_sessions, OTHER_CUSTOMER, "100.00")
    client = signed_in_client("finance")
    answer = form_post(client, f"/customers/{CUSTOMER}/grants/G-{other:06d}/revoke", {"reason": "x"},
                       page=f"/customers/{CUSTOMER}/grants")
    assert answer.status_code == 404
    assert form_post(client, f"/customers/{CUSTOMER}/grants/nonsense/revoke", {"reason": "x"},
                     page=f"/customers/{CUSTOMER}/grants").status_code == 404
    with portal_sessions() as session:
        assert session.get(CreditGrant, other).revoked_at is None


def test_the_ledger_of_a_grant_drawn_given_back_and_expired(signed_in_client, portal_sessions, invoice_ids,
                                                            portal_clock):
    drawn = grant(portal_sessions, amount="300.00", reason="outage credit")
    expired = grant(portal_sessions, amount="80.00", expires=portal_clock().date() - dt.timedelta(days=2))
    with portal_sessions.begin() as session:
        issued = session.scalars(select(Invoice).where(Invoice.customer == CUSTOMER, Invoice.status == "issued")
                                 .order_by(Invoice.id)).all()
        session.add_all([GrantDraw(grant_id=drawn, invoice_id=issued[0].id, amount=Decimal("120.00")),
                         GrantDraw(grant_id=drawn, invoice_id=issued[1].id, amount=Decimal("50.00")),
                         InvoiceVoid(invoice_id=issued[1].id, voided_at=dt.datetime.now(UTC), voided_by="f",
                                     reason="wrong site")])
    for principal in ("finance", "customer_finance"):
        page = signed_in_client(principal).get(f"/customers/{CUSTOMER}/grants").get_data(as_text=True)
        ledger = page[page.index(f'id="G-{drawn:06d}"'):page.index(f'id="G-{expired:06d}"')]
        money = {amount: display(Decimal(amount), "GBP", "en_GB") for amount in ("300.00", "-120.00", "180.00",
                                                                                 "-50.00", "130.00", "50.00")}
        lines = re.findall(r'<tr class="event-([a-z-]+)">.*?<td class="num">([^<]*)</td>\s*<td class="num">([^<]*)'
                           r"</td>", ledger, re.S)
        assert [(what, amount, balance) for what, amount, balance in lines] == [
            ("granted", money["300.00"], money["300.00"]), ("drawn", money["-120.00"], money["180.00"]),
            ("drawn", money["-50.00"], money["130.00"]), ("given-back", money["50.00"], money["180.00"])]
        # the fixture's invoices were stored unnumbered (the demo's test sees numbers): named by their id
        assert f'href="/invoices/{issued[0].id}">invoice #{issued[0].id}</a>' in ledger
        assert f'<strong class="remaining">{money["180.00"]}</strong>' in ledger
        footer = page[page.index("<tfoot>"):page.index("</tfoot>")]   # the summary's: sums of its columns
        gbp = {amount: display(Decimal(amount), "GBP", "en_GB") for amount in ("380.00", "260.00", "180.00")}
        assert re.findall(r"<strong[^>]*>([^<]+)</strong>", footer) == [gbp["380.00"], gbp["260.00"], gbp["180.00"]]
        rest = page[page.index(f'id="G-{expired:06d}"'):]
        assert '<span class="status status-void">expired</span>' in rest and "event-expired" in rest
        assert ("Revoke…" in page) == (principal == "finance")
        assert ('action="/customers/acme-health/grants"' in page) == (principal == "finance")
    assert len(audit(portal_sessions, "grant.list")) == 2


def test_billing_grant_list_says_expired(portal_sessions, db_url, monkeypatch, capsys):
    grant(portal_sessions, amount="80.00", expires=dt.date(2026, 1, 31), from_period=Period(2026, 1))
    grant(portal_sessions, amount="20.00", expires=dt.date(2999, 1, 31), from_period=Period(2026, 1))
    monkeypatch.setenv("BILLING_DATABASE_URL", db_url)
    assert main(["grant", "list", "--customer", CUSTOMER]) == 0
    first, second = capsys.readouterr().out.splitlines()
    assert re.search(r"remaining \S*80\.00  expired", first) and re.search(r"remaining \S*20\.00  active", second)
    assert main(["grant", "list", "--customer", CUSTOMER, "--format", "json"]) == 0
    assert '"state": "expired"' in capsys.readouterr().out
