"""The invoice lifecycle (store/lifecycle.py): close → approve → issue → void → re-issue; gap-free numbers
under concurrent issuing; issued invoices, their PDFs and voids frozen by the database and the ORM; every
refusal changes nothing."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import TEST_SELLER
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from audit.log import Actor, AuditEntry
from engine.periods import Period, contract_year_start
from engine.refusal import Refused
from ledger.billing_from_db import invoice_from_db
from ledger.invoices import Selector, carried_into, counts_from_json, issued_invoices, status_of
from ledger.models import Invoice, InvoicePdf, InvoiceVoid
from lifecycle.transitions import APPROVAL_GATES, approve, close, issue, void
from review.reconcile import Threshold
from storage.base import Base, FrozenRecord

from .support import TINY, event, write_lines

BILLING = str(Path(sys.executable).with_name("billing"))
MAY, JUNE = Period(2026, 5), Period(2026, 6)
WHO = Actor("cli:tester", "test")
THRESHOLD = Threshold(Decimal("0.01"), Decimal("0"))   # the test environment's


def contract(customer: str) -> str:
    return TINY.replace('contract "tiny"', f'contract "{customer}"')


@pytest.fixture
def customers(cli, tmp_path):
    """Contracts tiny, c1 … c5 (TINY's terms), each with usage in May and June 2026."""
    assert cli("db", "upgrade")[0] == 0
    names = ["tiny", "c1", "c2", "c3", "c4", "c5"]
    lines = []
    for k, name in enumerate(names):
        path = tmp_path / f"{name}.pricing"
        path.write_text(contract(name), encoding="utf-8")
        assert cli("contract", "save", path)[0] == 0
        for n in range(30):
            lines.append(event(f"{name}-{n}", f"2026-05-{1 + n % 28:02d}T10:00:00Z", str(3 + k), customer=name,
                               site="s1" if n % 3 else "s2", category="review" if n % 5 == 0 else "standard"))
            lines.append(event(f"{name}-j{n}", f"2026-06-{1 + n % 28:02d}T10:00:00Z", "20", customer=name))
    status, _, err = cli("ingest", write_lines(tmp_path / "events.jsonl", lines))
    assert status == 0, err
    return names


AUDIT_TABLES = ("audit_log", "audit_head")


def snapshot(sessions) -> dict:
    """Every row of every table but the audit log's: what a refusal must leave as it found it (the audit log
    gains the refusal, a failure: `refusals_recorded`)."""
    with sessions() as session:
        connection = session.connection()
        return {table.name: sorted(map(repr, connection.execute(table.select())))
                for table in Base.metadata.sorted_tables if table.name not in AUDIT_TABLES}


def audit_outcomes(sessions) -> list[tuple[str, str]]:
    with sessions() as session:
        return [(e.action, e.outcome) for e in session.scalars(select(AuditEntry).order_by(AuditEntry.sequence))]


def test_close_approve_issue_void_and_reissue(customers, cli, sessions, tmp_path):
    assert cli("close", "--period", "2026-05")[0:2] == (0, "".join(
        f"{name} 2026-05: draft created (total £{total})\n" for name, total in [
            ("c1", "156.00"), ("c2", "180.00"), ("c3", "202.00"), ("c4", "230.00"), ("c5", "260.00"),
            ("tiny", "134.00")]))
    status, out, _ = cli("close", "--period", "2026-05", "--customer", "tiny")
    assert (status, out) == (0, "tiny 2026-05: draft unchanged (total £134.00)\n")
    assert cli("approve", "--customer", "tiny", "--period", "2026-05")[0] == 0
    pdf_path = tmp_path / "issued.pdf"
    status, out, err = cli("issue", "--customer", "tiny", "--period", "2026-05", "--pdf", pdf_path)
    year = dt.datetime.now(dt.timezone.utc).year
    assert status == 0, err
    assert out == f"tiny 2026-05: issued as TEST-{year}-000001 (total £134.00)\n"
    status, out, err = cli("void", "--number", f"TEST-{year}-000001", "--reason", "site list was wrong")
    assert status == 0, err
    assert cli("close", "--period", "2026-05", "--customer", "tiny")[1] == \
        "tiny 2026-05: draft created (total £134.00)\n"
    assert cli("approve", "--customer", "tiny", "--period", "2026-05")[0] == 0
    assert cli("issue", "--customer", "tiny", "--period", "2026-05")[1] == \
        f"tiny 2026-05: issued as TEST-{year}-000002 (total £134.00)\n"

    with sessions() as session:
        first, second = session.scalars(select(Invoice).where(Invoice.customer == "tiny")
                                        .order_by(Invoice.id)).all()
        assert (status_of(session, first), status_of(session, second)) == ("void", "issued")
        assert first.status == second.status == "issued"          # the voided row itself was never touched
        assert second.replaces_id == first.id and second.document == first.document
        voided = session.get(InvoiceVoid, first.id)
        assert (voided.voided_by, voided.reason) == ("cli:" + _user(), "site list was wrong")
        stored = session.get(InvoicePdf, first.id)
        assert stored.pdf == pdf_path.read_bytes() and stored.sha256 == hashlib.sha256(stored.pdf).hexdigest()
        assert hashlib.sha256(session.get(InvoicePdf, second.id).pdf).hexdigest() == \
            session.get(InvoicePdf, second.id).sha256
        assert first.contract_sha == second.contract_sha and first.usage_hash == second.usage_hash
        assert list(issued_invoices(session, "tiny")) == [MAY]   # the void one counts for nothing
        actions = [(e.actor, e.action, e.resource) for e in session.scalars(select(AuditEntry)
                                                                            .order_by(AuditEntry.sequence))
                   if e.action.startswith("invoice.") and e.action != "invoice.close"]   # closes, saves and
        # reconciliation runs are audited too (tests/web/portal/test_audit.py: a close's entry, as the portal's)
    actor = "cli:" + _user()
    assert actions == [
        (actor, "invoice.approve", f"invoice:tiny/2026-05#{first.id}"),
        (actor, "invoice.issue", f"invoice:tiny/2026-05#{first.id}"),
        (actor, "invoice.void", f"invoice:tiny/2026-05#{first.id}"),
        (actor, "invoice.approve", f"invoice:tiny/2026-05#{second.id}"),
        (actor, "invoice.issue", f"invoice:tiny/2026-05#{second.id}"),
    ]


def test_the_issued_pdf_carries_the_number_and_the_total(customers, sessions):
    pypdf = pytest.importorskip("pypdf")
    issued = _issue(sessions, "tiny", MAY)
    with sessions() as session:
        stored = session.get(InvoicePdf, issued.id)
        assert stored.sha256 == hashlib.sha256(stored.pdf).hexdigest()
        pages = "".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(stored.pdf)).pages)
    assert issued.number in pages and "134.00" in pages


