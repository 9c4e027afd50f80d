"""The contract editor's live check under a stopwatch: the 60-site contract posted to `billing serve` on loopback.

    python bench/editor_check.py                  # 50 checks of the 60-site contract, SQLite
    python bench/editor_check.py --requests 200 --sites 500

A fresh SQLite database in a temporary directory gets the workload's contract
(bench/gen_workload.py `contract_text`) with `billing contract save` and a
deal-desk user with `billing user add --password-stdin`; `billing serve` (waitress)
starts on 127.0.0.1 on a free port. The bench signs in as a browser does (the
password, then enrolment: the TOTP secret read from the enrolment page, a code
from it), opens the editor for its CSRF token, then posts the contract text to
`POST /contracts/bench-co/check` one request at a time on one keep-alive
connection, each text a little different (a comment with the request's number,
as typing makes it), so no answer comes from a cache. It reports per request
the wall time seen by the client, the server process's CPU time (nanoseconds
on a CPU of all its threads, /proc/PID/task/*/schedstat, read before and after
each request), the milliseconds the server says it spent in the view, median
and p95, and `uptime`. The target: under 100 ms per check. Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

import gen_workload
import pyotp
from http_events import BIN, billing, free_port, wait_until_serving

EMAIL = "bench.deal@example.com"
PASSWORD = "bench password, not a secret"


class Browser:
    """One keep-alive connection with a cookie jar of one cookie (the portal's session)."""

    def __init__(self, port: int):
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, form: dict | None = None, headers: dict | None = None):
        headers = dict(headers or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        self.connection.request(method, path, body=body, headers=headers)
        answer = self.connection.getresponse()
        payload = answer.read()
        for name, value in answer.getheaders():
            if name.lower() == "set-cookie":
                key, _, rest = value.partition("=")
                self.cookies[key] = rest.split(";", 1)[0]
        return answer, payload.decode()


def csrf_token(page: str) -> str:
    found = re.search(r'name="csrf_token"(?: type="hidden")? value="([^"]+)"', page) or \
        re.search(r'data-csrf="([^"]+)"', page)
    if not found:
        raise SystemExit("no CSRF token on the page")
    return found.group(1)


def sign_in(browser: Browser) -> None:
    """The password, then enrolment (first sign-in): the secret is read from the page, as a person would type it."""
    _, page = browser.request("GET", "/login")
    answer, _ = browser.request("POST", "/login", {"email": EMAIL, "password": PASSWORD,
                                                    "csrf_token": csrf_token(page)})
    if answer.status != 302 or not answer.getheader("Location", "").endswith("/login/enrol"):
        raise SystemExit(f"sign-in: expected the enrolment step, got {answer.status} {answer.getheader('Location')}")
    _, page = browser.request("GET", "/login/enrol")
    secret = re.search(r'id="totp-secret"[^>]*>([^<]+)<', page).group(1).replace(" ", "")
    answer, _ = browser.request("POST", "/login/enrol", {"code": pyotp.TOTP(secret).now(),
                                                          "csrf_token": csrf_token(page)})
    if answer.status != 200:
        raise SystemExit(f"enrolment refused: {answer.status}")


def server_cpu(pid: int) -> float:
    """Seconds on a CPU of all the server's threads: schedstat's nanoseconds (stat's utime+stime tick in 10 ms)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):   # a thread that ended meanwhile
            pass
    return total / 1e9


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def run(args, workdir: Path) -> dict:
    url = f"sqlite:///{workdir / 'bench.db'}"
    env = {**os.environ, "BILLING_DATABASE_URL": url, "BILLING_SECRET_KEY": "bench-only", "BILLING_ENV": "test"}
    text = gen_workload.contract_text(args.sites)
    contract = workdir / "bench.pricing"
    contract.write_text(text, encoding="utf-8")
    billing("db", "upgrade", env=env, cwd=workdir)
    billing("contract", "save", str(contract), env=env, cwd=workdir)
    subprocess.run([str(BIN / "billing"), "user", "add", EMAIL, "--role", "deal_desk", "--password-stdin"],
                   input=PASSWORD + "\n", env=env, cwd=workdir, check=True, capture_output=True, text=True)
    port = free_port()
    server = subprocess.Popen([str(BIN / "billing"), "serve", "--host", "127.0.0.1", "--port", str(port)],
                              env=env, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until_serving(server, port)
        browser = Browser(port)
        sign_in(browser)
        answer, page = browser.request("GET", f"/contracts/{gen_workload.CONTRACT_ID}")
        if answer.status != 200:
            raise SystemExit(f"the editor answered {answer.status}")
        headers = {"X-CSRFToken": csrf_token(page), "Accept": "application/json"}
        path = f"/contracts/{gen_workload.CONTRACT_ID}/check"
        rows = []
        for number in range(args.warmup + args.requests):
            source = text.replace("{\n", f"{{  # edit {number}\n", 1)
            cpu_before, started = server_cpu(server.pid), time.perf_counter()
            answer, payload = browser.request("POST", path, {"source": source}, headers)
            wall = time.perf_counter() - started
            cpu = server_cpu(server.pid) - cpu_before
            body = json.loads(payload)
            if answer.status != 200 or not body["ok"] or not body["plan"]:
                raise SystemExit(f"check {number}: {answer.status} {payload[:300]}")
            if number >= args.warmup:
                rows.append((wall * 1000, cpu * 1000, body["milliseconds"], len(payload)))
    finally:
        server.terminate()
        server.wait(timeout=30)
    walls, cpus, views, sizes = zip(*rows)
    return {"requests": len(rows), "sites": args.sites, "source_bytes": len(text.encode()),
            "answer_bytes": statistics.median(sizes),
            "wall_median": statistics.median(walls), "wall_p95": percentile(walls, .95),
            "cpu_median": statistics.median(cpus), "cpu_p95": percentile(cpus, .95),
            "view_median": statistics.median(views), "view_p95": percentile(views, .95)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sites", type=int, default=60)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=3, help="checks before the timed ones (not counted)")
    args = parser.parse_args(argv)
    print(f"uptime before: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}",
          file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="bench-editor-") as folder:
        result = run(args, Path(folder))
    print(f"{result['requests']} checks of a {result['sites']}-site contract ({result['source_bytes']:,} bytes; "
          f"answers {result['answer_bytes']:,.0f} bytes with the plan)")
    print(f"  client wall   median {result['wall_median']:6.1f} ms   p95 {result['wall_p95']:6.1f} ms")
    print(f"  server CPU    median {result['cpu_median']:6.1f} ms   p95 {result['cpu_p95']:6.1f} ms  "
          f"(every thread of the server process)")
    print(f"  in the view   median {result['view_median']:6.1f} ms   p95 {result['view_p95']:6.1f} ms")
    print(f"uptime after: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    return 0 if result["wall_p95"] < 100 else 1


if __name__ == "__main__":
    sys.exit(main())
