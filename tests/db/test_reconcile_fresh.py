"""Reconciliation sees what approval sees (issue 14, item 2): an open invoice is compared with a fresh computation
line by line, its contract version and usage digest included, so a draft that approval would refuse never passes;
and the legal invoice's own figures (issue 16, item 6): net, tax, due, the credits drawn against the grant ledger,
the journal balanced and agreeing with the invoice."""

from __future__ import annotations

from decimal import Decimal

import pytest
from conftest import TEST_SELLER
from sqlalchemy import select

from engine.periods import Period
from ledger.models import CreditGrant, Invoice
from review.reconcile import DIGEST, DISCREPANCY, OK, Threshold, reconcile

from .support import event, write_lines
from .test_reconcile import tiny, which  # noqa: F401  (the fixture and its helper)

MAY = Period(2026, 5)
STRICT = Threshold(Decimal("0.01"), Decimal(0))
ABSORBED = """\
contract "absorbed" {{
    customer "Absorbed Ltd"
    currency GBP
    starts   2026-01-01
    timezone "Europe/London"

    category standard "Standard processing" rate {rate}

    defaults {{
        minimum 50.00 monthly on standard
    }}

    site "s1" "Site one" {{ }}
}}
"""


def absorbed_which() -> tuple[str, ...]:
    return ("--customer", "absorbed", "--period", "2026-05")


def report(sessions, customer="absorbed", seller=TEST_SELLER):
    with sessions() as session:
        return reconcile(session, customer, MAY, STRICT, seller=seller)


@pytest.fixture
def absorbed(cli, tmp_path):
    """s1 uses 20 units in May at 1.00: usage 20.00, a minimum true-up of 30.00, the site 50.00."""
    assert cli("db", "upgrade")[0] == 0
    assert cli("contract", "save", write_lines(tmp_path / "v1.pricing", [ABSORBED.format(rate="1.00")]))[0] == 0
    lines = [event(f"a-{d}", f"2026-05-{d:02d}T10:00:00Z", "2", customer="absorbed") for d in range(1, 11)]
    assert cli("ingest", write_lines(tmp_path / "events.jsonl", lines))[0] == 0
    assert cli("close", *absorbed_which())[0] == 0
    return tmp_path


def test_an_amendment_a_minimum_absorbs_fails_the_stale_draft_until_it_is_closed_again(absorbed, cli, sessions):
    assert report(sessions).passed
    amended = write_lines(absorbed / "v2.pricing", [ABSORBED.format(rate="1.50")])
    status, _, err = cli("contract", "save", amended, "--effective", "2026-05")
    assert status == 0, err

    stale = report(sessions)
    assert not stale.passed
    by_check = {check: [f for f in stale.findings if f.check == check] for check in ("current", "dashboard", "fresh")}
    # the site total did not move (50.00 then and now): the old site-level checks saw nothing
    assert [(f.site, f.expected, f.found, f.status) for f in by_check["current"]] == \
        [("s1", Decimal("50.00"), Decimal("50.00"), OK)]
    assert all(f.status == OK for f in by_check["dashboard"])
    wrong = [f for f in by_check["fresh"] if f.status == DISCREPANCY]
    version = [f for f in wrong if f.unit == DIGEST and f.kind.startswith("contract version")]
    assert len(version) == 1 and "in effect from 2026-05" in version[0].detail \
        and "in effect from 2026-01" in version[0].detail
    lines = {f.kind: (f.site, f.category, f.expected, f.found) for f in wrong if f.unit == "amount"}
    assert lines["Usage line against the computation now"] == ("s1", "standard", Decimal("30.00"), Decimal("20.00"))
    assert lines["Minimum true-up line against the computation now"] == \
        ("s1", "standard", Decimal("20.00"), Decimal("30.00"))
    usage = next(f for f in wrong if f.kind == "Usage line against the computation now")
    assert "unit_price" in usage.detail or "amount" in usage.detail

    status, out, _ = cli("reconcile", *absorbed_which())
    assert status == 1
    assert "s1 / standard: Usage line against the computation now: expected £30.00, found £20.00" in out
    assert "contract version against the version in force now: differs; the invoice was computed with" in out
    status, _, err = cli("approve", *absorbed_which())      # approval refuses it too: they agree
    assert status == 1 and "changed since the draft was made" in err

    assert cli("close", *absorbed_which())[0] == 0            # a new close: the draft is the amendment's
    assert report(sessions).passed
    assert cli("approve", *absorbed_which())[0] == 0


def test_usage_that_changes_no_charge_still_fails_a_stale_draft(absorbed, cli, sessions):
    unknown = event("s9-1", "2026-05-03T10:00:00Z", "5", customer="absorbed", site="s9")
    assert cli("ingest", write_lines(absorbed / "more.jsonl", [unknown]))[0] == 0
    stale = report(sessions)
    wrong = {f.kind for f in stale.discrepancies if f.check == "fresh"}
    assert "usage digest against the usage now" in wrong and "unbilled against the computation now" in wrong
    assert all(f.status == OK for f in stale.findings if f.check == "current")
    assert cli("approve", *absorbed_which())[0] == 1
    assert cli("close", *absorbed_which())[0] == 0
    assert report(sessions).passed


def test_without_the_seller_the_charges_are_still_compared_line_by_line(absorbed, cli, sessions):
    amended = write_lines(absorbed / "v2.pricing", [ABSORBED.format(rate="1.50")])
    assert cli("contract", "save", amended, "--effective", "2026-05")[0] == 0
    stale = report(sessions, seller=None)
    assert {f.kind for f in stale.discrepancies} >= {"Usage line against the computation now",
                                                      "Minimum true-up line against the computation now"}