def _user() -> str:
    from ledger.contracts import author_name

    return author_name()


def _issue(sessions, customer: str, period: Period, **options) -> Invoice:
    with sessions.begin() as session:
        close(session, customer, period, seller=TEST_SELLER)
    with sessions.begin() as session:
        approve(session, Selector(customer, period), WHO, threshold=THRESHOLD, seller=TEST_SELLER)
    with sessions.begin() as session:
        return issue(session, Selector(customer, period), WHO, threshold=THRESHOLD, prefix="TEST", seller=TEST_SELLER,
                     **options).invoice


def _failing_pdf(invoice, number, issued_on, locale) -> bytes:
    raise OSError("no space left on device")


@pytest.mark.parametrize("case", ["issue a draft", "approve twice", "void a draft", "void twice",
                                  "issue twice", "period outside the contract", "unknown customer",
                                  "PDF that cannot be made", "PDF that cannot be written",
                                  "approve a stale draft", "issue what changed since approval"])
def test_refusals_change_nothing(case, customers, cli, sessions, tmp_path):
    with sessions.begin() as session:
        close(session, "tiny", MAY, seller=TEST_SELLER)
    if case in ("approve twice", "PDF that cannot be made", "PDF that cannot be written",
                "issue what changed since approval"):
        assert cli("approve", "--customer", "tiny", "--period", "2026-05")[0] == 0
    if case in ("void twice", "issue twice"):
        _issue(sessions, "tiny", MAY)
    if case == "void twice":
        assert cli("void", "--customer", "tiny", "--period", "2026-05", "--reason", "first")[0] == 0
    if case in ("approve a stale draft", "issue what changed since approval"):
        status, _, err = cli("ingest", write_lines(tmp_path / "more.jsonl", [event("more", "2026-05-20T10:00:00Z")]))
        assert status == 0, err
    before, logged = snapshot(sessions), audit_outcomes(sessions)
    which = ("--customer", "tiny", "--period", "2026-05")
    status, out, err = {
        "issue a draft": lambda: cli("issue", *which),
        "approve twice": lambda: cli("approve", *which),
        "void a draft": lambda: cli("void", *which, "--reason", "x"),
        "void twice": lambda: cli("void", *which, "--reason", "again"),
        "issue twice": lambda: cli("issue", *which),
        "period outside the contract": lambda: cli("close", "--customer", "tiny", "--period", "2025-12"),
        "unknown customer": lambda: cli("close", "--customer", "nobody", "--period", "2026-05"),
        "PDF that cannot be made": lambda: _refused_in_process(sessions),
        "PDF that cannot be written": lambda: cli("issue", *which, "--pdf", tmp_path / "missing" / "x.pdf"),
        "approve a stale draft": lambda: cli("approve", *which),
        "issue what changed since approval": lambda: cli("issue", *which),
    }[case]()
    assert status == (2 if case == "PDF that cannot be written" else 1), out + err
    assert out == ""
    expected = {
        "issue a draft": "is draft: only an approved invoice can be issued",
        "approve twice": "is already approved",
        "void a draft": "is draft: only an issued invoice can be voided",
        "void twice": "is void: only an issued invoice can be voided",
        "issue twice": "is issued: only an approved invoice can be issued",
        "period outside the contract": "period 2025-12 is outside the contract 'tiny'",
        "unknown customer": "nobody",
        "PDF that cannot be made": "the PDF cannot be made, so nothing was issued: no space left on device",
        "PDF that cannot be written": "nothing was issued",
        "approve a stale draft": "changed since the draft was made",
        "issue what changed since approval": "changed since it was approved",
    }[case]
    assert expected in err
    assert snapshot(sessions) == before
    step = "close" if case in ("period outside the contract", "unknown customer") else case.split()[0]
    recorded = [] if step not in ("approve", "issue", "void", "close") or case.startswith("PDF") else [(f"invoice.{step}",
                                                                                              "failure")]
    assert audit_outcomes(sessions)[len(logged):] == recorded   # as the portal records a refused step


