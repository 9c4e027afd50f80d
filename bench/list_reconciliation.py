"""The reconciliation list at real size (issue 14, item 12): 100 customers x 24 periods, three runs each.

    python bench/list_reconciliation.py                          # SQLite and (if reachable) PostgreSQL
    python bench/list_reconciliation.py --backend sqlite --requests 30

The database holds, for every customer and period, three stored runs (the list
shows the last of each: 2,400 rows of 7,200), each with a report of 25 findings
as `billing close` stores them; one period in eight failed, half of those were
explained. The portal (`create_app`, signed in as finance, its test client: no
network) is asked for the list's first page, a page sorted by the money
difference, one customer's periods, and the third page of the failed ones;
each request is timed from the request to the whole page (the database's
filtering, sorting and paging, the audit entry it records and commits, the
template). The target is under 200 ms.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from ingest_db import DEFAULT_POSTGRES, fresh_database, machine
from sqlalchemy import insert
from sqlalchemy.exc import DBAPIError

from admin_app import create_app
from audit.log import Actor
from engine.periods import Period
from identity import accounts
from identity.accounts import User
from identity.signin import open_session
from review.models import Reconciliation, ReconciliationExplanation
from review.reconcile import OK, EventQuery, Finding, Report, Threshold
from storage import db, schema

UTC = dt.UTC
TARGET_MS = 200
REQUESTS = {
    "first page": "/reconciliation",
    "sorted by difference": "/reconciliation?sort=difference&dir=desc",
    "one customer": "/reconciliation?customer=cust-042",
    "failed, page 3": "/reconciliation?outcome=failed&page=3",
}


def report_json(customer: str, period: Period, passed: bool, ran_at: dt.datetime) -> dict:
    events = EventQuery(customer, period.first_day, period.last_day)
    findings = tuple(Finding("recount", "rollups against the events", f"site-{n:02d}", "standard", "quantity",
                             Decimal(100 + n), Decimal(100 + n), OK, events, f"{n} events") for n in range(25))
    report = Report(customer, period, "GBP", 2, Threshold(Decimal("0.00"), Decimal(0)), 1, "draft", "1234.56",
                    ran_at, findings, {"recount": 25})
    return {**report.as_json(), "passed": passed}


def seed(url: str, customers: int, periods: int, runs: int) -> int:
    engine = db.connect(url)
    schema.upgrade(engine)
    sessions = db.session_factory(engine)
    first = Period(2025, 1)
    rows, explained, ran = [], [], dt.datetime(2027, 1, 1, tzinfo=UTC)
    for c in range(customers):
        for p in range(periods):
            period = first.shift(p)
            failed = (c + p) % 8 == 0
            for run in range(runs):
                last = run == runs - 1
                passed = not (failed and last)
                rows.append({"customer": f"cust-{c:03d}", "period": period, "invoice_id": None,
                             "ran_at": ran - dt.timedelta(minutes=runs - run), "ran_by": "cli:bench",
                             "passed": passed, "difference": Decimal("0.00") if passed else Decimal("12.34"),
                             "fingerprint": "0" * 64, "report": report_json(f"cust-{c:03d}", period, passed, ran)})
    with sessions.begin() as session:
        for start in range(0, len(rows), 1000):
            session.execute(insert(Reconciliation), rows[start:start + 1000])
    with sessions.begin() as session:
        failed_ids = [row.id for row in session.query(Reconciliation).filter(Reconciliation.passed.is_(False))]
        explained = failed_ids[::2]
        session.execute(insert(ReconciliationExplanation), [
            {"reconciliation_id": i, "explained_at": ran, "explained_by": "finance@example.com", "text": "known"}
            for i in explained])
        user, _ = accounts.add_user(session, Actor("cli:bench", "test"), "finance@example.com", "finance",
                                    password="correct horse battery staple")
        user.totp_secret, user.enrolled = "JBSWY3DPEHPK3PXP", True
        token, _ = open_session(session, session.get(User, user.id), "127.0.0.1", dt.datetime.now(UTC))
    engine.dispose()
    return token


def measure(url: str, token: str, requests: int) -> dict[str, list[float]]:
    app = create_app({"TESTING": True, "BILLING_ENV": "test", "DATABASE_URL": url,
                      "SECRET_KEY": "bench-only-secret"})
    client = app.test_client()
    with client.session_transaction() as cookie:
        cookie["_user_id"] = token
        cookie["_fresh"] = True
    timings: dict[str, list[float]] = {}
    for name, path in REQUESTS.items():
        response = client.get(path)   # once, not counted: the first render compiles the template
        assert response.status_code == 200, (path, response.status_code)
        own = timings.setdefault(name, [])
        for _ in range(requests):
            started = time.perf_counter()
            response = client.get(path)
            own.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200 and b"reconciliation-periods" in response.data
    app.extensions["billing.engine"].dispose()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--customers", type=int, default=100)
    parser.add_argument("--periods", type=int, default=24)
    parser.add_argument("--runs", type=int, default=3, help="stored runs per customer and period")
    parser.add_argument("--requests", type=int, default=20, help="timed requests per kind of page")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/billing-bench"))
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    print(machine())
    print(f"{args.customers} customers x {args.periods} periods, {args.runs} runs each "
          f"({args.customers * args.periods * args.runs:,} stored, {args.customers * args.periods:,} listed)")
    for backend in (("sqlite", "postgresql") if args.backend == "both" else (args.backend,)):
        try:
            url, drop = fresh_database(backend, args.workdir, args.postgres_url, "list-reconciliation")
        except DBAPIError as exc:   # PostgreSQL not reachable: said, and the other backend still runs
            print(f"\n== {backend}: not run ({exc.__class__.__name__}: {exc})")
            continue
        try:
            started = time.perf_counter()
            token = seed(url, args.customers, args.periods, args.runs)
            print(f"\n== {backend} (seeded in {time.perf_counter() - started:.1f} s)")
            for name, times in measure(url, token, args.requests).items():
                verdict = "under" if statistics.median(times) < TARGET_MS else "OVER"
                print(f"  {name:22} median {statistics.median(times):7.1f} ms  max {max(times):7.1f} ms  "
                      f"({verdict} the {TARGET_MS} ms target)")
        finally:
            drop()


if __name__ == "__main__":
    main()
