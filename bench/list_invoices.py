"""The portal's invoice list with 100 customers over 24 periods (2,400 invoices): under the dashboard's 200 ms?

    python bench/list_invoices.py                    # 30 requests of each page, medians
    python bench/list_invoices.py --requests 50 --postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres

A temporary SQLite database (and, with --postgres-url, a database of its own on
that server, dropped at the end) holds 100 contracts (acme-health's text under
100 ids, starting 2024-05) and, for each, 24 periods of invoices (2024-05 to
2026-04): issued and numbered, every twentieth voided, the last period a draft
and every seventh approved. Each invoice's document is a real one (acme-health's
June 2026, computed from its example events by the engine) renamed to its
customer and period, with a total of its own, so the rows are as large as real
ones. Then a finance user's requests, through the Flask test client (the whole
app: sign-in check, access, the queries, the template, the audit entry each list
view writes), are timed one after the other: the first page, a status filter,
a customer filter, a sort by total and a page in the middle. Printed: each
page's median, p95 and max in ms (wall), the median of the request's own CPU
(the serving thread's), the machine and its load.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from ingest_db import machine

CUSTOMERS, PERIODS = 100, 24
FIRST = (2024, 5)
UTC = dt.UTC
PAGES = {
    "first page": "/invoices",
    "status = Issued": "/invoices?status=issued",
    "one customer": "/invoices?customer=customer-042",
    "sorted by total": "/invoices?sort=total&dir=desc",
    "page 24 of 48": "/invoices?page=24",
}


def build(url: str) -> None:
    """The contracts, a real document, and the 2,400 invoices (inserted as rows: what is measured is the list)."""
    from dsl.compile import compile_file, compile_source
    from engine.periods import Period
    from ingest.pipeline import ingest_events
    from ledger.contracts import save_contract
    from ledger.models import Invoice, InvoiceVoid
    from lifecycle.transitions import close
    from metering.events import read_events
    from settings.environment import load
    from storage import db, schema

    engine = db.connect(url)
    schema.upgrade(engine)
    sessions = db.session_factory(engine)
    contracts = ROOT / "contracts"
    with sessions.begin() as session:
        save_contract(session, compile_file(str(contracts / "acme-health.pricing")), author="bench")
    for _ in ingest_events(sessions, read_events(str(contracts / "acme-health.events.jsonl"))):
        pass
    with sessions.begin() as session:
        template = close(session, "acme-health", Period(2026, 6), seller=dict(load("test", {}).seller))[0].document
    text = (contracts / "acme-health.pricing").read_text(encoding="utf-8").replace("2026-04-01", "2024-05-01")
    rng = random.Random(14)
    with sessions.begin() as session:
        for n in range(CUSTOMERS):
            customer = f"customer-{n:03d}"
            source = text.replace('"acme-health"', f'"{customer}"').replace("Acme Health Ltd", f"Customer {n:03d} Ltd")
            save_contract(session, compile_source(source.encode(), customer), author="bench")
        number = 0
        for n in range(CUSTOMERS):
            customer = f"customer-{n:03d}"
            for p in range(PERIODS):
                period = Period(*FIRST).shift(p)
                total = Decimal(rng.randrange(50_000, 2_000_000)) / 100
                document = {**template, "customer": f"Customer {n:03d} Ltd", "contract": customer,
                            "period": str(period), "totals": {**template["totals"], "total": f"{total:.2f}"}}
                last = p == PERIODS - 1
                status = ("approved" if n % 7 == 0 else "draft") if last else "issued"
                made = dt.datetime(period.year, period.month, 1, tzinfo=UTC) + dt.timedelta(days=33)
                row = Invoice(customer=customer, period=period, status=status, document=document,
                              contract_sha="0" * 64, cap_counts_before=[], cap_counts=[], usage_hash="0" * 64,
                              created_at=made)
                if status == "issued":
                    number += 1
                    row.number, row.issued_at, row.issued_by = f"TEST-{period.year}-{number:06d}", made, "bench"
                session.add(row)
                if status == "issued" and (n * PERIODS + p) % 20 == 0:
                    session.flush()
                    session.add(InvoiceVoid(invoice_id=row.id, voided_at=made, voided_by="bench", reason="bench"))
    engine.dispose()


def signed_in_client(app, url: str):
    from audit.log import Actor
    from identity.accounts import add_user
    from identity.signin import open_session
    from storage import db

    engine = db.connect(url)
    with db.session_factory(engine).begin() as session:
        user, _ = add_user(session, Actor("cli:bench", "test"), "bench.finance@example.com", "finance",
                           password="bench finance password, long enough")
        user.totp_secret, user.enrolled = "JBSWY3DPEHPK3PXP", True
        token, _ = open_session(session, user, "127.0.0.1", dt.datetime.now(UTC))
    engine.dispose()
    client = app.test_client()
    with client.session_transaction() as cookie:
        cookie["_user_id"], cookie["_fresh"] = token, True
    return client


def measure(url: str, requests: int) -> dict[str, tuple[list[float], list[float]]]:
    """Each page's (wall ms, this thread's CPU ms) per request: the test client serves in the caller's thread, so
    the CPU is the request's own, what a loaded machine does not inflate."""
    from admin_app import create_app

    os.environ.setdefault("BILLING_SECRET_KEY", "bench-only")
    app = create_app({"BILLING_ENV": "test", "DATABASE_URL": url})
    client = signed_in_client(app, url)
    timings: dict[str, tuple[list[float], list[float]]] = {}
    try:
        for name, path in PAGES.items():
            answer = client.get(path)   # once, not counted: the first compilation of the template, the caches
            if answer.status_code != 200 or b"invoices" not in answer.data:
                raise SystemExit(f"{path}: {answer.status_code}")
            times, cpu = [], []
            for _ in range(requests):
                started, started_cpu = time.perf_counter(), time.thread_time()
                answer = client.get(path)
                times.append((time.perf_counter() - started) * 1000)
                cpu.append((time.thread_time() - started_cpu) * 1000)
                assert answer.status_code == 200
            timings[name] = (times, cpu)
    finally:
        app.extensions["billing.engine"].dispose()
    return timings


def report(backend: str, timings: dict[str, tuple[list[float], list[float]]]) -> None:
    print(f"\n== {backend}: {CUSTOMERS} customers x {PERIODS} periods = {CUSTOMERS * PERIODS:,} invoices, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'page':<18} {'median':>8} {'p95':>8} {'max':>8} {'CPU median':>11}   (ms)")
    for name, (times, cpu) in timings.items():
        ordered = sorted(times)
        p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
        print(f"{name:<18} {statistics.median(times):8.1f} {p95:8.1f} {max(times):8.1f} {statistics.median(cpu):11.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=30, help="timed requests of each page (default 30)")
    parser.add_argument("--postgres-url", help="also on PostgreSQL: a server URL (a database is made and dropped)")
    args = parser.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'list.db'}"
        started = time.perf_counter()
        build(url)
        print(f"built in {time.perf_counter() - started:.1f} s")
        report("SQLite", measure(url, args.requests))
    if args.postgres_url:
        from ingest_db import fresh_database

        url, drop = fresh_database("postgresql", Path(tempfile.gettempdir()), args.postgres_url, "list-invoices")
        try:
            build(url)
            report("PostgreSQL", measure(url, args.requests))
        finally:
            drop()


if __name__ == "__main__":
    main()
