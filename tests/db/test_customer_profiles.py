"""Customer billing profiles (ledger/profiles.py, `billing customer`): only the options given change, every
change is a revision kept by continuum and audited, and approval is refused while the profile lacks what its
tax treatment needs (production: also while there is none)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from audit.log import AuditEntry
from engine.refusal import Refused
from ledger.invoices import Selector
from ledger.profiles import missing_for, profile_of, revisions
from lifecycle.transitions import approve, close

from .test_lifecycle import MAY, THRESHOLD, WHO, customers, snapshot  # noqa: F401  (fixtures)


def test_set_changes_only_the_options_given_and_keeps_every_revision(customers, cli, sessions):
    status, out, err = cli("customer", "set", "tiny", "--name", "Tiny Ltd", "--address", "1 High St",
                           "--address", "London EC1A 1AA", "--tax-treatment", "reverse_charge")
    assert status == 0, err
    assert "revision 1 (reverse_charge)" in out and "the buyer's tax id" in out
    assert cli("customer", "set", "tiny", "--tax-id", "DE811907980", "--terms-days", "14")[0] == 0
    status, out, _ = cli("customer", "show", "tiny", "--format", "json")
    shown = json.loads(out)
    assert (shown["name"], shown["address"], shown["tax_id"], shown["terms_days"], shown["revision"],
            shown["missing"]) == ("Tiny Ltd", ["1 High St", "London EC1A 1AA"], "DE811907980", 14, 2, [])
    with sessions() as session:
        assert [(r["revision"], r["tax_id"]) for r in revisions(session, "tiny")] == [(1, ""), (2, "DE811907980")]
        entries = session.scalars(select(AuditEntry).where(AuditEntry.action == "customer.profile")).all()
    assert [e.details["changed"].get("tax_id") for e in entries] == [None, ["", "DE811907980"]]
    status, out, _ = cli("customer", "show", "tiny")
    assert status == 0 and "net 14" in out and "DE811907980" in out


def test_mistakes_are_one_line_and_change_nothing(customers, cli, sessions):
    before = snapshot(sessions)
    status, _, err = cli("customer", "set", "nobody", "--name", "X")
    assert status == 1 and "no contract 'nobody'" in err and "Traceback" not in err
    status, _, err = cli("customer", "set", "tiny", "--terms-days", "-3")
    assert status == 1 and "0 or more" in err
    status, _, err = cli("customer", "show", "tiny")
    assert status == 1 and "has no billing profile" in err
    assert snapshot(sessions) == before


def test_production_refuses_a_treatment_it_does_not_issue(customers, cli, monkeypatch):
    monkeypatch.setenv("BILLING_ENV", "us-prod")
    status, _, err = cli("customer", "set", "tiny", "--tax-treatment", "uk_standard")
    assert status == 1 and "none or exempt only" in err


@pytest.mark.parametrize("treatment, given, lacking", [
    ("uk_standard", {"name": "Tiny Ltd"}, "the address"),
    ("reverse_charge", {"name": "Tiny GmbH", "address": ["Berlin"]}, "the buyer's tax id"),
    ("exempt", {"name": "Tiny Inc", "address": ["Boston"]}, "the exemption certificate or reason"),
])
def test_approval_is_refused_while_the_profile_lacks_what_its_treatment_needs(customers, sessions, treatment,
                                                                              given, lacking):
    from ledger.profiles import save_profile

    with sessions.begin() as session:
        save_profile(session, "tiny", WHO, {"tax_treatment": treatment, **given})
        close(session, "tiny", MAY)
    with sessions.begin() as session, pytest.raises(Refused) as refused:
        approve(session, Selector("tiny", MAY), WHO, threshold=THRESHOLD)
    assert refused.value.refusal.code == "profile-incomplete" and lacking in str(refused.value)


def test_production_needs_a_profile_and_a_treatment_it_issues(customers, sessions):
    from ledger.profiles import save_profile

    with sessions.begin() as session:
        close(session, "tiny", MAY)
    with sessions.begin() as session, pytest.raises(Refused) as refused:
        approve(session, Selector("tiny", MAY), WHO, threshold=THRESHOLD, profile_required=True)
    assert "lacks a billing profile" in str(refused.value)
    with sessions.begin() as session:
        save_profile(session, "tiny", WHO, {"name": "Tiny Ltd", "address": ["1 High St"], "tax_treatment": "none"})
    with sessions.begin() as session, pytest.raises(Refused) as refused:
        approve(session, Selector("tiny", MAY), WHO, threshold=THRESHOLD, profile_required=True,
                treatments=("uk_standard", "reverse_charge"))
    assert refused.value.refusal.code == "treatment-not-issued"
    with sessions.begin() as session:
        assert missing_for(profile_of(session, "tiny")) == []
        approve(session, Selector("tiny", MAY), WHO, threshold=THRESHOLD)   # the test environment's policy
