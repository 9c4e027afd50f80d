"""A rehearsal of the deployment: test, us-prod and uk-prod side by side on one machine, and no data crossing.

    .venv/bin/python tests/three_environments.py [postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

Makes three PostgreSQL databases on the server the URL names (default: BILLING_TEST_POSTGRES_URL's), each
set up as its environment's operator would (`billing db upgrade`, a contract, its usage, a finance user,
an API key, issued invoices), starts one `billing serve` per environment on its own port with its own
secret, database and metrics port, and proves over HTTP and in the databases that:

- each answers /healthz and /readyz, serves metrics where its environment says (test: on the app;
  production: on 127.0.0.1:metrics_port, and not on the public listener);
- a user of one environment, and the session they signed in with, are refused by the others;
- an API key of one environment is refused by the others;
- invoice numbers carry each environment's prefix and run independently;
- each audit log records only its own environment's entries, and its hash chain holds;
- a production environment refuses to start on the test environment's secret or database.

Exit status 0 when every check holds; the databases are dropped at the end either way.
tests/test_three_environments.py runs it in the test suite when BILLING_TEST_POSTGRES_URL is set (CI).
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.parse
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pyotp
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from audit.log import Actor, AuditEntry, verify  # noqa: E402  (the project, from this checkout)
from dsl.compile import compile_file  # noqa: E402
from engine.periods import Period  # noqa: E402
from identity.accounts import add_user  # noqa: E402
from identity.apikeys import create_api_key  # noqa: E402
from ingest.pipeline import ingest_events  # noqa: E402
from ledger.contracts import save_contract  # noqa: E402
from ledger.invoices import Selector  # noqa: E402
from ledger.models import Invoice  # noqa: E402
from lifecycle.transitions import approve, close, issue  # noqa: E402
from metering.events import read_events  # noqa: E402
from review.reconcile import Threshold  # noqa: E402
from settings.environment import load  # noqa: E402
from storage import db, schema  # noqa: E402

BILLING = str(Path(sys.executable).with_name("billing"))
CONTRACT, EVENTS = ROOT / "contracts" / "acme-health.pricing", ROOT / "contracts" / "acme-health.events.jsonl"
CUSTOMER, SOURCE = "acme-health", "platform/main"
PASSWORD = "a long rehearsal passphrase"
# How many invoices each environment issues: numbers must run from 1 in each, whatever the others did.
ISSUED = {"test": [Period(2026, 4)], "us-prod": [Period(2026, 4), Period(2026, 5)], "uk-prod": [Period(2026, 4)]}


@dataclass
class Environment:
    name: str
    database_url: str
    secret: str
    port: int
    metrics_port: int
    audit_key: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    anchor_file: str = ""      # where the audit chain's signed heads go (outside the database)
    user: str = ""
    totp: str = ""
    api_key: str = ""
    numbers: list[str] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def process_environment(self, **overrides) -> dict[str, str]:
        return {**os.environ, "BILLING_ENV": self.name, "BILLING_DATABASE_URL": self.database_url,
                "BILLING_SECRET_KEY": self.secret, "BILLING_METRICS_PORT": str(self.metrics_port),
                "BILLING_AUDIT_KEY": self.audit_key, "BILLING_AUDIT_ANCHOR_FILE": self.anchor_file, **overrides}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def databases(server_url: str, names: list[str]):
    """A new database per name on the server, dropped at the end: their URLs."""
    server = make_url(server_url)
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    suffix = f"{os.getpid()}_{secrets.token_hex(3)}"
    made = {name: f"rehearsal_{name.replace('-', '_')}_{suffix}" for name in names}
    try:
        with admin.connect() as connection:
            for database in made.values():
                connection.execute(text(f'CREATE DATABASE "{database}"'))
        yield {name: server.set(database=database).render_as_string(hide_password=False)
               for name, database in made.items()}
    finally:
        with admin.connect() as connection:
            for database in made.values():
                connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        admin.dispose()


def set_up(env: Environment) -> None:
    """What the environment's operator does before it serves: the schema, a contract and its usage, a finance
    user (enrolled), an API key, and the periods of ISSUED issued with the environment's own settings."""
    subprocess.run([BILLING, "db", "upgrade"], env=env.process_environment(), check=True, capture_output=True)
    settings = load(env.name, env.process_environment())
    who = Actor(f"cli:rehearsal-{env.name}", settings.name)
    engine = db.connect(env.database_url)
    sessions = db.session_factory(engine)
    try:
        with sessions.begin() as session:
            save_contract(session, compile_file(str(CONTRACT)), author=who.name)
        for _ in ingest_events(sessions, read_events(str(EVENTS))):
            pass
        with sessions.begin() as session:
            user, _ = add_user(session, who, f"finance@{env.name}.example.com", "finance", password=PASSWORD)
            user.totp_secret, user.enrolled = pyotp.random_base32(), True
            env.user, env.totp = user.email, user.totp_secret
            env.api_key = create_api_key(session, CUSTOMER, SOURCE).key
        threshold = Threshold.of(settings)
        for period in ISSUED[env.name]:
            with sessions.begin() as session:
                close(session, CUSTOMER, period)
            with sessions.begin() as session:
                approve(session, Selector(CUSTOMER, period), who, threshold=threshold)
            with sessions.begin() as session:
                env.numbers.append(issue(session, Selector(CUSTOMER, period), who, threshold=threshold,
                                         prefix=settings.invoice_prefix, locale=settings.locale).invoice.number)
    finally:
        engine.dispose()


