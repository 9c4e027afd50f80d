"""Every refusal the portal can meet, said the portal's way (admin_app/refusals.py): the answer's status, the
message as a sentence beside the field it concerns (or above the page when it concerns none), the next step
worded for the portal, never as a command to run, and the form keeping what was typed. The command line's
side is tests/db/test_refusals.py; between them, every refusal code in the tree is rendered by a test."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import TEST_SELLER

from admin_app.refusals import WORDS, refusal_text
from db.test_refusals import CASES as CLI_CASES
from db.test_refusals import ELSEWHERE
from engine.periods import Period
from engine.refusal import ACTIONS, Refusal
from ledger.invoices import Selector
from ledger.models import Invoice
from lifecycle.transitions import approve, close, issue
from review.reconcile import Threshold
from settings.environment import load as load_environment

from .conftest import CONTRACTS, CUSTOMER, PASSWORD, TEST_ACTOR, form_post

ACME = (CONTRACTS / "acme-health.pricing").read_text(encoding="utf-8")
NORTHWIND = (CONTRACTS / "northwind-cap.pricing").read_text(encoding="utf-8")
EDITOR = "/contracts/acme-health"
SAVE = {"source": ACME, "comment": "new review tiers", "base": "1"}


@dataclass(frozen=True)
class Case:
    role: str
    path: str
    data: dict | None             # None: a GET
    status: int
    field: str | None             # the id of the field the message sits beside; None: above the page
    said: str                     # the sentence the portal says
    typed: tuple[str, ...] = ()   # what the page must show again, as typed
    page: str | None = None       # where the form (and its CSRF token) comes from


def credit_case(amounts: dict, field: str | None, said: str, typed=()) -> Case:
    return Case("finance", "/invoices/{numbered}/credit", {"scope": "sites", "reason": "goodwill", **amounts}, 400,
                field, said, ("goodwill</textarea>", *typed), page="/invoices/{numbered}?confirm=credit")


CASES = {
    "period-issued": Case("deal_desk", f"{EDITOR}/save", {**SAVE, "effective": "2026-05"}, 400, "effective",
                          "The invoice for 2026-05 is already issued, so a new version can take effect from 2026-06 "
                          "at the earliest; nothing saved.", ('value="2026-05"', 'value="new review tiers"'),
                          page=EDITOR),
    "before-start": Case("deal_desk", f"{EDITOR}/save", {**SAVE, "effective": "2025-01"}, 400, "effective",
                         "A version cannot take effect before the contract starts (2026-04-01).",
                         ('value="2025-01"', 'value="new review tiers"'), page=EDITOR),
    "not-an-amount": credit_case({"amount-lon-01": "12,50"}, "amount-lon-01",
                                 "Site lon-01: '12,50' is not an amount (write it like 120.50).", ('value="12,50"',)),
    "more-than-remains": credit_case({"amount-lon-01": "99999999"}, "amount-lon-01",
                                     "that remains creditable on it.", ('value="99999999"',)),
    "no-amount": credit_case({}, "scope", "State an amount for at least one site or account line, or credit "
                                          "everything that remains."),
    "email-taken": Case("admin", "/admin/users/new", {"email": "Finance@Example.com", "role": "finance",
                                                      "customer": ""}, 200, "email",
                        "A user with this email already exists.", ('value="Finance@Example.com"',)),
    "customer-needed": Case("admin", "/admin/users/new", {"email": "kim@example.com", "role": "customer_finance",
                                                          "customer": ""}, 200, "customer",
                            "Choose the customer whose invoices and usage this customer finance user may see.",
                            ('value="kim@example.com"',)),
    "last-admin": Case("admin", "/admin/users/{admin}/role", {"role": "finance", "customer": ""}, 400, "role",
                       "Cannot take the admin role from the last active admin.", page="/admin/users/{admin}"),
    "password-too-short": Case("finance", "/account/password", {"current_password": PASSWORD, "new_password": "short",
                                                               "confirm_password": "short"}, 200, "new_password",
                               "A password needs at least"),
    "wrong-current-password": Case("finance", "/account/password", {
        "current_password": "not the password", "new_password": "a new long passphrase",
        "confirm_password": "a new long passphrase"}, 200, "current_password", "This is not your current password."),
    "same-password": Case("finance", "/account/password", {"current_password": PASSWORD, "new_password": PASSWORD,
                                                          "confirm_password": PASSWORD}, 200, "new_password",
                          "The new password must differ from the current one."),
    "wrong-credentials": Case("anonymous", "/login", {"email": "finance@example.com", "password": "not it"}, 200,
                              "password", "The email or password is not right.", ('value="finance@example.com"',)),
    "no-such-version": Case("deal_desk", "/contracts/acme-health/compare?a=1&b=9&period=2026-05", None, 400, "b",
                            "There is no version 9 of 'acme-health' (versions 1 to 1).", ('value="9"',)),
    "draft-has-errors": Case("deal_desk", "/contracts/acme-health/backtest", {"source": "contract {", "periods": "2"},
                             200, "source", "The draft has 1 error; nothing was computed.", ("contract {</textarea>",)),
    "other-contract": Case("deal_desk", "/contracts/acme-health/backtest", {"source": NORTHWIND, "periods": "2"},
                           200, "source", "The draft is the contract 'northwind', not 'acme-health'"),
    "draft-outdated": Case("finance", "/invoices/{draft}/approve", {}, 302, None,
                           "Not done: the invoice of 'acme-health' for 2026-06 cannot be approved: what it bills "
                           "changed since the draft was made (",
                           page="/invoices/{draft}?confirm=approve"),
    "not-this-invoice": Case("finance", "/invoices/{unnumbered}/approve", {}, 302, None,
                             "Not done: invoice #{unnumbered} is issued: it cannot take this step.",
                             page="/invoices/{unnumbered}"),
    "not-approved": Case("finance", "/invoices/{draft}/issue", {}, 302, None,
                         "Not done: the invoice of 'acme-health' for 2026-06 is draft: only an approved invoice can "
                         "be issued; approve it first.", page="/invoices/{draft}"),
}
# Codes the portal's own forms catch first (or that another test of the portal renders), and where each is tested.
WEB_ELSEWHERE = {
    "empty-draft": "tests/db/test_whatif.py (the portal's form asks for a text first)",
    "periods-out-of-range": "tests/db/test_whatif.py (the portal's form checks the range first)",
    "backtest-period-refused": "tests/db/test_whatif.py",
    "wrong-code": "tests/web/portal/test_signin.py", "used-code": "tests/web/portal/test_signin.py",
    "locked": "tests/web/portal/test_signin.py", "disabled": "tests/web/portal/test_signin.py",
    "too-many-attempts": "tests/web/portal/test_signin.py", "slow-down": "tests/web/portal/test_signin.py",
    "profile-incomplete": "tests/db/test_customer_profiles.py (approval, library and command line)",
    "treatment-not-issued": "tests/db/test_customer_profiles.py", "terms-negative": "tests/db/test_customer_profiles.py",
    "fx-currency": "tests/db/test_legal_invoice.py", "fx-rate": "tests/db/test_legal_invoice.py",
    "fx-rate-missing": "tests/db/test_legal_invoice.py (issuing a USD invoice with UK VAT)",
    "grant-amount": "tests/db/test_grants.py", "no-grant": "tests/db/test_grants.py",
    "grant-revoked": "tests/db/test_grants.py",
    "vat-invoice-not-voided": "tests/db/test_legal_invoice.py (uk-prod corrects by a credit note)",
}
# Previews answer with a fragment for the editor: the refusal is marked with the field it concerns.
PREVIEW_CASES = {
    "outside-contract": ({"source": ACME, "period": "2020-01"}, "period", "outside the contract"),
}


@pytest.fixture
def names(invoice_ids, users) -> dict[str, int]:
    return {"draft": invoice_ids["draft"], "admin": users["admin"].id}


@pytest.fixture
def numbered(portal_sessions) -> int:
    """The customer's June invoice, closed, approved and issued with its number (a credit note needs one)."""
    threshold, june = Threshold.of(load_environment("test")), Selector(CUSTOMER, Period(2026, 6))
    with portal_sessions.begin() as session:
        row, _ = close(session, CUSTOMER, june.period, seller=TEST_SELLER)
        approve(session, june, TEST_ACTOR, threshold=threshold, seller=TEST_SELLER)
        issue(session, june, TEST_ACTOR, threshold=threshold, prefix="TEST", seller=TEST_SELLER)
        return row.id


