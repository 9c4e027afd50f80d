"""The dashboard under load: 20 clients asking `billing serve` for a 60-site customer's period of 1,000,000 events.

    python bench/dashboard_load.py                        # SQLite, and PostgreSQL if reachable
    python bench/dashboard_load.py --backend sqlite --seconds 20

For each database: a fresh one (SQLite: a file in bench/out; PostgreSQL: a
database of its own on --postgres-url, dropped at the end), the 60-site,
10-category contract of bench/gen_workload.py and its 1,000,000 events of May
2026 stored with `billing ingest` (the real ingest, events and rollups; no
shortcut), a finance user and an API key. Then `billing serve` (waitress,
8 threads) on 127.0.0.1 at a free port; the user signs in over HTTP as a browser
does (the password form, then a TOTP code), and the session cookie is handed to
the load tool, wrk (`apt-get install wrk`), with bench/dashboard_load.lua.

Measured:
- cold: the first GET of the page after the server starts (nothing cached:
  the engine over the month's rollups, the history, the page), and the first
  request after a batch of 100 new events is posted to the event API (the
  figures recomputed once);
- under load, 20 connections (wrk -c 20 -t 2) for --seconds each: the page
  only, the JSON only, and page and JSON in turn while a batch of 100 new
  events arrives through the event API every 5 s (each batch makes the next
  request recompute the figures once; the others wait for that one computation).
For each: requests, requests/s, latency p50/p95/p99/max (wrk's own histogram),
answers other than 200 and socket errors, the server's CPU (user + system
seconds of the `billing serve` process from /proc, as cores busy over the run),
and wrk's own CPU. Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import re
import resource
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import pyotp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import gen_workload  # noqa: E402
from http_events import free_port, wait_until_serving  # noqa: E402
from ingest_db import DEFAULT_POSTGRES, billing, fresh_database, workload  # noqa: E402

BIN = Path(sys.executable).parent
LUA = ROOT / "bench" / "dashboard_load.lua"
CUSTOMER, PERIOD = gen_workload.CONTRACT_ID, gen_workload.PERIOD
PAGE = f"/dashboard/{CUSTOMER}?period={PERIOD}"
DATA = f"/dashboard/{CUSTOMER}/data?period={PERIOD}"
EMAIL, PASSWORD = "bench.finance@example.com", "bench finance password, long enough"
SOURCE = "bench/dashboard"
TICKS = os.sysconf("SC_CLK_TCK")


def add_finance_user(url: str) -> str:
    """A finance user with MFA enrolled; its TOTP secret."""
    from audit.log import Actor
    from identity.accounts import add_user
    from storage import db

    engine = db.connect(url)
    secret = pyotp.random_base32()
    with db.session_factory(engine).begin() as session:
        user, _ = add_user(session, Actor("cli:bench", "test"), EMAIL, "finance", password=PASSWORD)
        user.totp_secret, user.enrolled = secret, True
    engine.dispose()
    return secret


class Browser:
    """Just enough of a browser for the sign-in: one keep-alive connection and the session cookie."""

    def __init__(self, port: int):
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.cookie = ""

    def request(self, method: str, path: str, form: dict | None = None) -> tuple[int, str, dict]:
        headers = {"Cookie": self.cookie} if self.cookie else {}
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        self.connection.request(method, path, body=body, headers=headers)
        answer = self.connection.getresponse()
        text = answer.read().decode()
        cookie = answer.getheader("Set-Cookie")
        if cookie:
            self.cookie = cookie.split(";", 1)[0]
        return answer.status, text, dict(answer.getheaders())

    def form(self, path: str, fields: dict) -> tuple[int, dict]:
        _, page, _ = self.request("GET", path)
        token = re.search(r'name="csrf_token"(?: type="hidden")? value="([^"]+)"', page).group(1)
        status, _, headers = self.request("POST", path, {**fields, "csrf_token": token})
        return status, headers

    def sign_in(self, secret: str) -> None:
        status, headers = self.form("/login", {"email": EMAIL, "password": PASSWORD})
        if status != 302 or not headers["Location"].endswith("/login/code"):
            raise SystemExit(f"sign-in: the password step answered {status}")
        status, headers = self.form("/login/code", {"code": pyotp.TOTP(secret).now()})
        if status != 302 or "/login" in headers["Location"]:
            raise SystemExit(f"sign-in: the code step answered {status}")

    def timed(self, path: str) -> tuple[float, int, int]:
        started = time.perf_counter()
        status, text, _ = self.request("GET", path)
        return time.perf_counter() - started, status, len(text.encode())


def new_events(port: int, key: str, count: int, serial: list[int]) -> None:
    """`count` new events of May for the benchmark customer through the event API."""
    events = []
    for _ in range(count):
        serial[0] += 1
        events.append({"specversion": "1.0", "id": f"dash-{serial[0]:07d}", "source": SOURCE, "type": "unit.processed",
                       "time": (gen_workload.MONTH_START + dt.timedelta(seconds=serial[0] * 97 % gen_workload.MONTH_SECONDS))
                       .strftime("%Y-%m-%dT%H:%M:%SZ"),
                       "data": {"customer": CUSTOMER, "site": gen_workload.site_id(serial[0] % 60),
                                "category": gen_workload.category_id(serial[0] % 10), "quantity": "1"}})
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("POST", "/api/v1/events", body=json.dumps(events),
                       headers={"Authorization": f"Bearer {key}", "Content-Type": "application/cloudevents-batch+json"})
    answer = connection.getresponse()
    answer.read()
    connection.close()
    if answer.status != 200:
        raise SystemExit(f"the event API answered {answer.status}")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def load(port: int, cookie: str, paths: list[str], seconds: int, server_pid: int, during=None) -> dict:
    env = {**os.environ, "DASHBOARD_PATHS": ",".join(paths), "DASHBOARD_COOKIE": cookie}
    server_cpu = cpu_seconds(server_pid)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    process = subprocess.Popen(["wrk", "-t", "2", "-c", "20", "-d", f"{seconds}s", "--timeout", "30s",
                                "-s", str(LUA), f"http://127.0.0.1:{port}"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stop = threading.Event()
    worker = threading.Thread(target=during, args=(stop,), daemon=True) if during else None
    if worker:
        worker.start()
    out, err = process.communicate()
    wall = time.perf_counter() - started
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    if process.returncode != 0:
        raise SystemExit(f"wrk failed: {err.strip()}")
    stop.set()
    if worker:
        worker.join()
    figures = json.loads(out.strip().splitlines()[-1])
    figures["server_cpu"] = cpu_seconds(server_pid) - server_cpu
    figures["wall"] = wall
    figures["wrk_cpu"] = reaped.ru_utime + reaped.ru_stime - children.ru_utime - children.ru_stime
    return figures


def run(backend: str, args, events: Path, contracts: list[Path]) -> list[dict]:
    print(f"\n== {backend}", file=sys.stderr)
    url, drop = fresh_database(backend, args.workdir, args.postgres_url, "dashboard")
    rows = []
    server = None
    try:
        billing(url, "db", "upgrade")
        for contract in contracts:
            billing(url, "contract", "save", contract)
        started = time.perf_counter()
        summary = billing(url, "ingest", events).stdout.strip()
        print(f"ingest: {summary} ({time.perf_counter() - started:.1f} s)", file=sys.stderr)
        secret = add_finance_user(url)
        key = billing(url, "apikey", "create", "--customer", CUSTOMER, "--source", SOURCE).stdout.strip()
        port = free_port()
        env = {**os.environ, "BILLING_DATABASE_URL": url, "BILLING_SECRET_KEY": "bench-only", "BILLING_ENV": "test"}
        # The server's log goes to a file: waitress warns of its queue depth under load, and a pipe nobody reads
        # would fill and stop the server.
        log = open(args.workdir / f"dashboard-serve-{backend}.log", "w")
        server = subprocess.Popen([str(BIN / "billing"), "serve", "--host", "127.0.0.1", "--port", str(port),
                                   "--threads", "8"], env=env, cwd=args.workdir, stdout=log, stderr=log)
        wait_until_serving(server, port, Path(log.name))   # if it stops, says why from its log
        browser = Browser(port)
        browser.sign_in(secret)
        cold, status, size = browser.timed(PAGE)
        if status != 200:
            raise SystemExit(f"the dashboard answered {status}")
        warm = min(browser.timed(PAGE)[0] for _ in range(5))
        data_size = browser.timed(DATA)[2]
        serial = [0]
        new_events(port, key, 100, serial)
        after_batch = browser.timed(DATA)[0]
        print(f"cold page {cold * 1000:.0f} ms ({size / 1024:.0f} KiB), warm page {warm * 1000:.1f} ms, "
              f"JSON {data_size / 1024:.0f} KiB, first JSON after a batch of 100 events {after_batch * 1000:.0f} ms",
              file=sys.stderr)
        rows.append({"backend": backend, "kind": "single", "cold": cold, "warm": warm, "after_batch": after_batch,
                     "page_kib": size / 1024, "json_kib": data_size / 1024})

        def arriving(stop: threading.Event) -> None:
            while not stop.wait(5):
                new_events(port, key, 100, serial)

        for name, paths, during in (("page", [PAGE], None), ("JSON", [DATA], None),
                                    ("page + JSON, 100 new events every 5 s", [PAGE, DATA], arriving)):
            figures = load(port, browser.cookie, paths, args.seconds, server.pid, during)
            figures.update(backend=backend, kind=name)
            rows.append(figures)
            print(f"{name:40} {figures['requests']:>7,} requests, {figures['requests'] / figures['wall']:7.1f}/s, "
                  f"p50 {figures['p50_us'] / 1000:6.1f} ms, p95 {figures['p95_us'] / 1000:6.1f} ms, "
                  f"p99 {figures['p99_us'] / 1000:6.1f} ms, max {figures['max_us'] / 1000:6.1f} ms, "
                  f"not 200: {figures['not_200']}, socket errors: {figures['socket_errors']}, "
                  f"server CPU {figures['server_cpu']:.1f} s ({figures['server_cpu'] / figures['wall']:.2f} cores), "
                  f"wrk CPU {figures['wrk_cpu']:.1f} s",
                  file=sys.stderr)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
            log.close()
        drop()
    return rows


def markdown(rows: list[dict], args) -> str:
    lines = ["| database | load | requests | req/s | p50 ms | p95 ms | p99 ms | max ms | not 200 | server CPU (cores) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    singles = []
    for row in rows:
        if row["kind"] == "single":
            singles.append(f"{row['backend']}: cold page {row['cold'] * 1000:.0f} ms ({row['page_kib']:.0f} KiB), "
                           f"warm page {row['warm'] * 1000:.1f} ms, first JSON after a batch of 100 events "
                           f"{row['after_batch'] * 1000:.0f} ms")
            continue
        lines.append(f"| {row['backend']} | {row['kind']} | {row['requests']:,} | {row['requests'] / row['wall']:.1f} | "
                     f"{row['p50_us'] / 1000:.1f} | {row['p95_us'] / 1000:.1f} | {row['p99_us'] / 1000:.1f} | "
                     f"{row['max_us'] / 1000:.1f} | {row['not_200'] + row['socket_errors']} | "
                     f"{row['server_cpu']:.1f} s ({row['server_cpu'] / row['wall']:.2f}) |")
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {line}" for line in singles) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=int, default=25, help="length of each load run (default 25)")
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--postgres-url", default=os.environ.get("BILLING_BENCH_POSTGRES_URL", DEFAULT_POSTGRES))
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args(argv)
    events, contracts = workload(args.workdir, args.events)
    print(f"machine: {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}", file=sys.stderr)
    rows = []
    for backend in (("sqlite", "postgresql") if args.backend == "both" else (args.backend,)):
        rows += run(backend, args, events, contracts)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", file=sys.stderr)
    print(markdown(rows, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
