"""Credit grants (ledger/grants.py, `billing grant`): drawn by priority, then expiry, then age, never more than
remains nor than the invoice's total; issuing consumes, voiding gives back, revoking stops further draws; a
draft whose grant was drawn since is stale; concurrent processes never draw a grant twice."""

from __future__ import annotations

import json
import os
import subprocess
from decimal import Decimal

import pytest
from conftest import TEST_SELLER
from sqlalchemy import func, select

from audit.log import AuditEntry
from engine.refusal import Refused
from ledger.invoices import Selector
from ledger.models import GrantDraw
from lifecycle.transitions import approve, close, issue, void

from .test_lifecycle import BILLING, JUNE, MAY, THRESHOLD, WHO, customers  # noqa: F401  (fixtures)


def _draft(sessions, period, customer="tiny"):
    with sessions.begin() as session:
        row, _ = close(session, customer, period, seller=TEST_SELLER)
        return row.document


def _issue(sessions, period, customer="tiny"):
    _draft(sessions, period, customer)
    with sessions.begin() as session:
        approve(session, Selector(customer, period), WHO, threshold=THRESHOLD, seller=TEST_SELLER)
    with sessions.begin() as session:
        return issue(session, Selector(customer, period), WHO, threshold=THRESHOLD, prefix="TEST",
                     seller=TEST_SELLER).invoice


def _grants(cli, customer="tiny") -> list[dict]:
    status, out, err = cli("grant", "list", "--customer", customer, "--format", "json")
    assert status == 0, err
    return json.loads(out)


def test_grants_are_drawn_by_priority_then_expiry_then_age(customers, cli, sessions):
    assert cli("grant", "add", "--customer", "tiny", "--amount", "100.00", "--reason", "oldest")[0] == 0
    assert cli("grant", "add", "--customer", "tiny", "--amount", "20.00", "--expires", "2026-12-31")[0] == 0
    assert cli("grant", "add", "--customer", "tiny", "--amount", "30.00", "--priority", "1")[0] == 0
    assert cli("grant", "add", "--customer", "tiny", "--amount", "50.00", "--expires", "2026-04-30")[0] == 0
    document = _draft(sessions, MAY)   # total 134.00; the grant that expired in April is not drawn
    assert [(c["grant"], c["amount"], c["remaining"]) for c in document["credits"]] == [
        ("G-000003", "-30.00", "0.00"), ("G-000002", "-20.00", "0.00"), ("G-000001", "-84.00", "16.00")]
    totals = document["totals"]
    assert (totals["total"], totals["credits"], totals["net"], totals["due"]) == ("134.00", "-134.00", "0.00",
                                                                                  "0.00")
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(AuditEntry)
                              .where(AuditEntry.action == "grant.add")) == 4


def test_issuing_consumes_voiding_gives_back_and_revoking_stops_draws(customers, cli, sessions):
    assert cli("grant", "add", "--customer", "tiny", "--amount", "100.00", "--from", "2026-05")[0] == 0
    invoice = _issue(sessions, MAY)
    assert invoice.document["totals"]["net"] == "34.00"
    [grant] = _grants(cli)
    assert grant["remaining"] == "0.00" and grant["draws"][0]["invoice"] == invoice.number
    with sessions.begin() as session:
        void(session, Selector(number=invoice.number), WHO, "wrong sites")
    [grant] = _grants(cli)
    assert grant["remaining"] == "100.00" and grant["draws"][0]["given_back"] is True
    status, _, err = cli("grant", "revoke", "G-000001", "--reason", "granted by mistake")
    assert status == 0, err
    assert _draft(sessions, MAY)["credits"] == []
    status, _, err = cli("grant", "revoke", "G-000001", "--reason", "again")
    assert status == 1 and "revoked already" in err


def test_a_draft_whose_grant_was_drawn_since_is_stale(customers, cli, sessions):
    assert cli("grant", "add", "--customer", "tiny", "--amount", "150.00", "--from", "2026-05")[0] == 0
    _draft(sessions, JUNE)
    _issue(sessions, MAY)
    with sessions.begin() as session, pytest.raises(Refused) as refused:
        approve(session, Selector("tiny", JUNE), WHO, threshold=THRESHOLD, seller=TEST_SELLER)
    assert refused.value.refusal.code == "draft-outdated"


def test_mistakes_are_one_line(customers, cli):
    for args, words in [(("--amount", "-5"), "positive amount"), (("--amount", "1.001"), "decimal places"),
                        (("--amount", "ten"), "is not an amount"), (("--amount", "5", "--expires", "soon"),
                                                                   "is not a date")]:
        status, _, err = cli("grant", "add", "--customer", "tiny", *args)
        assert status == 1 and words in err and "Traceback" not in err
    status, _, err = cli("grant", "revoke", "G-000009", "--reason", "x")
    assert status == 1 and "no grant G-000009" in err


def test_concurrent_processes_never_draw_a_grant_twice(customers, cli, sessions):
    """Two drafts of one customer both draw one grant; issued at once, one is issued and the other is refused
    as changed since approval: the grant is never drawn beyond its amount."""
    assert cli("grant", "add", "--customer", "tiny", "--amount", "150.00", "--from", "2026-05")[0] == 0
    for period in (MAY, JUNE):
        _draft(sessions, period)
        with sessions.begin() as session:
            approve(session, Selector("tiny", period), WHO, threshold=THRESHOLD, seller=TEST_SELLER)
    processes = [subprocess.Popen([BILLING, "issue", "--customer", "tiny", "--period", str(period)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env={**os.environ, "PYTHONWARNINGS": "ignore"}) for period in (MAY, JUNE)]
    results = [(process.wait(timeout=600), process.stderr.read()) for process in processes]
    assert sorted(status for status, _ in results) == [0, 1], results
    assert "changed since it was approved" in next(err for status, err in results if status)
    with sessions() as session:
        assert session.scalar(select(func.sum(GrantDraw.amount))) <= Decimal("150.00")
