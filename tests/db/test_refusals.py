"""Every refusal the command line can meet, said one way (billing/refusals.py): exit 1, nothing on standard
output, on standard error the refusal's message and, when it names a next step, the command that takes it;
and nothing changed. The portal's side is tests/web/portal/test_refusals.py."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from engine.refusal import ACTIONS, Refusal
from ledger.models import ContractVersion

from .support import TINY, event, stored_state, write_lines

NUMBER = "TEST-2026-000001"       # the first invoice the test environment issues
MAY = ("--customer", "tiny", "--period", "2026-05")
CLOSE, APPROVE, ISSUE = ("close", *MAY), ("approve", *MAY), ("issue", *MAY)
MORE_USAGE = ("ingest", "more.jsonl")
CREDIT_ONE = ("credit", "--number", NUMBER, "--site", "s1", "--amount", "1.00", "--reason", "goodwill")


def credit(*pairs: str) -> tuple[str, ...]:
    return ("credit", "--number", NUMBER, *pairs, "--reason", "goodwill")


# code → (commands that succeed first, the refused command, what standard error says)
CASES = {
    "no-invoice": ((), APPROVE, ["there is no invoice of 'tiny' for 2026-05; "
                                 "run `billing close --customer tiny --period 2026-05`"]),
    "already-issued": ((CLOSE, APPROVE, ISSUE), CLOSE, [
        f"is issued as {NUMBER}", f"void it to correct it (`billing void --number {NUMBER} --reason TEXT`)"]),
    "not-approved": ((CLOSE,), ISSUE, ["is draft: only an approved invoice can be issued",
                                      "run `billing approve --customer tiny --period 2026-05` first"]),
    "already-approved": ((CLOSE, APPROVE), APPROVE, ["is already approved (by cli:"]),
    "not-a-draft": ((CLOSE, APPROVE, ISSUE), ("approve", "--number", NUMBER),
                    [f"{NUMBER} is issued: only a draft can be approved"]),
    "draft-outdated": ((CLOSE, MORE_USAGE), APPROVE, [
        "cannot be approved: what it bills changed since the draft was made (",
        "UTC): 1 event arrived since; run `billing close --customer tiny --period 2026-05`"]),
    "changed-since-approval": ((CLOSE, APPROVE, MORE_USAGE), ISSUE, [
        "changed since it was approved (usage or contract), so it must be reviewed and approved again; "
        "run `billing close --customer tiny --period 2026-05`"]),
    "not-issued": ((CLOSE,), ("void", *MAY, "--reason", "wrong"), [
        "is draft: only an issued invoice can be voided (a draft is simply recomputed); "
        "run `billing close --customer tiny --period 2026-05`"]),
    "credited": ((CLOSE, APPROVE, ISSUE, CREDIT_ONE), ("void", "--number", NUMBER, "--reason", "wrong"), [
        "voiding it would credit the customer twice; credit what remains instead (`billing credit --number "
        f"{NUMBER} --reason TEXT`)"]),
    "reason-missing": ((CLOSE, APPROVE, ISSUE), ("void", "--number", NUMBER, "--reason", "  "),
                       ["a void needs a reason"]),
    "unknown-contract": ((), ("close", "--customer", "nobody", "--period", "2026-05"), [
        "no contract 'nobody' in the database; save it with `billing contract save FILE`"]),
    "outside-contract": ((), ("close", "--customer", "tiny", "--period", "2025-12"),
                         ["period 2025-12 is outside the contract 'tiny'"]),
    "first-version-effective": ((), ("contract", "save", "other.pricing", "--effective", "2026-03"), [
        "--effective 2026-03: the first version of 'other' is in effect from its start (2026-01-01, period "
        "2026-01); save it without --effective"]),
    "before-start": ((), ("contract", "save", "tiny.pricing", "--effective", "2025-11"), [
        "--effective 2025-11: a version cannot take effect before the contract starts (2026-01-01)"]),
    "period-issued": ((CLOSE, APPROVE, ISSUE), ("contract", "save", "amended.pricing", "--effective", "2026-05"), [
        "--effective 2026-05: the invoice for 2026-05 is already issued, so a new version can take effect from "
        "2026-06 at the earliest; nothing saved"]),
    "commit-mid-year": ((), ("contract", "save", "committed.pricing", "--effective", "2026-06"), [
        "--effective 2026-06: a version in effect from 2026-06 would change the account's commit (no commit before, "
        "commit 1000.00 yearly prepaid then), which can change only at the start of a contract year; it could take "
        "effect from 2027-01; nothing saved"]),
    "kept-term": ((), ("contract", "save", "paris.pricing", "--effective", "2026-06"), [
        "a new version must keep the contract's timezone (Europe/London in the database, Europe/Paris here)"]),
    "stored-version-invalid": ((), ("invoice", *MAY), ["the stored version tiny@2026-01 no longer compiles"]),
    "not-creditable": ((CLOSE, APPROVE, ISSUE, ("void", "--number", NUMBER, "--reason", "wrong")), CREDIT_ONE,
                       [f"{NUMBER} is void: only an issued invoice in force can be credited"]),
    "nothing-remains": ((CLOSE, APPROVE, ISSUE, credit()), credit(), [f"nothing remains to credit on {NUMBER}"]),
    "no-such-site": ((CLOSE, APPROVE, ISSUE), credit("--site", "s9", "--amount", "1"),
                     [f"{NUMBER} has no site 's9' (its sites: s1, s2)"]),
    "site-twice": ((CLOSE, APPROVE, ISSUE), credit("--site", "s1", "--amount", "1", "--site", "s1", "--amount", "2"),
                   ["site s1 is stated twice"]),
    "not-an-amount": ((CLOSE, APPROVE, ISSUE), credit("--site", "s1", "--amount", "1,50"),
                      ["site s1: '1,50' is not an amount (write it like 120.50)"]),
    "amount-not-positive": ((CLOSE, APPROVE, ISSUE), credit("--site", "s1", "--amount", "-5"),
                            ["site s1: a credited amount is more than zero"]),
    "too-many-places": ((CLOSE, APPROVE, ISSUE), credit("--site", "s1", "--amount", "1.005"),
                        ["site s1: 1.005 has more than the 2 decimal places of GBP"]),
    "more-than-remains": ((CLOSE, APPROVE, ISSUE), credit("--site", "s1", "--amount", "100000"),
                          ["site s1: 100000.00 is more than the", "that remains creditable on it"]),
    "email-taken": ((("user", "add", "kim@example.com", "--role", "finance"),),
                    ("user", "add", "Kim@Example.com", "--role", "finance"),
                    ["Kim@Example.com: not added: a user with this email already exists"]),
    "not-an-email": ((), ("user", "add", "kim", "--role", "finance"), ["kim: not added: this is not an email address"]),
    "unknown-role": ((), ("user", "add", "kim@example.com", "--role", "boss"),
                     ["not added: the role must be one of admin, deal_desk, finance, customer_finance"]),
    "customer-needed": ((), ("user", "add", "kim@example.com", "--role", "customer_finance"),
                        ["choose the customer whose invoices and usage this customer finance user may see"]),
    "unknown-customer": ((), ("user", "add", "kim@example.com", "--role", "customer_finance", "--customer", "nobody"),
                         ["there is no contract 'nobody'"]),
    "customer-not-allowed": ((), ("user", "add", "kim@example.com", "--role", "finance", "--customer", "tiny"),
                             ["only a customer finance user sees one customer: leave the customer empty for this role"]),
    "no-credit-note": ((), ("credit-note", "TEST-CN-2026-000001"),
                       ["there is no credit note numbered TEST-CN-2026-000001"]),
    "unknown-api-key": ((), ("apikey", "revoke", "000000000000"), ["no API key with prefix '000000000000'"]),
    "last-admin": ((("user", "add", "root@example.com", "--role", "admin"),), ("user", "disable", "root@example.com"),
                   ["root@example.com: cannot disable the last active admin"]),
}
# Codes the command line cannot meet, and where each is rendered instead.
ELSEWHERE = {
    "reconciliation-failed": "tests/db/test_reconcile.py (approve and issue on the command line)",
    "tampered": "tests/db/test_tampering.py (an issued invoice changed outside the application, triggers dropped)",
    "pdf-failed": "tests/db/test_lifecycle.py and tests/db/test_credit_notes.py (a renderer that fails)",
    "password-too-short": "tests/web/portal/test_refusals.py (the command line asks no password but on stdin)",
    "password-is-email": "tests/web/portal/test_account.py",
    "more-than-net": "tests/db/test_credit_notes_tax.py (grants paid part of the invoice: its net is less than its charges)",
    "not-a-charge": "tests/db/test_credit_notes_tax.py (an account line that reduces the invoice: drawdown, account cap)",
}


@pytest.fixture
def tiny(cli, tmp_path):
    """Contract tiny saved, with usage in May 2026; the texts the contract cases save, beside it."""
    assert cli("db", "upgrade")[0] == 0
    (tmp_path / "tiny.pricing").write_text(TINY, encoding="utf-8")
    (tmp_path / "other.pricing").write_text(TINY.replace('contract "tiny"', 'contract "other"'), encoding="utf-8")
    (tmp_path / "amended.pricing").write_text(TINY.replace("rate 1.00", "rate 1.10"), encoding="utf-8")
    (tmp_path / "committed.pricing").write_text(TINY[: TINY.rindex("}")] + "    account { commit 1_000.00 yearly prepaid }\n}\n",
                                                encoding="utf-8")
    (tmp_path / "paris.pricing").write_text(TINY.replace("Europe/London", "Europe/Paris"), encoding="utf-8")
    assert cli("contract", "save", "tiny.pricing")[0] == 0
    write_lines(tmp_path / "may.jsonl", [event(n, f"2026-05-{1 + n:02d}T10:00:00Z", "3") for n in range(20)])
    write_lines(tmp_path / "more.jsonl", [event("more", "2026-05-25T10:00:00Z", "7")])
    assert cli("ingest", "may.jsonl")[0] == 0


@pytest.mark.parametrize("code", sorted(CASES))
def test_each_refusal_is_said_on_standard_error_with_exit_1(code, tiny, cli, sessions):
    setup, refused, said = CASES[code]
    for command in setup:
        status, out, err = cli(*command)
        assert status == 0, (command, err)
    if code == "stored-version-invalid":   # the language changed under a saved version
        with sessions.begin() as session:
            session.execute(update(ContractVersion).values(text="contract tiny {"))
    before = stored_state(sessions)
    status, out, err = cli(*refused)
    assert (status, out) == (1, ""), err
    line = err.splitlines()[-1]            # a contract's warnings, if any, come before
    assert line.startswith(f"billing {refused[0]}: ") and all(words in line for words in said), err
    assert stored_state(sessions) == before


@pytest.mark.parametrize("action", ACTIONS)
def test_the_command_line_words_every_action_as_a_command(action):
    from billing.refusals import COMMANDS, refusal_text

    params = {"customer": "acme-health", "period": "2026-05", "number": "UK-2026-000042"}
    text = refusal_text(Refusal("some-code", "not now", action=action, params=params))
    assert set(COMMANDS) == set(ACTIONS)
    assert text.startswith("not now; ") and "{" not in text
    assert "billing " in text or "--effective" in text