def _refused_in_process(sessions) -> tuple[int, str, str]:
    try:
        with sessions.begin() as session:
            issue(session, Selector("tiny", MAY), WHO, threshold=THRESHOLD, prefix="TEST", seller=TEST_SELLER,
                  render=_failing_pdf)
    except Refused as exc:
        return 1, "", str(exc)
    return 0, "", ""


def test_a_period_that_no_contract_bills_is_refused(customers, cli):
    status, out, err = cli("close", "--period", "2025-01")
    assert (status, out) == (1, "") and "no contract bills 2025-01" in err


def test_approval_gates_are_one_named_tuple():
    assert [gate.__name__ for gate in APPROVAL_GATES] == ["draft_is_current", "profile_complete", "reconciliation_passed"]


def test_issued_rows_refuse_update_and_delete_in_sql(customers, sessions):
    issued = _issue(sessions, "tiny", MAY)
    with sessions.begin() as session:
        void(session, Selector(number=issued.number), WHO, "to test its row too")
    statements = [
        "UPDATE invoices SET document = '{}' WHERE id = :id",
        "UPDATE invoices SET status = 'void' WHERE id = :id",
        "UPDATE invoices SET number = NULL WHERE id = :id",
        "DELETE FROM invoices WHERE id = :id",
        "UPDATE invoice_pdfs SET pdf = :nothing WHERE invoice_id = :id",
        "UPDATE invoice_pdfs SET sha256 = 'x' WHERE invoice_id = :id",
        "DELETE FROM invoice_pdfs WHERE invoice_id = :id",
        "UPDATE invoice_voids SET reason = 'x' WHERE invoice_id = :id",
        "DELETE FROM invoice_voids WHERE invoice_id = :id",
    ]
    before = snapshot(sessions)
    for statement in statements:
        with pytest.raises(DBAPIError, match="cannot be changed or deleted"):
            with sessions.begin() as session:
                session.execute(text(statement), {"id": issued.id, "nothing": b""})
    assert snapshot(sessions) == before


