"""The audit log page on a year of log: 100,000 entries, filtered, sorted and paged by the database.

    python bench/list_audit.py                          # SQLite, and PostgreSQL if reachable
    python bench/list_audit.py --backend sqlite --entries 100000 --repeat 30

For each database: a fresh one (SQLite: a file in bench/out; PostgreSQL: a
database of its own on --postgres-url, dropped at the end), migrated, then a year
of audit log written straight into the chain (each entry hashed and linked as
audit/log.py `record` does, in batches; `billing audit verify` would pass): 20
users and 3 command-line actors over 365 days, sign-ins, invoice views and
downloads, usage downloads, contract saves, the occasional failure. Then the
app (admin_app.create_app) answers GET /audit in this process, through Flask's
test client, as a signed-in admin: the whole request (access check, session,
the query, the page's template, the `audit.view` entry it records and commits).

Measured, each --repeat times (p50, p95, max in ms), the whole request and, beside it, the
database's part alone (audit/log.py `search` for the same page): the first page (newest
first), the page after 50,000 entries (keyset: the page starts past the entry
the link names), each filter (actor, action prefix, resource part, a week),
each sort (actor, action, resource, outcome; ascending, and its page 300),
and a filter with a sort. The target is the dashboard's: under 200 ms.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import random
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest_db import fresh_database, machine  # noqa: E402  (bench/ingest_db.py)
from sqlalchemy import insert, update  # noqa: E402

from audit.log import GENESIS, AuditEntry, AuditHead, canonical  # noqa: E402
from storage import db, schema  # noqa: E402

DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
UTC = dt.timezone.utc
START = dt.datetime(2025, 12, 1, tzinfo=UTC)
CUSTOMERS = ("acme-health", "northwind", "globex", "initech", "umbrella", "soylent", "hooli", "stark")
TARGET_MS = 200


def entries(count: int, seed: int = 7):
    """A year of log, oldest first: (at, actor, action, resource, ip, outcome, details)."""
    rng = random.Random(seed)
    users = [f"user{n:02d}@example.com" for n in range(20)] + ["cli:ops", "cli:billing-timer", "cli:ana"]
    step = dt.timedelta(days=365) / count
    for n in range(count):
        at = START + step * n
        actor = rng.choice(users)
        customer = rng.choice(CUSTOMERS)
        period = f"2026-{rng.randint(1, 12):02d}"
        action, resource, details, outcome = rng.choice((
            ("login.password", f"user:{actor}", {}, "success"),
            ("login.mfa", f"user:{actor}", {"method": "totp"}, "success"),
            ("invoice.view", f"invoice:{customer}/{period}#{n % 900}", {"status": "issued"}, "success"),
            ("invoice.download", f"invoice:{customer}/{period}#{n % 900}",
             {"format": "pdf", "sha256": hashlib.sha256(str(n).encode()).hexdigest(), "stored": True}, "success"),
            ("usage.download", f"usage:{customer}/{period}-01..{period}-28", {"format": "csv", "rows": 120}, "success"),
            ("contract.save", f"contract:{customer}@{hashlib.sha256(str(n).encode()).hexdigest()[:12]}",
             {"result": "saved", "in_effect_from": period}, "success"),
            ("dashboard.view", f"dashboard:{customer}/{period}", {"total": "1234.50"}, "success"),
            ("login.password", f"user:{actor}", {"reason": "wrong password"}, "failure"),
        ))
        yield at, actor, action, resource, f"10.0.{n % 250}.{n % 200}", outcome, details


def fill(sessions, count: int) -> float:
    """Writes `count` chained entries; the seconds it took."""
    started = time.perf_counter()
    previous, batch = GENESIS, []
    with sessions.begin() as session:
        for sequence, (at, actor, action, resource, ip, outcome, details) in enumerate(entries(count), start=1):
            digest = hashlib.sha256(canonical({
                "sequence": sequence, "at": at.isoformat(timespec="microseconds"), "actor": actor, "action": action,
                "resource": resource, "ip": ip, "environment": "test", "outcome": outcome, "details": details,
                "prev_hash": previous})).hexdigest()
            batch.append({"sequence": sequence, "at": at, "actor": actor, "action": action, "resource": resource,
                          "ip": ip, "environment": "test", "outcome": outcome, "details": details,
                          "prev_hash": previous, "hash": digest})
            previous = digest
            if len(batch) == 5000:
                session.execute(insert(AuditEntry), batch)
                batch = []
        if batch:
            session.execute(insert(AuditEntry), batch)
        session.execute(update(AuditHead).where(AuditHead.id == 1).values(sequence=count, hash=previous))
    return time.perf_counter() - started


def signed_in_admin(app, sessions):
    from audit.log import Actor
    from identity import accounts
    from identity.accounts import User
    from identity.signin import open_session

    with sessions.begin() as session:
        user, _ = accounts.add_user(session, Actor("cli:bench", "test"), "bench.admin@example.com", "admin",
                                    password="a bench password of some length")
        user.totp_secret, user.enrolled = "JBSWY3DPEHPK3PXP", True
    with sessions.begin() as session:
        token, _ = open_session(session, session.get(User, user.id), "127.0.0.1", dt.datetime.now(UTC))
    client = app.test_client()
    with client.session_transaction() as cookie:
        cookie["_user_id"] = token
        cookie["_fresh"] = True
    return client


def cases(count: int) -> list[tuple[str, dict]]:
    middle = count // 2
    return [
        ("newest first, page 1", {}),
        (f"newest first, the page after entry {middle:,}", {"after": middle}),
        ("actor filter (part of an email)", {"actor": "user07"}),
        ("action filter (prefix: invoice)", {"action": "invoice"}),
        ("resource filter (part: acme-health/2026-05)", {"resource": "acme-health/2026-05"}),
        ("date range (one week)", {"since": "2026-03-02", "until": "2026-03-08"}),
        ("sort by actor, ascending", {"sort": "actor", "order": "asc"}),
        ("sort by action, ascending", {"sort": "action", "order": "asc"}),
        ("sort by resource, descending", {"sort": "resource", "order": "desc"}),
        ("sort by outcome, ascending", {"sort": "outcome", "order": "asc"}),
        (f"sort by actor, page {min(300, count // 200)} (keyset)", {"sort": "actor", "order": "asc",
                                                                   "pages": min(300, count // 200)}),
        ("actor filter, sorted by resource", {"actor": "cli:", "sort": "resource", "order": "asc"}),
    ]


def page_after(client, query: dict, pages: int) -> dict:
    """The query of page `pages` (following the Next links), to time that page alone."""
    query = dict(query)
    for _ in range(pages - 1):
        page = client.get("/audit", query_string=query).get_data(as_text=True)
        query["after"] = int(re.search(r'id="next-page" href="[^"]*after=(\d+)', page).group(1))
    return query


def query_alone(sessions, query: dict, repeat: int) -> list[float]:
    """The database's part: audit/log.py `search` for the same page, without the request around it."""
    from audit.log import AuditQuery, search

    asked = AuditQuery(actor=query.get("actor", ""), action=query.get("action", ""),
                       resource=query.get("resource", ""),
                       since=dt.date.fromisoformat(query["since"]) if "since" in query else None,
                       until=dt.date.fromisoformat(query["until"]) if "until" in query else None,
                       sort=query.get("sort", "when"), descending=query.get("order", "desc") == "desc",
                       after=query.get("after"), limit=100)
    times = []
    with sessions() as session:
        for _ in range(repeat):
            started = time.perf_counter()
            search(session, asked)
            times.append((time.perf_counter() - started) * 1000)
    return times


