"""`billing demo --no-serve`: the demonstration database made through the real lifecycle, and the printed
credentials (passwords, TOTP secrets, recovery codes, an API key) that open it."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
from decimal import ROUND_DOWN, Decimal
from pathlib import Path

import pyotp
import pytest
from sqlalchemy import func, select

from admin_app import create_app
from audit.log import AuditEntry, verify
from billing.cli import main
from billing.demo import build_demo
from engine.periods import Period
from engine.refusal import Refusal
from identity.accounts import User
from ledger.grants import grant_ledger
from ledger.models import ContractVersion, CustomerProfile, Invoice, InvoicePdf
from ledger.profiles import missing_for
from lifecycle import transitions as lifecycle
from metering.models import UsageEvent
from review.models import Reconciliation
from storage import db

from .conftest import form_post

CONTRACTS = Path(__file__).resolve().parents[3] / "contracts"
TODAY = "2026-11-24"
USER_LINE = re.compile(r"^  (\S+@demo\.example) +(\w+)(?: \(acme-health\))? +password (\S+) +TOTP secret ([A-Z2-7]+)\n"
                       r" +recovery codes ((?:[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4} ?)+)$", re.M)


def run(capsys, *args) -> tuple[int, str, str]:
    status = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


def printed_users(out: str) -> dict[str, tuple[str, str, str, list[str]]]:
    return {email: (role, password, secret, codes.split())
            for email, role, password, secret, codes in USER_LINE.findall(out)}


def statuses(session, customer: str) -> dict[str, tuple[str, str | None]]:
    rows = session.scalars(select(Invoice).where(Invoice.customer == customer)).all()
    return {str(row.period): (lifecycle.status_of(session, row), row.number) for row in rows}


@pytest.fixture
def demo_app(monkeypatch):
    monkeypatch.setenv("BILLING_SECRET_KEY", "test-only")
    made = []

    def make(url: str):
        made.append(create_app({"TESTING": True, "BILLING_ENV": "test", "DATABASE_URL": url}))
        return made[-1]

    yield make
    for app in made:
        app.extensions["billing.engine"].dispose()


def signed_in(app, email: str, password: str, code: str):
    client = app.test_client()
    assert form_post(client, "/login", {"email": email, "password": password}).headers["Location"] == "/login/code"
    assert form_post(client, "/login/code", {"code": code}).headers["Location"] == "/"
    return client


def test_the_demo_database_its_invoices_and_its_users(tmp_path, capsys, demo_app):
    path = tmp_path / "demo.db"
    status, out, err = run(capsys, "demo", "--no-serve", "--database", path, "--today", TODAY)
    assert status == 0, err
    assert "acme-health (Acme Health Ltd)" in out
    assert re.search(r"issued +2026-04 to 2026-09: 6 invoices, numbered TEST-2026-\d{6} to TEST-2026-\d{6}", out)
    assert re.search(r"approved +2026-10: ready to issue", out)
    assert re.search(r"versions +2: an amendment in effect from 2026-10", out)
    assert "How to sign in:" in out and "http://127.0.0.1:8000/login" in out
    users = printed_users(out)
    assert sorted(role for role, *_ in users.values()) == ["admin", "customer_finance", "deal_desk", "finance"]
    assert all(len(codes) == 10 for *_, codes in users.values())

    url = f"sqlite:///{path}"
    engine = db.connect(url)
    with db.session_factory(engine)() as session:
        assert session.scalar(select(func.count()).select_from(UsageEvent)) > 1000
        acme = statuses(session, "acme-health")
        assert {period: state for period, (state, _) in acme.items()} == {
            "2026-04": "issued", "2026-05": "issued", "2026-06": "issued", "2026-07": "issued",
            "2026-08": "issued", "2026-09": "issued", "2026-10": "approved", "2026-11": "draft"}
        northwind = statuses(session, "northwind")
        assert [northwind[p][0] for p in ("2026-09", "2026-10", "2026-11")] == ["issued", "draft", "draft"]
        globex = statuses(session, "globex")    # contracts/globex-research.pricing: an account block
        assert [globex[p][0] for p in ("2026-08", "2026-09", "2026-10", "2026-11")] == [
            "issued", "issued", "draft", "draft"]
        numbers = [number for state, number in [*acme.values(), *northwind.values(), *globex.values()]
                   if state == "issued"]
        assert sorted(numbers) == [f"TEST-2026-{n:06d}" for n in range(1, 17)]
        pdfs = session.scalars(select(InvoicePdf.pdf)).all()
        assert len(pdfs) == 16 and all(pdf.startswith(b"%PDF") for pdf in pdfs)
        august = session.scalar(select(Invoice.document).where(Invoice.customer == "globex",
                                                                Invoice.period == Period(2026, 8)))
        assert [line["kind"] for line in august["account"]["lines"]][:2] == ["commitment_fee", "commitment_drawdown"]
        versions = session.scalars(select(ContractVersion).where(ContractVersion.contract_id == "acme-health")
                                   .order_by(ContractVersion.effective)).all()
        assert [str(v.effective) for v in versions] == ["2026-04", "2026-10"] and "amendment" in versions[1].comment
        actions = [a for a in session.scalars(select(AuditEntry.action))]
        assert actions.count("contract.save") == 4 and actions.count("invoice.issue") == 16
        assert actions.count("invoice.approve") == 17 and actions.count("apikey.create") == 1
        # every close was reconciled, as `billing close` does, and every demo period reconciles clean
        reports = session.scalars(select(Reconciliation)).all()
        assert len(reports) == actions.count("reconciliation.run") > 0
        assert all(report.passed for report in reports)
        assert actions.count("customer.profile") == 3 and actions.count("grant.add") == 2
        # a UK customer with VAT, an EU business under the reverse charge, a US customer with no tax
        profiles = {p.contract_id: p for p in session.scalars(select(CustomerProfile))}
        assert {c: (p.tax_treatment, missing_for(p)) for c, p in profiles.items()} == {
            "acme-health": ("uk_standard", []), "globex": ("reverse_charge", []), "northwind": ("none", [])}
        assert profiles["globex"].tax_id.startswith("DE")
        documents = {(row.customer, str(row.period)): row.document for row in session.scalars(select(Invoice))}
        september = documents[("acme-health", "2026-09")]
        assert september["tax"]["treatment"] == "uk_standard" and september["currency"] == "GBP"
        assert Decimal(september["totals"]["tax"]) == (Decimal(september["totals"]["net"]) * Decimal("0.20")) \
            .quantize(Decimal("0.01"), rounding=ROUND_DOWN) > 0
        assert documents[("globex", "2026-09")]["tax"]["treatment"] == "reverse_charge"
        assert documents[("northwind", "2026-09")]["currency"] == "USD"
        assert "tax" not in documents[("northwind", "2026-09")]   # treatment none: no tax section
        # northwind's grant partly drawn by its last issued invoice, whose net is then 0
        [drawn] = grant_ledger(session, "northwind")
        [draw] = drawn["draws"]
        assert draw["invoice"] == northwind["2026-09"][1] and not draw["given_back"]
        invoice = documents[("northwind", "2026-09")]
        assert Decimal(draw["amount"]) == Decimal(invoice["totals"]["total"]) == -Decimal(invoice["totals"]["credits"])
        assert 0 < Decimal(drawn["remaining"]) == Decimal(drawn["amount"]) - Decimal(draw["amount"])
        assert invoice["totals"]["net"] == "0.00"
        customer_user = session.scalar(select(User).where(User.role == "customer_finance"))
        assert customer_user.customer == "acme-health" and customer_user.enrolled
        assert verify(session) is None
    engine.dispose()

    app = demo_app(url)
    role, password, secret, _ = users["acme.finance@demo.example"]
    client = signed_in(app, "acme.finance@demo.example", password, pyotp.TOTP(secret).now())
    listing = client.get("/invoices").get_data(as_text=True)
    assert listing.count("/invoices/") == 6 and "Northwind" not in listing
    credits = client.get("/credits").get_data(as_text=True)   # acme-health's own grant, not northwind's
    assert "goodwill credit" in credits and "scanner outage" not in credits
    assert client.get("/customers/northwind/grants").status_code == 404
    _, password, _, codes = users["finance@demo.example"]
    finance = signed_in(app, "finance@demo.example", password, codes[0])    # a printed recovery code opens it too
    customers = finance.get("/customers").get_data(as_text=True)
    assert customers.count("complete</span>") == 3 and "incomplete" not in customers
    ledger = finance.get("/customers/northwind/grants").get_data(as_text=True)
    assert northwind["2026-09"][1] in ledger and "scanner outage" in ledger

    key = re.search(r"^  (bk_\S+)$", out, re.M).group(1)
    event = {"specversion": "1.0", "id": "demo-api-1", "source": "platform/eu-west", "type": "unit.processed",
             "time": "2026-11-23T10:00:00Z",
             "data": {"customer": "acme-health", "site": "lon-01", "category": "standard", "quantity": "3"}}
    answer = app.test_client().post("/api/v1/events", data=json.dumps(event), headers={
        "Authorization": f"Bearer {key}", "Content-Type": "application/cloudevents+json"})
    assert answer.status_code == 200 and answer.get_json()["results"][0]["status"] == "accepted"

    # the printed hints work pasted, from any directory: they name the demonstration's database
    hints = re.findall(r"`(BILLING_DATABASE_URL=\S+ billing [^`]+)`", out)
    assert len(hints) == 2 and all(hint.startswith(f"BILLING_DATABASE_URL=sqlite:///{path}") for hint in hints)
    history = next(hint for hint in hints if "contract history" in hint)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    path_with_billing = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    pasted = subprocess.run(history, shell=True, cwd=elsewhere, capture_output=True, text=True, timeout=120,
                            check=False, env={**os.environ, "PATH": path_with_billing})
    assert pasted.returncode == 0, pasted.stderr
    assert "amendment 1" in pasted.stdout and list(elsewhere.iterdir()) == []

    status, _, err = run(capsys, "demo", "--no-serve", "--database", path)
    assert status == 2 and "exists; pass --replace" in err
    assert run(capsys, "demo", "--no-serve", "--database", path, "--replace", "--today", TODAY)[0] == 0


def test_a_refused_approval_is_printed_and_leaves_the_draft(tmp_path, capsys, monkeypatch):
    def unreconciled(session, draft, computed, threshold):
        if str(draft.period) not in ("2026-09", "2026-10"):
            return None
        return Refusal("reconciliation-failed", "its reconciliation finds 1 discrepancy", action="reconcile",
                       params={"customer": draft.customer, "period": draft.period})

    monkeypatch.setattr(lifecycle, "APPROVAL_GATES", (unreconciled,))
    path = tmp_path / "demo.db"
    status, out, err = run(capsys, "demo", "--no-serve", "--database", path, "--today", TODAY)
    assert status == 0
    assert "acme-health 2026-09: left draft: the invoice of 'acme-health' for 2026-09 cannot be approved: " \
           "its reconciliation finds 1 discrepancy" in err
    assert "acme-health 2026-10: left draft" in err and "northwind 2026-09: left draft" in err
    assert re.search(r"issued +2026-04 to 2026-08: 5 invoices", out)
    assert "approved " not in out and printed_users(out)


def test_the_demo_on_either_database(db_url):
    """build_demo itself on SQLite and PostgreSQL: the same lifecycle, the same outcome."""
    summary = build_demo(db_url, CONTRACTS, dt.date(2026, 11, 24))
    acme = next(contract for contract in summary.contracts if contract.contract_id == "acme-health")
    assert [str(i.period) for i in acme.with_status("issued")] == ["2026-04", "2026-05", "2026-06", "2026-07",
                                                                   "2026-08", "2026-09"]
    assert [str(i.period) for i in acme.with_status("approved")] == ["2026-10"]
    assert str(acme.amendment) == "2026-10" and not any(i.refusal for i in acme.invoices)
    globex = next(contract for contract in summary.contracts if contract.contract_id == "globex")
    assert [str(i.period) for i in globex.with_status("issued")] == ["2026-08", "2026-09"]
    assert not any(i.refusal for i in globex.invoices)
    assert summary.api_key.key.startswith("bk_") and len(summary.users) == 4
    engine = db.connect(db_url)
    with db.session_factory(engine)() as session:
        assert verify(session) is None
        assert session.scalar(select(func.count()).select_from(InvoicePdf)) == 16
    engine.dispose()


@pytest.mark.parametrize("command", [
    ("contract", "history", "acme-health"),
    ("invoice", "--customer", "acme-health", "--period", "2026-05"),
    ("customer", "show", "acme-health"),
    ("grant", "list", "--customer", "acme-health"),
    ("close", "--customer", "acme-health", "--period", "2026-05"),
    ("audit", "verify"),
])
def test_a_command_on_a_database_that_is_not_there_says_so_and_creates_nothing(tmp_path, capsys, monkeypatch,
                                                                               command):
    """Issue 14: `billing contract history` on a missing billing.db made an empty one and said "no contract"."""
    missing = tmp_path / "billing.db"
    monkeypatch.setenv("BILLING_DATABASE_URL", f"sqlite:///{missing}")
    status, out, err = run(capsys, *command)
    assert status == 2 and out == ""
    assert f"there is no database sqlite:///{missing}" in err and "`billing db upgrade`" in err
    assert "`billing demo`" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []
