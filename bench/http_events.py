"""The event API under load: 8 clients posting batches of 500 events to `billing serve` on loopback.

    python bench/http_events.py                         # 200k events, SQLite, and PostgreSQL if reachable
    python bench/http_events.py --events 50000 --backend sqlite

For each database it makes a fresh one (SQLite: a file in a temporary directory;
PostgreSQL: a database of its own on --postgres, dropped at the end), saves the
workload's contract (bench/gen_workload.py, 60 sites, 10 categories), creates an
API key and starts `billing serve` on 127.0.0.1 with a free port. The request
bodies are encoded before the clock starts, so the clients (threads with one
keep-alive connection each, reading only each answer's summary) cost the server
little CPU on a shared machine. Two
rounds are timed: new events (all accepted), then the same batches again (all
duplicates: what a client retrying after lost answers costs). Each round stops at
--events or after --seconds, whichever comes first; the figure is answered events
per second of wall time, and the stored event count is checked against the
answers. Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import platform
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import gen_workload
import msgspec

BIN = Path(sys.executable).parent
DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SOURCE = "bench/http"
BATCH_TYPE = "application/cloudevents-batch+json"


class Answer(msgspec.Struct):
    """What a client reads of an answer: msgspec skips the per-event results without building them, so the
    clients, which share the machine with the server, cost it little."""

    summary: dict[str, int]


def batches(count: int, size: int, sites: int, seed: int = 11) -> list[bytes]:
    rng = random.Random(seed)
    bodies = []
    for first in range(0, count, size):
        events = []
        for number in range(first, min(first + size, count)):
            seconds = rng.randrange(gen_workload.MONTH_SECONDS)
            events.append({
                "specversion": "1.0", "id": f"http-{number:07d}", "source": SOURCE, "type": "unit.processed",
                "time": (gen_workload.MONTH_START + dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "data": {"customer": gen_workload.CONTRACT_ID, "site": gen_workload.site_id(rng.randrange(sites)),
                         "category": gen_workload.category_id(rng.randrange(gen_workload.CATEGORIES)),
                         "quantity": rng.choice(("1", "2", "0.5", "12.25"))},
            })
        bodies.append(json.dumps(events).encode())
    return bodies


def billing(*args: str, env: dict, cwd: Path) -> str:
    done = subprocess.run([str(BIN / "billing"), *args], env=env, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"billing {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_serving(server: subprocess.Popen, port: int, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"billing serve stopped: {log.read_text(errors='replace')}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("billing serve did not start listening in time")


def post_all(port: int, key: str, bodies: list[bytes], clients: int, seconds: float) -> dict:
    """Post every body once, `clients` at a time; stops early at the time limit. Sums the answers' summaries."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": BATCH_TYPE}
    next_body = iter(range(len(bodies)))
    lock = threading.Lock()
    totals = {"requests": 0, "events": 0, "statuses": {}, "errors": []}
    deadline = time.monotonic() + seconds

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        try:
            while time.monotonic() < deadline:
                with lock:
                    index = next(next_body, None)
                if index is None:
                    return
                connection.request("POST", "/api/v1/events", body=bodies[index], headers=headers)
                answer = connection.getresponse()
                payload = answer.read()
                with lock:
                    if answer.status != 200:
                        totals["errors"].append(f"{answer.status} {payload[:200]!r}")
                        return
                    summary = msgspec.json.decode(payload, type=Answer).summary
                    totals["requests"] += 1
                    totals["events"] += sum(summary.values())
                    for status, n in summary.items():
                        totals["statuses"][status] = totals["statuses"].get(status, 0) + n
        finally:
            connection.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    totals["seconds"] = time.perf_counter() - started
    if totals["errors"]:
        raise SystemExit(f"the server answered errors: {totals['errors'][:3]}")
    return totals


def stored_events(url: str) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as connection:
        count = connection.execute(text("SELECT count(*) FROM events")).scalar_one()
    engine.dispose()
    return count


