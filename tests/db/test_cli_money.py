"""Money in the command line's text output is written the one way (issue #14 item 6): engine.money.display in
the environment's locale (billing/output.py `money`), as the portal writes it; JSON output keeps plain decimal
strings (its format is the interface's)."""

from __future__ import annotations

import json
import re
from decimal import Decimal

from billing.output import money
from engine.money import display

from .test_lifecycle import MAY, _issue, customers  # noqa: F401  (fixtures)

OTHER_WAYS = re.compile(r"\b(?:GBP|USD|EUR)\s*-?\d[\d,]*\.\d\d|-?\d[\d,]*\.\d\d\s*(?:GBP|USD|EUR)\b")


def test_money_follows_the_environments_locale(monkeypatch):
    monkeypatch.setenv("BILLING_ENV", "test")           # en_GB
    assert money(Decimal("7802"), "GBP") == "£7,802.00" and money("-5", "USD") == "-US$5.00"
    monkeypatch.setenv("BILLING_ENV", "us-prod")        # en_US
    assert money("-5", "USD") == "-$5.00" and money("1234.5", "GBP") == "£1,234.50"
    monkeypatch.setenv("BILLING_ENV", "no-such-environment")
    assert money("1", "GBP") == "£1.00"                 # the command says the environment is unknown, not this
    assert money("12.5", None) == "12.5"                # no currency known: the amount as it is


def test_grant_add_and_list_write_money_one_way(customers, cli):  # noqa: F811
    status, out, err = cli("grant", "add", "--customer", "tiny", "--amount", "1500", "--reason", "goodwill")
    assert status == 0, err
    assert "of £1,500.00 from" in out and not OTHER_WAYS.search(out)
    status, out, err = cli("grant", "list", "--customer", "tiny")
    assert status == 0, err
    assert "£1,500.00 from" in out and "remaining £1,500.00" in out and not OTHER_WAYS.search(out)
    status, out, _ = cli("grant", "list", "--customer", "tiny", "--format", "json")
    [grant] = json.loads(out)
    for key in ("amount", "remaining"):                                          # JSON: plain decimal strings
        assert re.fullmatch(r"\d+(\.\d+)?", grant[key]) and Decimal(grant[key]) == 1500


def test_a_credit_note_line_writes_money_one_way(customers, cli, sessions):  # noqa: F811
    invoice = _issue(sessions, "tiny", MAY)
    status, out, err = cli("credit", "--number", invoice.number, "--reason", "duplicate invoice")
    assert status == 0, err
    total = display(Decimal(invoice.document["totals"]["total"]), "GBP", "en_GB")
    assert f"= {total})" in out and "net +" in out and not OTHER_WAYS.search(out)