def p95(times: list[float]) -> float:
    return statistics.quantiles(times, n=20)[18] if len(times) >= 2 else times[0]


def measure(client, query: dict, repeat: int) -> tuple[list[float], int]:
    times, shown = [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get("/audit", query_string=query)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.status_code
        shown = response.get_data(as_text=True).count('<td class="num">')
    return times, shown


def run(backend: str, args) -> None:
    from admin_app import create_app

    url, drop = fresh_database(backend, args.workdir, args.postgres_url, "audit-list")
    try:
        engine = db.connect(url)
        schema.upgrade(engine)
        sessions = db.session_factory(engine)
        seconds = fill(sessions, args.entries)
        if backend == "postgresql":
            with engine.connect() as connection:
                connection.exec_driver_sql("ANALYZE audit_log")
        print(f"\n== {backend}: {args.entries:,} entries written and chained in {seconds:.1f} s")
        os.environ.setdefault("BILLING_SECRET_KEY", "bench-only")
        app = create_app({"BILLING_ENV": "test", "DATABASE_URL": url})
        client = signed_in_admin(app, sessions)
        client.get("/audit")   # warm: templates compiled, connections open
        worst = 0.0
        print(f"load average {os.getloadavg()[0]:.1f}")
        print(f"{'case':<48} {'rows':>5} {'page p50':>9} {'p95':>7} {'max':>7}   {'query p50':>9} {'p95':>7}")
        for name, query in cases(args.entries):
            pages = query.pop("pages", 1)
            query = page_after(client, query, pages) if pages > 1 else query
            times, shown = measure(client, query, args.repeat)
            alone = query_alone(sessions, query, args.repeat)
            worst = max(worst, p95(times))
            print(f"{name:<48} {shown:>5} {statistics.median(times):>9.1f} {p95(times):>7.1f} {max(times):>7.1f}   "
                  f"{statistics.median(alone):>9.1f} {p95(alone):>7.1f}")
        print(f"worst page p95 {worst:.1f} ms: {'under' if worst < TARGET_MS else 'OVER'} the {TARGET_MS} ms target "
              f"(load average {os.getloadavg()[0]:.1f})")
        app.extensions["billing.engine"].dispose()
        engine.dispose()
    finally:
        drop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--postgres-url", default=os.environ.get("BILLING_BENCH_POSTGRES_URL", DEFAULT_POSTGRES))
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--workdir", type=Path, default=Path(__file__).resolve().parent / "out")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    print(f"Machine: {machine()}")
    for backend in (("sqlite", "postgresql") if args.backend == "both" else (args.backend,)):
        try:
            run(backend, args)
        except Exception as exc:   # an unreachable PostgreSQL skips its half, said
            if backend != "postgresql" or args.backend == "postgresql":
                raise
            print(f"\n== postgresql: skipped ({type(exc).__name__}: {str(exc).splitlines()[0]})")


if __name__ == "__main__":
    main()