@pytest.fixture
def unnumbered(portal_sessions, invoice_ids) -> int:
    """The customer's April invoice, issued before numbering, with a draft of April beside it: by customer and
    period the lifecycle finds the draft, so a step on the issued one cannot name it."""
    with portal_sessions.begin() as session:
        issued = session.get(Invoice, invoice_ids["customer"])
        session.add(Invoice(customer=issued.customer, period=issued.period, status="draft", document=issued.document,
                            contract_sha=issued.contract_sha, cap_counts_before=[], cap_counts=[],
                            usage_hash=issued.usage_hash, created_at=issued.created_at))
    return issued.id


@pytest.mark.parametrize("code", sorted(CASES))
def test_each_refusal_is_said_beside_its_field_and_keeps_what_was_typed(code, signed_in_client, names, request):
    case = CASES[code]
    for extra in ("numbered", "unnumbered"):
        if "{" + extra + "}" in case.path:
            names = {**names, extra: request.getfixturevalue(extra)}
    client = signed_in_client(case.role)
    path = case.path.format(**names)
    if case.data is None:
        response = client.get(path)
    else:
        response = form_post(client, path, case.data, page=(case.page or path).format(**names))
    assert response.status_code == case.status, response.get_data(as_text=True)[:2000]
    if case.status == 302:
        response = client.get(response.headers["Location"])
    page = html.unescape(response.get_data(as_text=True))
    said = case.said.format(**names)
    if case.field is None:
        flashed = re.findall(r'<p class="flash flash-error" role="status">([^<]*)</p>', page)
        assert flashed and said in flashed[0], flashed
    else:
        beside = re.search(rf'<p class="error[^"]*" id="{re.escape(case.field)}-error">([^<]*)</p>', page)
        assert beside is not None and said in beside.group(1), page[:3000]
    for typed in case.typed:
        assert typed in page
    assert "`billing " not in page       # the portal names no command


