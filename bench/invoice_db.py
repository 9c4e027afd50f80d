"""Invoice speed in database mode: `billing invoice --customer` for 60 sites x 10 categories, 1,000,000 events.

    python bench/invoice_db.py                       # SQLite and (if reachable) PostgreSQL
    python bench/invoice_db.py --backend sqlite --runs 10

The workload is bench/gen_workload.py's (events in May 2026, the contract from
January, so the caps run January to May). The events are ingested once with
`billing ingest`; then `billing invoice --customer bench-co --period 2026-05` is
run as a separate process several times (after one run that is not counted),
timed from start to exit (interpreter start, imports, reading the contract and
the rollups, the engine, the JSON), with its own CPU time (`os.wait4`). The
target is under 1 s: the invoice reads the month's rollups (one row per site,
category and local day), never the events.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from ingest_db import DEFAULT_POSTGRES, billing, fresh_database, machine, workload  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from metering.models import Rollup  # noqa: E402
from storage import db  # noqa: E402

BILLING = str(Path(sys.executable).with_name("billing"))


def timed_invoice(url: str, output: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one `billing invoice --customer` process."""
    started = time.perf_counter()
    process = subprocess.Popen([BILLING, "invoice", "--customer", "bench-co", "--period", "2026-05",
                                "--output", output], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env={**os.environ, "BILLING_DATABASE_URL": url})
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    errors = process.stderr.read().decode()
    process.stderr.close()
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        sys.exit(f"billing invoice failed: {errors}")
    return seconds, usage.ru_utime + usage.ru_stime


def run(backend: str, args, events: Path, contracts: list[Path]) -> None:
    print(f"\n== {backend}")
    url, drop = fresh_database(backend, args.workdir, args.postgres_url, "invoice")
    try:
        billing(url, "db", "upgrade")
        for contract in contracts:
            billing(url, "contract", "save", contract)
        started = time.perf_counter()
        summary = billing(url, "ingest", events).stdout.strip()
        print(f"{summary} ({time.perf_counter() - started:.1f} s)")
        engine = db.connect(url)
        with engine.connect() as connection:
            rollups = connection.execute(select(func.count()).select_from(Rollup)).scalar()
        engine.dispose()
        timed_invoice(url, args.workdir / f"invoice-{backend}.json")   # once, so that caches are warm (lark's)
        loads, timings = [], []
        for _ in range(args.runs):
            loads.append(os.getloadavg()[0])
            timings.append(timed_invoice(url, args.workdir / f"invoice-{backend}.json"))
    finally:
        drop()
    walls, cpus = [wall for wall, _ in timings], [cpu for _, cpu in timings]
    print(f"rollup rows: {rollups:,}")
    print(f"billing invoice --customer bench-co --period 2026-05, {args.runs} runs: "
          f"wall median {statistics.median(walls):.3f} s (best {min(walls):.3f}, worst {max(walls):.3f}), "
          f"CPU median {statistics.median(cpus):.3f} s (best {min(cpus):.3f}); load average "
          f"{min(loads):.1f}-{max(loads):.1f} (target < 1 s wall)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--postgres-url", default=os.environ.get("BILLING_BENCH_POSTGRES_URL", DEFAULT_POSTGRES))
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args(argv)
    events, contracts = workload(args.workdir, args.events)
    print(f"machine: {machine()}")
    for backend in (("sqlite", "postgresql") if args.backend == "both" else (args.backend,)):
        run(backend, args, events, contracts)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
