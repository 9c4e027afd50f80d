"""Ingestion speed: `billing ingest` of N JSONL events against a bare bulk insert of the same rows.

    python bench/ingest_db.py                          # 1,000,000 events, SQLite and (if reachable) PostgreSQL
    python bench/ingest_db.py --events 200000 --backend sqlite

For each database, in the same run:
- `billing ingest FILE` as a separate process, from the JSONL file to committed
  events and rollups (parse, validate, deduplicate, late check, rollups), timed
  with its peak memory; the file is the workload of bench/gen_workload.py (60
  sites, 10 categories, events in random order with repeats and conflicts);
- the bare insert of the rows that ingest stored, prepared in memory beforehand
  (not timed) in the form the database takes: one `executemany` into a table
  with the same columns and unique key (SQLite), or one `COPY` (PostgreSQL),
  in one transaction;
- for context, the same bare insert with the rows made from the file inside the
  timing (the same parser, the local day, the database's values), which is
  the least any ingest from JSONL does.
The target is ingest ≥ 0.5 × the bare rate (the first one). Peak memory is shown for N/10 and N
events: it stays flat because ingest holds one batch at a time.
PostgreSQL runs in a database created for the run and dropped after it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Callable
from zoneinfo import ZoneInfo

from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import gen_workload  # noqa: E402  (bench/gen_workload.py: the shared workload)

from dsl.compile import compile_file  # noqa: E402
from ingest.pipeline import EVENT_COLUMNS  # noqa: E402
from metering.days import LocalDays  # noqa: E402
from metering.events import Event, read_events  # noqa: E402
from metering.models import UsageEvent  # noqa: E402

BILLING = str(Path(sys.executable).with_name("billing"))
OTHER_CUSTOMER = "other-co"   # the workload's other customer: in a system of record it has a contract too
DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
BARE_COLUMNS = {   # the events table's columns, without the rollups, checks and services around them
    "sqlite": "id INTEGER PRIMARY KEY, source VARCHAR NOT NULL, event_id VARCHAR NOT NULL, customer VARCHAR NOT NULL, "
              "site VARCHAR NOT NULL, category VARCHAR NOT NULL, time VARCHAR NOT NULL, quantity VARCHAR NOT NULL, "
              "day DATE NOT NULL, late BOOLEAN NOT NULL, received_at VARCHAR NOT NULL",
    "postgresql": "id BIGSERIAL PRIMARY KEY, source VARCHAR NOT NULL, event_id VARCHAR NOT NULL, "
                  "customer VARCHAR NOT NULL, site VARCHAR NOT NULL, category VARCHAR NOT NULL, "
                  "time TIMESTAMPTZ NOT NULL, quantity NUMERIC NOT NULL, day DATE NOT NULL, late BOOLEAN NOT NULL, "
                  "received_at TIMESTAMPTZ NOT NULL",
}


def workload(directory: Path, events: int) -> tuple[Path, list[Path]]:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"ingest-{events}.jsonl"
    if not path.exists():
        gen_workload.write_events(path, events, 60)
    text = gen_workload.contract_text(60)
    contracts = [directory / "bench.pricing", directory / "other.pricing"]
    contracts[0].write_text(text, encoding="utf-8")
    contracts[1].write_text(text.replace(f'contract "{gen_workload.CONTRACT_ID}"', f'contract "{OTHER_CUSTOMER}"'),
                            encoding="utf-8")
    return path, contracts


def billing(url: str, *args) -> subprocess.CompletedProcess:
    result = subprocess.run([BILLING, *map(str, args)], capture_output=True, text=True,
                            env={**os.environ, "BILLING_DATABASE_URL": url})
    if result.returncode not in (0, 1):
        sys.exit(f"billing {' '.join(map(str, args))} failed: {result.stderr}")
    return result


# `billing ingest`, reporting its own peak memory and CPU time on its last line of standard error (a child's
# ru_maxrss would count this process's memory at the fork, large once the bare insert's rows were built).
INGEST = """
import resource, sys
from billing.cli import main
status = main(sys.argv[1:])
peak = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:")).split()[1]
usage = resource.getrusage(resource.RUSAGE_SELF)
worker = resource.getrusage(resource.RUSAGE_CHILDREN)   # the process that reads the file
print(peak, usage.ru_utime + usage.ru_stime, worker.ru_utime + worker.ru_stime, file=sys.stderr)
sys.exit(status)
"""


def timed_ingest(url: str, contracts: list[Path], events: Path) -> dict:
    billing(url, "db", "upgrade")
    for contract in contracts:
        billing(url, "contract", "save", contract)
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-c", INGEST, "ingest", events], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env={**os.environ, "BILLING_DATABASE_URL": url})
    summary, errors = process.communicate()
    seconds = time.perf_counter() - started
    if process.returncode not in (0, 1):
        sys.exit(f"billing ingest failed: {errors[-500:]}")
    peak_kb, cpu, worker_cpu = errors.split()[-3:]
    return {"seconds": seconds, "cpu": float(cpu), "worker_cpu": float(worker_cpu), "peak_mb": int(peak_kb) / 1024,
            "summary": summary.strip()}


def stored_rows(events: Path, contract: Path, backend: str) -> list[tuple]:
    """The rows ingest stores (the first event of each identity), ready for the database."""
    zone = ZoneInfo(compile_file(contract).plan.terms.timezone)
    days = {customer: LocalDays(zone) for customer in (gen_workload.CONTRACT_ID, OTHER_CUSTOMER)}
    now = dt.datetime.now(dt.timezone.utc)
    seen, rows = set(), []
    for _, item in read_events(events):
        if not isinstance(item, Event) or (item.source, item.id) in seen:
            continue
        seen.add((item.source, item.id))
        data = item.data
        rows.append((item.source, item.id, data.customer, data.site, data.category, item.time, data.quantity,
                     days[data.customer](item.time), False, now))
    if backend == "sqlite":   # the text SQLite is given, made now so that the timed insert only inserts
        dialect = create_engine("sqlite://").dialect
        table = UsageEvent.__table__
        processors = [table.c[c].type.dialect_impl(dialect).bind_processor(dialect) for c in EVENT_COLUMNS]
        rows = [tuple(p(v) if p else v for p, v in zip(processors, row)) for row in rows]
    return rows


def timed_bare_insert(url: str, backend: str, rows: list[tuple] | Callable[[], list[tuple]],
                      table: str = "bare_events") -> dict:
    """One executemany (SQLite) or COPY (PostgreSQL) of the rows, in one transaction, timed. When `rows` is a
    function, making them (reading and parsing the file) is timed too."""
    columns = ", ".join(EVENT_COLUMNS)
    if backend == "sqlite":
        connection = sqlite3.connect(make_url(url).database, isolation_level=None)
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute(f"CREATE TABLE {table} ({BARE_COLUMNS[backend]}, UNIQUE (source, event_id))")
        started, cpu = time.perf_counter(), time.process_time()
        rows = rows() if callable(rows) else rows
        connection.execute("BEGIN")
        connection.executemany(f"INSERT INTO {table} ({columns}) VALUES ({', '.join('?' * len(EVENT_COLUMNS))})",
                               rows)
        connection.execute("COMMIT")
    else:
        import psycopg
        connection = psycopg.connect(make_url(url).set(drivername="postgresql").render_as_string(False))
        connection.execute(f"CREATE TABLE {table} ({BARE_COLUMNS[backend]}, UNIQUE (source, event_id))")
        connection.commit()
        started, cpu = time.perf_counter(), time.process_time()
        rows = rows() if callable(rows) else rows
        with connection.cursor() as cursor, cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        connection.commit()
    result = {"seconds": time.perf_counter() - started, "cpu": time.process_time() - cpu, "rows": len(rows)}
    connection.close()
    return result


def fresh_database(backend: str, directory: Path, postgres: str, name: str):
    """(url, drop) for an empty database."""
    if backend == "sqlite":
        path = directory / f"{name}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return f"sqlite:///{path}", lambda: None
    admin = create_engine(postgres, isolation_level="AUTOCOMMIT")
    database = f"billing_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{database}"')

    def drop():
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE "{database}" WITH (FORCE)')
        admin.dispose()

    return make_url(postgres).set(database=database).render_as_string(hide_password=False), drop


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return (f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
            f"load average {os.getloadavg()[0]:.1f}")


def run(backend: str, args, events: Path, small: Path, contracts: list[Path]) -> None:
    print(f"\n== {backend}")
    url, drop = fresh_database(backend, args.workdir, args.postgres_url, "ingest-small")
    try:   # first, while this process is small: a child's peak memory counts what it had when forked
        smaller = timed_ingest(url, contracts, small)
    finally:
        drop()
    rows = stored_rows(events, contracts[0], backend)
    ingests, bares, loads = [], [], []
    for attempt in range(args.runs):   # taking turns, each in a fresh database
        url, drop = fresh_database(backend, args.workdir, args.postgres_url, "ingest")
        try:
            loads.append(os.getloadavg()[0])
            ingests.append(timed_ingest(url, contracts, events))
            bares.append(timed_bare_insert(url, backend, rows))
        finally:
            drop()
        ours, bare = ingests[-1], bares[-1]
        print(f"run {attempt + 1}: billing ingest {ours['seconds']:.2f} s (CPU {ours['cpu']:.2f} s + reader "
              f"{ours['worker_cpu']:.2f} s), bare {bare['seconds']:.2f} s (CPU {bare['cpu']:.2f} s), "
              f"ratio {bare['seconds'] / ours['seconds'] * args.events / bare['rows']:.2f}, load {loads[-1]:.1f}")
    print(f"billing ingest: {ingests[-1]['summary']}")
    median = statistics.median
    seconds, bare_seconds = median(i["seconds"] for i in ingests), median(b["seconds"] for b in bares)
    lines, stored = args.events, bares[0]["rows"]
    bare_name = "executemany" if backend == "sqlite" else "COPY"
    print(f"billing ingest  {lines:>9,} events  median {seconds:7.2f} s  {lines / seconds:>9,.0f} events/s  "
          f"(CPU: process {median(i['cpu'] for i in ingests):.2f} s, reader {median(i['worker_cpu'] for i in ingests):.2f} s)")
    print(f"bare {bare_name:<10} {stored:>9,} rows    median {bare_seconds:7.2f} s  {stored / bare_seconds:>9,.0f} rows/s    "
          f"(client CPU {median(b['cpu'] for b in bares):.2f} s; rows made beforehand)")
    print(f"ratio of the medians: ingest runs at {lines / seconds / (stored / bare_seconds):.2f} x the bare "
          f"{bare_name} rate (target >= 0.5); load average {min(loads):.1f}-{max(loads):.1f}")
    if args.from_file:
        url, drop = fresh_database(backend, args.workdir, args.postgres_url, "ingest")
        try:
            from_file = timed_bare_insert(url, backend, lambda: stored_rows(events, contracts[0], backend),
                                          "bare_events_from_file")
        finally:
            drop()
        print(f"  bare {bare_name} with the rows made from the file in the timing (read_events, days, values): "
              f"{from_file['seconds']:.2f} s, {stored / from_file['seconds']:,.0f} rows/s")
    print(f"peak memory of billing ingest: {smaller['peak_mb']:.0f} MB for {lines // 10:,} events, "
          f"{max(i['peak_mb'] for i in ingests):.0f} MB for {lines:,}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--postgres-url", default=os.environ.get("BILLING_BENCH_POSTGRES_URL", DEFAULT_POSTGRES))
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench" / "out")
    parser.add_argument("--runs", type=int, default=3, help="ingest and bare insert, taking turns (median)")
    parser.add_argument("--from-file", action="store_true", help="also time the bare insert of rows made from the file")
    args = parser.parse_args(argv)
    events, contracts = workload(args.workdir, args.events)
    small = args.workdir / f"ingest-{args.events}-first-tenth.jsonl"
    with events.open("rb") as source, small.open("wb") as target:
        for _, line in zip(range(args.events // 10), source):
            target.write(line)
    print(f"machine: {machine()}")
    for backend in (("sqlite", "postgresql") if args.backend == "both" else (args.backend,)):
        run(backend, args, events, small, contracts)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
