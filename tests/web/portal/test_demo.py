"""`billing demo --no-serve`: the demonstration database, and the printed credentials that open it."""

from __future__ import annotations

import re

import pyotp
from sqlalchemy import func, select

from admin_app import create_app
from billing.cli import main
from store import db
from store.accounts import User
from store.audit import verify
from store.models import Invoice, UsageEvent

from .conftest import form_post


def run(capsys, *args) -> tuple[int, str, str]:
    status = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


def test_the_demo_database_and_its_users(tmp_path, capsys, monkeypatch):
    path = tmp_path / "demo.db"
    status, out, _ = run(capsys, "demo", "--no-serve", "--database", path, "--today", "2026-11-24")
    assert status == 0
    assert "acme-health (Acme Health Ltd)" in out and "issued invoices 2026-04 to 2026-09" in out
    assert "2026-10 finished, not invoiced yet; 2026-11 open" in out
    printed = {email: (role, password, secret) for email, role, password, secret in re.findall(
        r"^  (\S+@demo\.example) +(\w+)(?: \(acme-health\))? +password (\S+) +TOTP secret ([A-Z2-7]+)$", out, re.M)}
    assert sorted(role for role, _, _ in printed.values()) == ["admin", "customer_finance", "deal_desk", "finance"]

    url = f"sqlite:///{path}"
    engine = db.connect(url)
    with db.session_factory(engine)() as session:
        assert session.scalar(select(func.count()).select_from(UsageEvent)) > 1000
        issued = session.scalars(select(Invoice.period).where(Invoice.customer == "acme-health",
                                                              Invoice.status == "issued")).all()
        assert [str(p) for p in sorted(issued)] == ["2026-04", "2026-05", "2026-06", "2026-07", "2026-08", "2026-09"]
        customer_user = session.scalar(select(User).where(User.role == "customer_finance"))
        assert customer_user.customer == "acme-health" and customer_user.enrolled
        assert verify(session) is None
    engine.dispose()

    monkeypatch.setenv("BILLING_SECRET_KEY", "test-only")
    app = create_app({"TESTING": True, "BILLING_ENV": "test", "DATABASE_URL": url})
    client = app.test_client()
    role, password, secret = printed["acme.finance@demo.example"]
    assert form_post(client, "/login", {"email": "acme.finance@demo.example", "password": password}
                     ).headers["Location"] == "/login/code"
    assert form_post(client, "/login/code", {"code": pyotp.TOTP(secret).now()}).headers["Location"] == "/"
    listing = client.get("/invoices").get_data(as_text=True)
    assert listing.count("/invoices/") == 6 and "Northwind" not in listing
    app.extensions["billing.engine"].dispose()

    status, _, err = run(capsys, "demo", "--no-serve", "--database", path)
    assert status == 2 and "exists; pass --replace" in err
    assert run(capsys, "demo", "--no-serve", "--database", path, "--replace", "--today", "2026-11-24")[0] == 0