def serve(env: Environment, stack: ExitStack, log_dir: Path) -> subprocess.Popen:
    log = stack.enter_context(open(log_dir / f"{env.name}.log", "wb"))
    server = subprocess.Popen([BILLING, "serve", "--port", str(env.port), "--threads", "4"],
                              env=env.process_environment(), stdout=log, stderr=subprocess.STDOUT, cwd=log_dir)
    stack.callback(_stop, server)
    return server


def _stop(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()


class Client:
    """HTTP without redirects, keeping the cookies it is given whatever their flags (so that a production
    cookie, Secure, can be replayed over plain HTTP: the point is to see the server refuse it)."""

    def __init__(self, base: str):
        self.base, self.cookies = base, {}

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                cookies: dict | None = None) -> tuple[int, dict, str]:
        parsed = urllib.parse.urlsplit(self.base)
        connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
        jar = self.cookies if cookies is None else cookies
        sent = {**(headers or {}), **({"Cookie": "; ".join(f"{k}={v}" for k, v in jar.items())} if jar else {})}
        connection.request(method, path, body=body, headers=sent)
        answer = connection.getresponse()
        content = answer.read().decode("utf-8", "replace")
        for header in answer.headers.get_all("Set-Cookie") or []:
            name, _, rest = header.partition("=")
            self.cookies[name] = rest.split(";", 1)[0]
        connection.close()
        return answer.status, dict(answer.headers), content

    def form(self, path: str, fields: dict) -> tuple[int, dict, str]:
        _, _, page = self.request("GET", path)
        token = re.search(r'name="csrf_token"(?: type="hidden")? value="([^"]+)"', page).group(1)
        body = urllib.parse.urlencode({**fields, "csrf_token": token}).encode()
        return self.request("POST", path, body, {"Content-Type": "application/x-www-form-urlencoded"})

    def sign_in(self, email: str, password: str, totp: str | None) -> bool:
        status, headers, _ = self.form("/login", {"email": email, "password": password})
        if status != 302 or not headers.get("Location", "").endswith("/login/code") or totp is None:
            return False
        status, headers, _ = self.form("/login/code", {"code": pyotp.TOTP(totp).now()})
        return status == 302 and headers.get("Location") == "/"


def wait_until_ready(env: Environment, server: subprocess.Popen, deadline: float) -> None:
    while True:
        try:
            status, _, _ = Client(env.base).request("GET", "/readyz")
            if status == 200:
                return
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{env.name}: `billing serve` did not become ready (exit {server.poll()})")
        time.sleep(0.2)


def post_events(env: Environment, key: str) -> int:
    event = {"specversion": "1.0", "id": f"rehearsal-{secrets.token_hex(4)}", "source": SOURCE,
             "type": "unit.processed", "time": "2026-06-03T10:00:00Z",
             "data": {"customer": CUSTOMER, "site": "lon-01", "category": "standard", "quantity": 1}}
    status, _, _ = Client(env.base).request("POST", "/api/v1/events", json.dumps(event).encode(),
                                            {"Authorization": f"Bearer {key}",
                                             "Content-Type": "application/cloudevents+json"})
    return status


def metrics_text(url: str) -> tuple[int, str]:
    parsed = urllib.parse.urlsplit(url)
    client = Client(f"{parsed.scheme}://{parsed.netloc}")
    status, _, content = client.request("GET", parsed.path or "/metrics")
    return status, content


class Checks:
    def __init__(self):
        self.failed = []

    def __call__(self, holds: bool, what: str) -> None:
        print(f"{'ok  ' if holds else 'FAIL'}  {what}", flush=True)
        if not holds:
            self.failed.append(what)


def refused_to_start(env: Environment, what: str, because: str, check: Checks, **overrides) -> None:
    started = subprocess.run([BILLING, "serve", "--port", str(free_port())], env=env.process_environment(**overrides),
                             capture_output=True, text=True, timeout=60)
    said = [line for line in started.stderr.splitlines() if "refusing to serve" in line]
    check(started.returncode == 2 and because in "".join(said), f"{env.name} refuses to start {what}: {said}")


