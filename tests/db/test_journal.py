"""The accountant's journal (invoicing/journal.py, lifecycle/journal.py, `billing journal`): every invoice issued,
credit note issued and invoice voided in a month, as double-entry lines on the environment's accounts; each
document balances to the cent and agrees with the invoice's due, charges, tax and credits; cells are safe for
spreadsheets and numbers numeric; the export is audited."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from audit.log import AuditEntry
from engine.periods import Period
from invoicing.journal import Accounts, Posting, agreement, imbalance, invoice_entries
from ledger.models import Invoice
from lifecycle.models import CreditNote
from settings import environment

from .test_reconcile import JUNE, MAY, tiny, which  # noqa: F401  (the fixture and its helpers)

TODAY = Period.of(dt.datetime.now(ZoneInfo("Europe/London")).date())   # the CLI issues today, in London


def journal_rows(cli, *args) -> list[dict]:
    status, out, err = cli("journal", "--period", str(TODAY), *args)
    assert status == 0, err
    return list(csv.DictReader(io.StringIO(out)))


def of_document(rows, document_type, number=None) -> list[dict]:
    return [r for r in rows if r["document_type"] == document_type and (number is None or r["document"] == number)]


def side(rows, column, account=None) -> Decimal:
    return sum((Decimal(r[column]) for r in rows if account is None or r["account"] == account), Decimal(0))


@pytest.fixture
def issued(tiny, cli, sessions):  # noqa: F811
    """May issued with UK VAT and a grant of 20.00 drawn; June issued and voided; a credit note of 10.00 on May."""
    assert cli("customer", "set", "tiny", "--name", "=HYPERLINK(\"http://x\")", "--address", "1 Road",
               "--tax-treatment", "uk_standard")[0] == 0
    assert cli("grant", "add", "--customer", "tiny", "--amount", "20.00")[0] == 0
    for period in (MAY, JUNE):
        for step in ("close", "approve", "issue"):
            status, _, err = cli(step, *which(period))
            assert status == 0, err
    with sessions() as session:
        numbers = {row.period: row.number for row in session.scalars(select(Invoice).where(Invoice.status == "issued"))}
    status, _, err = cli("credit", "--number", numbers[MAY], "--site", "s1", "--amount", "10.00", "--reason", "x")
    assert status == 0, err
    status, _, err = cli("void", "--number", numbers[JUNE], "--reason", "wrong month")
    assert status == 0, err
    return numbers


def test_each_document_balances_and_agrees_with_the_invoice(issued, cli, sessions):
    rows = journal_rows(cli)
    may = of_document(rows, "invoice", issued[MAY])
    # May: s1 100.00 usage; s2 40.00 review usage and a 50.00 minimum true-up; 20.00 of grant; VAT 20% of 170.00
    assert side(may, "debit") == side(may, "credit") == Decimal("224.00")
    assert side(may, "debit", "1100") == Decimal("204.00")                   # due = 170.00 + 34.00
    assert side(may, "debit", "2300") == Decimal("20.00")                    # the grant drawn
    assert side(may, "credit", "4000") == Decimal("140.00")                  # usage, both categories
    assert side(may, "credit", "4100") == Decimal("50.00")                   # the minimum true-up
    assert side(may, "credit", "2200") == Decimal("34.00")
    assert {r["account_name"] for r in may if r["account"] == "1100"} == {"Trade debtors"}
    with sessions() as session:
        documents = {row.period: row.document for row in session.scalars(select(Invoice))}
    totals = documents[MAY]["totals"]
    assert (totals["due"], totals["tax"], totals["credits"]) == ("204.00", "34.00", "-20.00")
    lines = invoice_entries(documents[MAY], Accounts(), Posting(dt.date(2026, 7, 1), "X", "invoice"))
    assert imbalance(lines) == 0 and all(expected == found for _, expected, found in agreement(documents[MAY], lines))

    june, void = of_document(rows, "invoice", issued[JUNE]), of_document(rows, "void", issued[JUNE])
    assert side(june, "debit", "1100") == Decimal("228.00")                  # 190.00 + 38.00, no grant left
    assert [(r["account"], r["debit"], r["credit"]) for r in void] == \
        [(r["account"], r["credit"], r["debit"]) for r in june]              # the void reverses every line
    assert all(r["description"].startswith("reversal: ") for r in void)

    (note,) = {r["document"] for r in of_document(rows, "credit note")}
    credit = of_document(rows, "credit note", note)
    with sessions() as session:
        stored = session.scalar(select(CreditNote))
        tax = Decimal((getattr(stored, "tax", None) or {}).get("amount") or 0)
    assert side(credit, "debit", "4900") == Decimal("10.00") and side(credit, "debit", "2200") == tax
    assert side(credit, "credit", "1100") == Decimal("10.00") + tax == side(credit, "debit")
    assert rows.index(credit[0]) > rows.index(may[-1])                       # by day, then document


def test_the_csv_is_safe_numeric_and_the_export_audited(issued, cli, sessions, tmp_path):
    rows = journal_rows(cli, "--customer", "tiny")
    assert rows and all(r["customer_name"] == "'=HYPERLINK(\"http://x\")" for r in rows)
    for r in rows:
        assert Decimal(r["debit"]) >= 0 and Decimal(r["credit"]) >= 0 and r["currency"] == "GBP"
        assert r["date"] == dt.date.fromisoformat(r["date"]).isoformat()
    assert {r["billing_period"] for r in rows} == {"2026-05", "2026-06"}
    target = tmp_path / "journal.csv"
    assert cli("journal", "--period", str(TODAY), "--output", target)[0] == 0
    assert list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8")))) == rows
    with sessions() as session:
        entries = session.scalars(select(AuditEntry).where(AuditEntry.action == "journal.export")).all()
    assert [e.resource for e in entries] == [f"journal:{TODAY}"] * 2 and entries[-1].details["output"] == str(target)
    assert journal_rows(cli, "--customer", "nobody") == []
    status, out, _ = cli("journal", "--period", str(TODAY.shift(-1)))
    assert status == 0 and out.splitlines() == [out.splitlines()[0]]        # a month with nothing posted


def test_accounts_come_from_the_environment(issued, cli, tmp_path, monkeypatch):
    folder = tmp_path / "environments"
    folder.mkdir()
    settings = (environment.ENVIRONMENTS / "test.toml").read_text(encoding="utf-8")
    (folder / "routed.toml").write_text(settings.replace('name = "test"', 'name = "routed"')
                                        .replace("\n[accounts.categories]\n",
                                                 "\n[accounts.categories]\nreview = \"4010\"\n")
                                        .replace('receivable = "1100"', 'receivable = "1105"'), encoding="utf-8")
    (folder / "wrong.toml").write_text(settings.replace('name = "test"', 'name = "wrong"')
                                       .replace('receivable = "1100"', 'receivable = "1100"\nrecievable = "1"'),
                                       encoding="utf-8")
    monkeypatch.setattr(environment, "ENVIRONMENTS", folder)
    monkeypatch.setenv("BILLING_ENV", "routed")
    may = of_document(journal_rows(cli), "invoice", issued[MAY])
    assert side(may, "credit", "4010") == Decimal("40.00") and side(may, "credit", "4000") == Decimal("100.00")
    assert side(may, "debit", "1105") == Decimal("204.00")
    assert {r["account_name"] for r in may if r["account"] == "1105"} == {"Accounts receivable"}   # no name given
    monkeypatch.setenv("BILLING_ENV", "wrong")
    status, out, err = cli("journal", "--period", str(TODAY))
    assert (status, out) == (1, "") and "recievable" in err and "Traceback" not in err


def test_mistakes_are_usage_errors(tiny, cli):  # noqa: F811
    status, _, err = cli("journal", "--period", "July")
    assert status == 2 and "--period" in err
    status, _, err = cli("journal")
    assert status == 2


def test_a_cap_reduction_is_negative_revenue_and_a_document_without_legal_fields_still_balances():
    document = {"contract": "c", "customer": "C Ltd", "period": "2026-05", "currency": "GBP", "sites": [
        {"site": "s1", "lines": [{"kind": "usage", "category": "standard", "amount": "600.00"},
                                 {"kind": "cap", "categories": ["standard"], "amount": "-100.00"}]}],
        "totals": {"total": "500.00"}}
    accounts = Accounts.of({"kinds": {"cap": "4050"}})
    lines = invoice_entries(document, accounts, Posting(dt.date(2026, 6, 3), "N-1", "invoice"))
    assert [(l.account, l.debit, l.credit) for l in lines] == [
        ("1100", Decimal("500.00"), 0), ("4000", 0, Decimal("600.00")), ("4050", Decimal("100.00"), 0)]
    assert imbalance(lines) == 0
    with pytest.raises(ValueError, match="no account role"):
        Accounts.of({"revenu": "4000"})
