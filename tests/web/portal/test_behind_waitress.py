"""Behind a proxy, with the real server: `billing serve` (waitress) in a subprocess, in a copy of us-prod that
trusts one proxy at 127.0.0.1 (on this test's database, and not production, which refuses one it does not own).
The audit log and the per-address sign-in throttle see the address the proxy forwards, and a client that is not
the proxy cannot forge one (billing/commands/web.py `proxying`)."""

from __future__ import annotations

import http.client
import os
import re
import socket
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import pytest
from sqlalchemy import select

from audit.log import AuditEntry
from identity.signin import TOO_MANY
from settings import environment

from .conftest import csrf_token

CLIENT, OTHER_CLIENT = "203.0.113.9", "198.51.100.7"
# The environment module read from a copy of the environments folder, then the `billing` command.
LAUNCH = ("import pathlib, sys; from settings import environment; "
          "environment.ENVIRONMENTS = pathlib.Path(sys.argv[1]); "
          "from billing.cli import main; sys.exit(main(sys.argv[2:]))")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def server(db_url, portal_sessions, tmp_path):
    """The port of `billing serve` in us-prod as one proxy at 127.0.0.1 would front it."""
    folder = tmp_path / "environments"
    folder.mkdir()
    settings = (environment.ENVIRONMENTS / "us-prod.toml").read_text(encoding="utf-8")
    settings = re.sub(r"(?m)^metrics_(port|host) = .*$", "", settings.replace("production = true",
                                                                               "production = false"))
    assert 'trusted_proxy = "127.0.0.1"' in settings and "trusted_proxies = 1" in settings
    (folder / "us-prod.toml").write_text(settings, encoding="utf-8")
    port = free_port()
    env = {**os.environ, "BILLING_ENV": "us-prod", "BILLING_DATABASE_URL": db_url,
           "BILLING_SECRET_KEY": "Yq3vN8pXkR2mT7wJd5sL0aZcF4hB9uEeG6iO1nVyK_Q"}
    process = subprocess.Popen([sys.executable, "-c", LAUNCH, str(folder), "serve", "--port", str(port),
                                "--threads", "2"], env=env, cwd=Path(__file__).resolve().parents[3],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60   # two shared cores, other suites running
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"billing serve did not start: {process.stderr.read().decode()}")
                time.sleep(0.2)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


def failed_login(port: int, email: str, forwarded_for: str | None, source: str = "127.0.0.1") -> str:
    """Signs in with a wrong password over a connection from `source`: the page's text."""
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=(source, 0))
    try:
        connection.request("GET", "/login", headers=headers)
        page = connection.getresponse()
        cookie = page.getheader("Set-Cookie").split(";")[0]
        token = csrf_token(page.read().decode())
        body = urllib.parse.urlencode({"email": email, "password": "not the password", "csrf_token": token})
        connection.request("POST", "/login", body=body, headers={
            **headers, "Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"})
        answer = connection.getresponse()
        return answer.read().decode()
    finally:
        connection.close()


def login_addresses(sessions) -> list[str | None]:
    with sessions() as session:
        return list(session.scalars(select(AuditEntry.ip).where(AuditEntry.action == "login.password")
                                    .order_by(AuditEntry.sequence)))


def test_the_audit_log_and_the_throttle_see_the_forwarded_client(server, portal_sessions, users):
    for attempt in range(20):   # the address limit (LOGIN_ADDRESS_MAX_FAILURES), on accounts known and not
        failed_login(server, f"nobody{attempt}@example.com", CLIENT)
    assert TOO_MANY in failed_login(server, users["finance"].email, CLIENT)
    assert TOO_MANY not in failed_login(server, users["finance"].email, OTHER_CLIENT)
    assert set(login_addresses(portal_sessions)) == {CLIENT, OTHER_CLIENT}


def test_a_client_that_is_not_the_proxy_cannot_forge_its_address(server, portal_sessions, users):
    failed_login(server, users["finance"].email, CLIENT, source="127.0.0.2")
    failed_login(server, users["finance"].email, None, source="127.0.0.2")
    assert login_addresses(portal_sessions) == ["127.0.0.2", "127.0.0.2"]