def rehearse(server_url: str, log_dir: Path) -> list[str]:
    """Runs every check; the ones that failed."""
    check = Checks()
    names = ["test", "us-prod", "uk-prod"]
    with databases(server_url, names) as urls, ExitStack() as stack:
        envs = {name: Environment(name, urls[name], ("test-" if name == "test" else "") + secrets.token_urlsafe(32),
                                  free_port(), free_port(), anchor_file=str(log_dir / f"{name}.anchors.jsonl"))
                for name in names}
        for env in envs.values():
            set_up(env)
        servers = {name: serve(env, stack, log_dir) for name, env in envs.items()}
        deadline = time.monotonic() + 45
        for name, env in envs.items():
            wait_until_ready(env, servers[name], deadline)
        test, us, uk = envs["test"], envs["us-prod"], envs["uk-prod"]

        for env in envs.values():
            status, _, body = Client(env.base).request("GET", "/healthz")
            check(status == 200 and json.loads(body) == {"status": "ok"}, f"{env.name}: /healthz answers")
        check(metrics_text(f"{test.base}/metrics")[0] == 200, "test: metrics on the app (/metrics)")
        for env in (us, uk):
            status, content = metrics_text(f"http://127.0.0.1:{env.metrics_port}/metrics")
            check(status == 200 and "billing_invoices_total" in content,
                  f"{env.name}: metrics on 127.0.0.1:{env.metrics_port}")
            check(Client(env.base).request("GET", "/metrics")[0] == 404, f"{env.name}: no metrics on the public port")

        browser = Client(test.base)
        check(browser.sign_in(test.user, PASSWORD, test.totp), "test: its finance user signs in")
        check(browser.request("GET", "/invoices")[0] == 200, "test: the session opens the invoices")
        for other in (us, uk):
            status, headers, _ = Client(other.base).request("GET", "/invoices", cookies=browser.cookies)
            check(status == 302 and "/login" in headers.get("Location", ""),
                  f"{other.name}: test's session cookie is not a session here")
            check(not Client(other.base).sign_in(test.user, PASSWORD, test.totp),
                  f"{other.name}: test's user cannot sign in")
        check(not Client(test.base).sign_in(us.user, PASSWORD, us.totp), "test: us-prod's user cannot sign in")

        for env in envs.values():
            check(post_events(env, env.api_key) == 200, f"{env.name}: its API key posts events")
            for other in envs.values():
                if other is not env:
                    check(post_events(other, env.api_key) == 401, f"{other.name}: {env.name}'s API key is refused")

        expected = {"test": ["TEST-{y}-000001"], "us-prod": ["US-{y}-000001", "US-{y}-000002"],
                    "uk-prod": ["UK-{y}-000001"]}
        year = dt.datetime.now(dt.timezone.utc).year
        for env in envs.values():
            engine = db.connect(env.database_url)
            with engine.connect() as connection:
                numbers = sorted(connection.scalars(select(Invoice.number).where(Invoice.number.is_not(None))))
                environments = set(connection.scalars(select(AuditEntry.environment).distinct()))
                entries = connection.scalar(select(func.count()).select_from(AuditEntry))
            with db.session_factory(engine)() as session:
                broken = verify(session)
            engine.dispose()
            want = [number.format(y=year) for number in expected[env.name]]
            check(numbers == want, f"{env.name}: invoice numbers {numbers} (its prefix, from 1)")
            check(environments == {env.name} and entries > 0,
                  f"{env.name}: its audit log ({entries} entries) names only {sorted(environments)}")
            check(broken is None, f"{env.name}: its audit chain holds")

        refused_to_start(us, "on the test environment's database", "holds the records of environment test", check,
                         BILLING_DATABASE_URL=test.database_url, BILLING_METRICS_PORT=str(free_port()))
        refused_to_start(uk, "with the test environment's secret", "BILLING_SECRET_KEY is a test secret", check,
                         BILLING_SECRET_KEY=test.secret, BILLING_METRICS_PORT=str(free_port()))
        for name, server in servers.items():
            check(server.poll() is None, f"{name}: still serving at the end")
    return check.failed


def main(argv: list[str]) -> int:
    server_url = argv[1] if len(argv) > 1 else os.environ.get("BILLING_TEST_POSTGRES_URL")
    if not server_url:
        print("usage: three_environments.py POSTGRESQL_URL (or set BILLING_TEST_POSTGRES_URL)", file=sys.stderr)
        return 2
    log_dir = Path(os.environ.get("TMPDIR", "/tmp")) / f"billing-rehearsal-{os.getpid()}"
    log_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    failed = rehearse(server_url, log_dir)
    print(f"{'every check holds' if not failed else f'{len(failed)} checks failed'} "
          f"in {time.monotonic() - started:.1f} s; the servers' logs are in {log_dir}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
