"""Every registered route, asked by every role, by a customer user of another customer, and by nobody.

The expectation follows from the route's declaration (admin_app/access.py):
API-key routes want a key (401 without one); routes for signed-in users send
the anonymous to the sign-in page and refuse the roles they do not admit (403);
whoever gets through gets a page (200, or 404 for a customer user asking for
another customer's record; public sign-in steps may redirect), or, for a POST
sent without its CSRF token, a 400, which proves both that the access check let
it through and that the route is protected against cross-site requests. A route without a declaration fails this test; so does a
route whose URL takes an argument this test has no sample for.
"""

from __future__ import annotations

import datetime as dt

import pytest
from flask import Flask

from admin_app import access
from identity import accounts
from ledger.models import InvoiceVoid

from .conftest import CUSTOMER, PRINCIPALS

CUSTOMER_SCOPED = {"invoice_id", "customer"}     # arguments naming a record that belongs to one customer
SAFE = {"GET"}


def routes(app: Flask):
    """(rule, endpoint, method) for every registered route."""
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint)):
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule, rule.endpoint, method


def undeclared(app: Flask) -> list[str]:
    with app.test_request_context():
        return [f"{rule.rule} ({endpoint})" for rule, endpoint, _ in routes(app) if access.rule_for(endpoint) is None]


def expected(declared: access.Rule, principal: str, role: str | None, method: str, scoped: bool) -> set[int]:
    if declared.kind == access.API_KEY:
        return {401}
    if declared.kind != access.PUBLIC:
        if principal == "anonymous":
            return {302}
        if declared.kind != access.SIGNED_IN and role not in declared.roles:
            return {403}
    if method not in SAFE:
        return {400}
    if declared.kind == access.PUBLIC:
        return {200, 302}    # the sign-in steps send whoever is not at that step elsewhere
    return {404} if scoped and principal == "other_customer" else {200}


def test_every_route_declares_who_may_reach_it(portal_app):
    assert undeclared(portal_app) == []


def test_a_route_without_a_declaration_is_found_and_refused(portal_app, signed_in_client):
    portal_app.add_url_rule("/forgotten", "forgotten", lambda: "financial data")
    assert undeclared(portal_app) == ["/forgotten (forgotten)"]
    assert signed_in_client("finance").get("/forgotten").status_code == 403
    assert portal_app.test_client().get("/forgotten").status_code == 403


def test_the_roles_of_the_accounts_are_the_roles_routes_declare():
    assert access.ROLES == accounts.ROLES


def test_every_route_with_every_principal(portal_app, signed_in_client, users, invoice_ids):
    # Sample values of every URL argument a route may take: a new kind of argument needs one here.
    samples = {"invoice_id": invoice_ids["customer"], "user_id": users["deal_desk"].id, "filename": "portal.css",
               "customer": CUSTOMER, "version": 1, "period": "2026-06",
               "grant": "G-000001"}
    clients = {principal: signed_in_client(principal) for principal in PRINCIPALS}
    wrong, asked = [], 0
    for rule, endpoint, method in routes(portal_app):
        missing = set(rule.arguments) - samples.keys()
        if missing:
            pytest.fail(f"{rule.rule}: no sample value for {sorted(missing)}; add one to this test")
        with portal_app.test_request_context():
            declared = access.rule_for(endpoint)
        path = rule.build({name: samples[name] for name in rule.arguments}, append_unknown=False)[1]
        for principal in PRINCIPALS:
            role = users[principal].role if principal in users else None
            response = clients[principal].open(path, method=method)
            want = expected(declared, principal, role, method, bool(CUSTOMER_SCOPED & set(rule.arguments)))
            asked += 1
            if response.status_code not in want:
                wrong.append(f"{method} {path} as {principal}: {response.status_code}, expected {sorted(want)}")
            elif want == {302} and declared.kind != access.PUBLIC:
                if not response.headers["Location"].startswith("/login"):
                    wrong.append(f"{method} {path} as {principal}: redirected to {response.headers['Location']}")
    assert wrong == []
    assert asked >= len(PRINCIPALS) * 10


def test_a_customer_user_sees_only_their_customers_issued_invoices(signed_in_client, invoice_ids):
    client = signed_in_client("customer_finance")
    listing = client.get("/invoices").get_data(as_text=True)
    assert f"/invoices/{invoice_ids['customer']}" in listing
    assert f"/invoices/{invoice_ids['other']}" not in listing and "Northwind" not in listing
    assert f"/invoices/{invoice_ids['draft']}" not in listing
    assert client.get(f"/invoices/{invoice_ids['draft']}").status_code == 404
    assert client.get(f"/invoices/{invoice_ids['other']}").status_code == 404
    assert client.get("/invoices/999999").status_code == 404


def test_finance_sees_every_invoice(signed_in_client, invoice_ids):
    listing = signed_in_client("finance").get("/invoices").get_data(as_text=True)
    for invoice_id in invoice_ids.values():
        assert f"/invoices/{invoice_id}" in listing


def test_a_voided_invoice_is_shown_void(signed_in_client, invoice_ids, portal_sessions):
    with portal_sessions.begin() as session:
        session.add(InvoiceVoid(invoice_id=invoice_ids["customer"], voided_at=dt.datetime.now(dt.timezone.utc),
                                voided_by="finance@example.com", reason="wrong site"))
    client = signed_in_client("customer_finance")
    page = client.get(f"/invoices/{invoice_ids['customer']}").get_data(as_text=True)
    assert '<span class="status status-void">void' in page
    assert '<span class="status status-void">void' in client.get("/invoices").get_data(as_text=True)