def test_issued_rows_refuse_update_and_delete_through_the_orm(customers, sessions):
    issued = _issue(sessions, "tiny", MAY)
    with sessions.begin() as session:
        void(session, Selector(number=issued.number), WHO, "to test its row too")
    changes = [
        lambda s: setattr(s.get(Invoice, issued.id), "document", {}),
        lambda s: setattr(s.get(Invoice, issued.id), "status", "void"),
        lambda s: s.delete(s.get(Invoice, issued.id)),
        lambda s: setattr(s.get(InvoicePdf, issued.id), "pdf", b""),
        lambda s: s.delete(s.get(InvoicePdf, issued.id)),
        lambda s: setattr(s.get(InvoiceVoid, issued.id), "reason", "x"),
        lambda s: s.delete(s.get(InvoiceVoid, issued.id)),
    ]
    before = snapshot(sessions)
    for change in changes:
        with pytest.raises(FrozenRecord):
            with sessions.begin() as session:
                change(session)
    assert snapshot(sessions) == before
    with sessions.begin() as session:   # a draft is still recomputed freely
        draft, _ = close(session, "tiny", JUNE, seller=TEST_SELLER)
        draft.document = {**draft.document}
        session.delete(draft)


def test_a_later_period_counts_from_what_the_issued_invoice_counted(customers, sessions):
    issued = _issue(sessions, "tiny", MAY)
    with sessions() as session:
        year_start = contract_year_start(dt.date(2026, 1, 1), JUNE)
        carried = carried_into(issued_invoices(session, "tiny"), year_start, JUNE)
        assert carried.period == MAY and carried.cap_counts == counts_from_json(issued.cap_counts)
        assert carried.cap_counts   # the yearly cap counted something
        assert invoice_from_db(session, "tiny", JUNE).inputs.carried == carried
    with sessions.begin() as session:
        void(session, Selector(number=issued.number), WHO, "voided: June no longer starts from it")
    with sessions() as session:
        assert carried_into(issued_invoices(session, "tiny"), year_start, JUNE) is None


def test_numbers_have_no_gaps_under_concurrent_issuing(customers, sessions):
    for name in customers:
        with sessions.begin() as session:
            close(session, name, MAY, seller=TEST_SELLER)
        with sessions.begin() as session:
            approve(session, Selector(name, MAY), WHO, threshold=THRESHOLD, seller=TEST_SELLER)
    processes = [subprocess.Popen([BILLING, "issue", "--customer", name, "--period", "2026-05"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env={**os.environ, "PYTHONWARNINGS": "ignore"}) for name in customers]
    for process in processes:
        out, err = process.communicate(timeout=600)
        assert process.returncode == 0, err
    year = dt.datetime.now(dt.timezone.utc).year
    with sessions() as session:
        numbers = session.scalars(select(Invoice.number).where(Invoice.number.is_not(None))).all()
        pdfs = session.scalars(select(InvoicePdf)).all()
    assert sorted(numbers) == [f"TEST-{year}-{n:06d}" for n in range(1, len(customers) + 1)]
    assert all(pdf.sha256 == hashlib.sha256(pdf.pdf).hexdigest() for pdf in pdfs) and len(pdfs) == len(customers)


def test_contract_history_shows_a_voided_period_open_until_its_replacement(customers, sessions):
    from ledger.history import contract_history

    def status_of_may() -> str | None:
        with sessions() as session:
            lines = contract_history(session, "tiny", today=dt.date(2026, 6, 15)).periods
        return next(line.invoice for line in lines if line.period == MAY)

    issued = _issue(sessions, "tiny", MAY)
    assert status_of_may() == "issued"
    with sessions.begin() as session:
        void(session, Selector(number=issued.number), WHO, "wrong")
    assert status_of_may() is None
    with sessions.begin() as session:
        close(session, "tiny", MAY, seller=TEST_SELLER)
    assert status_of_may() == "draft"