def test_a_profile_change_since_the_close_fails_the_draft_as_approval_would(absorbed, cli, sessions):
    assert cli("customer", "set", "absorbed", "--name", "Absorbed Ltd", "--address", "1 Road")[0] == 0
    stale = report(sessions)
    assert "buyer against the computation now" in {f.kind for f in stale.discrepancies}
    assert cli("approve", *absorbed_which())[0] == 1


# --- net, tax, due, credits and the journal --------------------------------------------------------------------

@pytest.fixture
def taxed(tiny, cli):  # noqa: F811
    """tiny with UK VAT and a grant of 20.00: May's draft 190.00 - 20.00 = 170.00 net, 34.00 VAT, 204.00 due."""
    assert cli("customer", "set", "tiny", "--name", "Tiny Ltd", "--address", "1 Road",
               "--tax-treatment", "uk_standard")[0] == 0
    assert cli("grant", "add", "--customer", "tiny", "--amount", "20.00")[0] == 0
    assert cli("close", *which())[0] == 0
    return tiny


def totals_findings(sessions, customer="tiny"):
    return [f for f in report(sessions, customer).findings if f.check == "totals"]


def test_a_legal_invoice_passes_every_figure_draft_and_issued(taxed, cli, sessions):
    found = totals_findings(sessions)
    kinds = {f.kind: f for f in found}
    assert all(f.status == OK for f in found), [f for f in found if f.status != OK]
    assert kinds["due = net + tax"].found == Decimal("204.00")
    assert kinds["tax = net × rate, rounded down"].expected == Decimal("34.00")
    assert "credit G-000001: no more than the grant has left" in kinds
    assert kinds["journal: receivable debited with what is due"].found == Decimal("204.00")
    assert kinds["journal: journal debits equal credits"].expected == Decimal("224.00")
    assert kinds["journal: revenue less the credits drawn is the net"].found == Decimal("170.00")
    assert cli("approve", *which())[0] == 0 and cli("issue", *which())[0] == 0
    issued = {f.kind: f for f in totals_findings(sessions)}
    assert all(f.status == OK for f in issued.values())
    assert issued["credit G-000001: as the grant ledger records it"].expected == Decimal("20.00")


def test_a_draft_whose_figures_do_not_add_up_is_caught(taxed, sessions):
    with sessions.begin() as session:
        draft = session.scalar(select(Invoice).where(Invoice.customer == "tiny"))
        totals = {**draft.document["totals"], "tax": "35.00", "due": "205.00"}
        draft.document = {**draft.document, "totals": totals,
                          "tax": {**draft.document["tax"], "amount": "35.00"}}
    wrong = {f.kind: (f.expected, f.found) for f in totals_findings(sessions) if f.status == DISCREPANCY}
    assert wrong["tax = net × rate, rounded down"] == (Decimal("34.00"), Decimal("35.00"))
    assert "due = net + tax" not in wrong       # 170.00 + 35.00 = 205.00: the sums hold, the rate does not
    assert not report(sessions, "tiny").passed


def test_credits_beyond_the_grant_are_caught_on_a_draft_and_on_an_issued_invoice(taxed, cli, sessions):
    with sessions.begin() as session:
        session.scalar(select(CreditGrant)).amount = Decimal("15.00")
    wrong = {f.kind: (f.expected, f.found) for f in totals_findings(sessions) if f.status == DISCREPANCY}
    assert wrong["credit G-000001: no more than the grant's amount"] == (Decimal("15.00"), Decimal("20.00"))
    assert wrong["credit G-000001: no more than the grant has left"] == (Decimal("15.00"), Decimal("20.00"))
    with sessions.begin() as session:
        session.scalar(select(CreditGrant)).amount = Decimal("20.00")
    assert cli("approve", *which())[0] == 0 and cli("issue", *which())[0] == 0
    with sessions.begin() as session:
        session.scalar(select(CreditGrant)).amount = Decimal("12.00")
    wrong = {f.kind: (f.expected, f.found) for f in totals_findings(sessions) if f.status == DISCREPANCY}
    assert wrong["grant G-000001: drawn in all no more than granted"] == (Decimal("12.00"), Decimal("20.00"))


def test_a_credit_on_another_customers_grant_is_caught(taxed, sessions):
    with sessions.begin() as session:
        draft = session.scalar(select(Invoice).where(Invoice.customer == "tiny"))
        credits = [{"grant": "G-000099", "amount": "-20.00", "remaining": "0.00"}]
        draft.document = {**draft.document, "credits": credits}
    wrong = [f.kind for f in totals_findings(sessions) if f.status == DISCREPANCY]
    assert wrong == ["credit G-000099 draws on a grant of tiny"]


def test_a_line_that_does_not_reach_the_total_unbalances_the_journal(taxed, sessions):
    with sessions.begin() as session:
        draft = session.scalar(select(Invoice).where(Invoice.customer == "tiny"))
        sites = [dict(site) for site in draft.document["sites"]]
        sites[0] = {**sites[0], "lines": [{**sites[0]["lines"][0], "amount": "101.00"}, *sites[0]["lines"][1:]]}
        draft.document = {**draft.document, "sites": sites}
    wrong = {f.kind: (f.expected, f.found) for f in totals_findings(sessions) if f.status == DISCREPANCY}
    assert wrong == {"journal: revenue credited with the charges' total": (Decimal("190.00"), Decimal("191.00")),
                     "journal: revenue less the credits drawn is the net": (Decimal("170.00"), Decimal("171.00")),
                     "journal: journal debits equal credits": (Decimal("224.00"), Decimal("225.00"))}
