"""Credit notes (store/credit_notes.py, `billing credit`): each references an issued invoice and has its own
number, gap-free; it never credits more than remains creditable; refusals change nothing; stored credit notes
are never changed or deleted (database triggers and the ORM)."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import subprocess
from decimal import Decimal

import pypdf
import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from audit.log import AuditEntry
from ledger.invoices import Selector, find
from ledger.models import Invoice
from engine.refusal import Refused
from lifecycle.credit_notes import credit, creditable
from lifecycle.models import CreditNote
from lifecycle.transitions import void
from storage.base import FrozenRecord

from .test_lifecycle import BILLING, JUNE, MAY, WHO, _issue, customers, snapshot  # noqa: F401  (fixtures)

YEAR = dt.datetime.now(dt.timezone.utc).year


def _number(n: int) -> str:
    return f"TEST-CN-{YEAR}-{n:06d}"


def _site_totals(invoice: Invoice) -> dict[str, Decimal]:
    return {site["site"]: Decimal(site["total"]) for site in invoice.document["sites"]}


def _notes(sessions) -> list[CreditNote]:
    with sessions() as session:
        return session.scalars(select(CreditNote).order_by(CreditNote.id)).all()


def test_a_full_credit_note_credits_every_site_of_the_invoice(customers, cli, sessions, tmp_path):
    invoice = _issue(sessions, "tiny", MAY)
    status, out, err = cli("credit", "--number", invoice.number, "--reason", "duplicate invoice",
                           "--pdf", tmp_path / "cn.pdf")
    assert status == 0, err
    assert _number(1) in out and invoice.number in out
    [note] = _notes(sessions)
    assert note.number == _number(1) and note.invoice_id == invoice.id and note.reason == "duplicate invoice"
    totals = _site_totals(invoice)
    assert {line["site"]: Decimal(line["amount"]) for line in note.lines} == {s: a for s, a in totals.items() if a}
    assert note.total == Decimal(invoice.document["totals"]["total"]) > 0
    pdf = (tmp_path / "cn.pdf").read_bytes()
    assert pdf == note.pdf and hashlib.sha256(pdf).hexdigest() == note.sha256
    pages = "".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf)).pages)
    assert "Credit note" in pages and note.number in pages and invoice.number in pages
    assert f"{note.total:,.2f}" in pages
    with sessions() as session:
        entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "credit_note.issue")).one()
        assert creditable(session, session.get(Invoice, invoice.id)) == {site: Decimal(0) for site in totals}
    assert entry.details["number"] == note.number and entry.details["invoice"] == invoice.number
    assert entry.details["pdf_sha256"] == note.sha256


def test_stated_amounts_never_exceed_what_remains(customers, cli, sessions):
    invoice = _issue(sessions, "tiny", MAY)
    totals = _site_totals(invoice)
    s1 = totals["s1"]
    status, _, err = cli("credit", "--number", invoice.number, "--site", "s1", "--amount", "10.50",
                         "--reason", "goodwill")
    assert status == 0, err
    before = snapshot(sessions)
    status, out, err = cli("credit", "--number", invoice.number, "--site", "s1", "--amount", f"{s1 - Decimal('10.49')}",
                           "--reason", "too much")
    assert (status, out) == (1, "") and f"that remains creditable" in err and f"{s1 - Decimal('10.50')}" in err
    assert snapshot(sessions) == before
    status, _, err = cli("credit", "--number", invoice.number, "--reason", "the rest")
    assert status == 0, err
    first, rest = _notes(sessions)
    assert (first.number, rest.number) == (_number(1), _number(2))
    assert first.lines == [{"site": "s1", "name": "Site one", "amount": "10.50"}]
    credited = {line["site"]: Decimal(line["amount"]) for line in rest.lines}
    assert credited["s1"] == s1 - Decimal("10.50") and credited.get("s2", Decimal(0)) == totals["s2"]
    assert first.total + rest.total == Decimal(invoice.document["totals"]["total"])
    status, out, err = cli("credit", "--number", invoice.number, "--reason", "again")
    assert (status, out) == (1, "") and "nothing remains to credit" in err


def _failing_pdf(note, locale) -> bytes:
    raise OSError("no space left on device")


@pytest.mark.parametrize("case, words", [
    ("draft", "only an issued invoice in force can be credited"),
    ("void", "is void"),
    ("unknown number", "there is no invoice numbered"),
    ("unknown site", "has no site 'nowhere'"),
    ("not an amount", "'12,5' is not an amount"),
    ("zero", "more than zero"),
    ("too many places", "more than the 2 decimal places of GBP"),
    ("same site twice", "stated twice"),
    ("no reason", "needs a reason"),
    ("unpaired", "give each --site or --account its --amount"),
    ("PDF that cannot be made", "PDF cannot be made, so nothing was issued"),
    ("PDF that cannot be written", "nothing was issued"),
])
def test_refusals_change_nothing_and_use_no_number(case, words, customers, cli, sessions, tmp_path):
    invoice = _issue(sessions, "tiny", MAY)
    if case == "void":
        with sessions.begin() as session:
            void(session, Selector(number=invoice.number), WHO, "wrong")
    if case == "draft":
        from lifecycle.transitions import close

        with sessions.begin() as session:
            close(session, "tiny", JUNE)
    before = snapshot(sessions)
    number = ("--number", invoice.number)
    amount = ("--site", "s1", "--amount")
    status, out, err = {
        "draft": lambda: _in_process(sessions, Selector("tiny", JUNE)),
        "void": lambda: cli("credit", *number, "--reason", "r"),
        "unknown number": lambda: cli("credit", "--number", "TEST-1999-000001", "--reason", "r"),
        "unknown site": lambda: cli("credit", *number, "--site", "nowhere", "--amount", "1", "--reason", "r"),
        "not an amount": lambda: cli("credit", *number, *amount, "12,5", "--reason", "r"),
        "zero": lambda: cli("credit", *number, *amount, "0.00", "--reason", "r"),
        "too many places": lambda: cli("credit", *number, *amount, "1.005", "--reason", "r"),
        "same site twice": lambda: cli("credit", *number, *amount, "1", *amount, "2", "--reason", "r"),
        "no reason": lambda: cli("credit", *number, "--reason", "  "),
        "unpaired": lambda: cli("credit", *number, "--site", "s1", "--reason", "r"),
        "PDF that cannot be made": lambda: _in_process(sessions, Selector(number=invoice.number),
                                                       render=_failing_pdf),
        "PDF that cannot be written": lambda: cli("credit", *number, "--reason", "r",
                                                  "--pdf", tmp_path / "missing" / "cn.pdf"),
    }[case]()
    assert status == (2 if case in ("no reason", "unpaired", "PDF that cannot be written") else 1), out + err
    assert out == "" and words in err
    assert snapshot(sessions) == before
    if case != "void":
        status, out, err = cli("credit", *number, *amount, "1.00", "--reason", "after a refusal")
        assert status == 0, err
        assert [note.number for note in _notes(sessions)] == [_number(1)]


def _in_process(sessions, which, **options) -> tuple[int, str, str]:
    try:
        with sessions.begin() as session:
            credit(session, find(session, which), WHO, "r", None, prefix="TEST", **options)
    except Refused as exc:
        return 1, "", str(exc)
    return 0, "", ""


def test_numbers_have_no_gaps_when_processes_credit_at_once(customers, cli, sessions):
    invoices = [_issue(sessions, name, MAY) for name in customers[:4]]
    # Two processes per invoice, each crediting everything: one of each pair must find nothing left.
    processes = [subprocess.Popen([BILLING, "credit", "--number", invoice.number, "--reason", "at once"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env={**os.environ, "PYTHONWARNINGS": "ignore"})
                 for invoice in invoices for _ in range(2)]
    results = [(process.wait(timeout=600), process.stderr.read()) for process in processes]
    assert sorted(status for status, _ in results) == [0] * 4 + [1] * 4, results
    assert all("nothing remains to credit" in err for status, err in results if status == 1)
    notes = _notes(sessions)
    assert sorted(note.number for note in notes) == [_number(n) for n in range(1, 5)]
    assert sorted(note.invoice_id for note in notes) == sorted(invoice.id for invoice in invoices)
    for invoice in invoices:
        [note] = [note for note in notes if note.invoice_id == invoice.id]
        assert note.total == Decimal(invoice.document["totals"]["total"])


def test_credit_notes_refuse_update_and_delete_in_sql(customers, cli, sessions):
    invoice = _issue(sessions, "tiny", MAY)
    assert cli("credit", "--number", invoice.number, "--reason", "r")[0] == 0
    statements = ["UPDATE credit_notes SET total = 0", "UPDATE credit_notes SET reason = 'other'",
                  "DELETE FROM credit_notes"]
    if sessions.kw["bind"].dialect.name == "postgresql":
        statements.append("TRUNCATE credit_notes")
    for statement in statements:
        with pytest.raises(DBAPIError, match="credit note cannot be changed or deleted|cannot be"):
            with sessions.begin() as session:
                session.execute(text(statement))
    assert len(_notes(sessions)) == 1


def test_credit_notes_refuse_update_and_delete_through_the_orm(customers, cli, sessions):
    invoice = _issue(sessions, "tiny", MAY)
    assert cli("credit", "--number", invoice.number, "--reason", "r")[0] == 0
    with pytest.raises(FrozenRecord):
        with sessions.begin() as session:
            session.scalars(select(CreditNote)).one().reason = "other"
    with pytest.raises(FrozenRecord):
        with sessions.begin() as session:
            session.delete(session.scalars(select(CreditNote)).one())
    assert _notes(sessions)[0].reason == "r"


def test_an_invoice_with_a_credit_note_cannot_be_voided(customers, cli, sessions):
    # A void cancels the whole invoice: with a credit note standing, the customer would be credited twice.
    invoice = _issue(sessions, "tiny", MAY)
    status, _, err = cli("credit", "--number", invoice.number, "--site", "s1", "--amount", "1.00", "--reason", "goodwill")
    assert status == 0, err
    before = snapshot(sessions)
    status, out, err = cli("void", "--number", invoice.number, "--reason", "wrong sites")
    assert (status, out) == (1, "")
    assert f"has credit notes ({_number(1)})" in err and "credit the customer twice" in err
    assert snapshot(sessions) == before