def postgres_database(base_url: str):
    """A fresh database on the server of `base_url` and a function that drops it; None if unreachable."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import DBAPIError

    admin = create_engine(base_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    name = f"bench_http_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except DBAPIError as exc:
        print(f"PostgreSQL at {base_url} is not reachable, skipped: {' '.join(str(exc.orig).split())}",
              file=sys.stderr)
        admin.dispose()
        return None

    def drop() -> None:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.dispose()

    return make_url(base_url).set(database=name).render_as_string(hide_password=False), drop


def run_backend(name: str, url: str, bodies: list[bytes], args, workdir: Path) -> list[dict]:
    env = {**os.environ, "BILLING_DATABASE_URL": url, "BILLING_SECRET_KEY": "bench-only", "BILLING_ENV": "test"}
    contract = workdir / "bench.pricing"
    contract.write_text(gen_workload.contract_text(args.sites), encoding="utf-8")
    billing("db", "upgrade", env=env, cwd=workdir)
    billing("contract", "save", str(contract), env=env, cwd=workdir)
    key = billing("apikey", "create", "--customer", gen_workload.CONTRACT_ID, "--source", SOURCE,
                  env=env, cwd=workdir).strip()
    port = free_port()
    # its log (a line a request) goes to a file: a pipe nobody reads would fill, and stop the server
    log = workdir / f"serve-{name}.log"
    with log.open("wb") as written:
        server = subprocess.Popen([str(BIN / "billing"), "serve", "--host", "127.0.0.1", "--port", str(port),
                                   "--threads", str(args.threads)], env=env, cwd=workdir,
                                  stdout=subprocess.DEVNULL, stderr=written)
    rows = []
    try:
        wait_until_serving(server, port, log)
        for round_name in ("new events", "re-sent (duplicates)"):
            totals = post_all(port, key, bodies, args.clients, args.seconds)
            rows.append({"backend": name, "round": round_name, **totals,
                         "rate": totals["events"] / totals["seconds"]})
            print(f"{name:10} {round_name:22} {totals['events']:>9,} events in {totals['requests']:,} requests, "
                  f"{totals['seconds']:6.1f} s: {rows[-1]['rate']:>8,.0f} events/s  {totals['statuses']}",
                  file=sys.stderr)
    finally:
        server.terminate()
        server.wait(timeout=30)
    accepted = rows[0]["statuses"].get("accepted", 0)
    stored = stored_events(url)
    if stored != accepted:
        raise SystemExit(f"{name}: {stored:,} events stored, but {accepted:,} were answered accepted")
    return rows


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or "unknown CPU")
    return f"{os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {model}, Python {platform.python_version()}"


def markdown(rows: list[dict], args) -> str:
    lines = [
        f"{args.clients} client threads on loopback, each with one keep-alive connection, posting batches of "
        f"{args.batch} events ({args.events:,} events per round, limit {args.seconds:g} s) to `billing serve` "
        f"(waitress, {args.threads} threads) on the same machine: {machine()}.",
        "",
        "| database | round | events | requests | seconds | events/s |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(f"| {row['backend']} | {row['round']} | {row['events']:,} | {row['requests']:,} | "
                     f"{row['seconds']:.1f} | {row['rate']:,.0f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000, help="events per round (default 200,000)")
    parser.add_argument("--batch", type=int, default=500, help="events per request (default 500)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--threads", type=int, default=8, help="waitress threads")
    parser.add_argument("--seconds", type=float, default=300, help="time limit per round (default 300)")
    parser.add_argument("--sites", type=int, default=60)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--postgres", default=os.environ.get("BILLING_BENCH_POSTGRES_URL", DEFAULT_POSTGRES),
                        help="a PostgreSQL server on this machine to make the database on")
    args = parser.parse_args(argv)

    bodies = batches(args.events, args.batch, args.sites)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
        workdir = Path(tmp)
        if args.backend in ("sqlite", "both"):
            rows += run_backend("SQLite", f"sqlite:///{workdir / 'billing.db'}", bodies, args, workdir)
        if args.backend in ("postgresql", "both"):
            made = postgres_database(args.postgres)
            if made is not None:
                url, drop = made
                try:
                    rows += run_backend("PostgreSQL", url, bodies, args, workdir)
                finally:
                    drop()
    print(markdown(rows, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