@pytest.mark.parametrize("code", sorted(PREVIEW_CASES))
def test_a_refused_preview_is_marked_with_its_field(code, signed_in_client):
    data, field, said = PREVIEW_CASES[code]
    client = signed_in_client("deal_desk")
    response = form_post(client, "/contracts/acme-health/preview", data, page=EDITOR)
    fragment = html.unescape(response.get_data(as_text=True))
    assert response.status_code == 200 and 'data-outcome="refused"' in fragment
    marked = re.search(rf'<p class="error" data-field="{field}">(.*?)</p>', fragment)
    assert marked is not None and said in marked.group(1)


@pytest.mark.parametrize("action", ACTIONS)
def test_the_portal_words_every_action_without_a_command(action):
    params = {"customer": "acme-health", "period": "2026-05", "number": "UK-2026-000042"}
    text = refusal_text(Refusal("some-code", "not now", action=action, params=params))
    assert set(WORDS) == set(ACTIONS)
    assert text.startswith("Not now; ") and text.endswith(".") and "{" not in text
    assert "billing " not in text and "--" not in text


def test_an_unknown_action_is_refused_when_the_refusal_is_made():
    with pytest.raises(ValueError, match="unknown action 'reissue'"):
        Refusal("some-code", "not now", action="reissue")


def test_every_refusal_code_in_the_tree_is_rendered_by_a_test():
    """A new refusal code needs a case here or in tests/db/test_refusals.py, or a line in its ELSEWHERE."""
    root = Path(__file__).resolve().parents[3]
    written = set()
    for package in ("engine", "ledger", "lifecycle", "review", "identity", "admin_app", "billing"):
        for path in (root / package).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            written |= set(re.findall(r'(?:Refusal|_refused|_refused_amount)\(\s*"([a-z-]+)"', text))
    rendered = set(CLI_CASES) | set(ELSEWHERE) | set(CASES) | set(PREVIEW_CASES) | set(WEB_ELSEWHERE) | {"some-code"}
    missing = written - rendered
    assert len(written) > 30 and not missing, f"refusal codes that no test renders: {sorted(missing)}"
