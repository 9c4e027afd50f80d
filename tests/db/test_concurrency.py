"""Ingest processes at once, and one killed mid-file: every event counted once, rollups equal to the events.

These run `billing ingest` as real processes against the same database, with
small batches so that their transactions interleave.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

from sqlalchemy import func, select

from metering.models import Rollup, UsageEvent

from .support import TINY, event, write_lines

BILLING = str(Path(sys.executable).with_name("billing"))


def events(first: int, last: int) -> list[str]:
    """Events first..last-1, the same content whichever file they are written to."""
    return [event(n, f"2026-05-{1 + n % 28:02d}T{n % 24:02d}:{n % 60:02d}:00Z", f"{n % 7}.25",
                  site="s1" if n % 3 else "s2", category="review" if n % 5 == 0 else "standard")
            for n in range(first, last)]


def expected(first: int, last: int) -> Decimal:
    return sum((Decimal(f"{n % 7}.25") for n in range(first, last)), Decimal(0))


def ingest(*args) -> subprocess.Popen:
    return subprocess.Popen([BILLING, "ingest", *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})


def accepted(output: str) -> int:
    return int(re.search(r"([\d,]+) accepted", output).group(1).replace(",", ""))


def assert_rollups_equal_events(sessions) -> tuple[int, Decimal]:
    with sessions() as session:
        by_key = defaultdict(lambda: [Decimal(0), 0])
        for site, category, day, quantity in session.execute(
                select(UsageEvent.site, UsageEvent.category, UsageEvent.day, UsageEvent.quantity)):
            by_key[(site, category, day)][0] += quantity
            by_key[(site, category, day)][1] += 1
        rollups = {(r.site, r.category, r.day): [r.quantity, r.events] for r in session.scalars(select(Rollup))}
        assert rollups == dict(by_key)
        count = session.scalar(select(func.count()).select_from(UsageEvent))
    return count, sum((q for q, _ in rollups.values()), Decimal(0))


def save_tiny(cli, tmp_path) -> None:
    assert cli("db", "upgrade")[0] == 0
    (tmp_path / "tiny.pricing").write_text(TINY, encoding="utf-8")
    assert cli("contract", "save", tmp_path / "tiny.pricing")[0] == 0


def test_two_ingests_over_overlapping_files_count_every_event_once(cli, tmp_path, sessions):
    save_tiny(cli, tmp_path)
    a = write_lines(tmp_path / "a.jsonl", events(0, 6000))
    b = write_lines(tmp_path / "b.jsonl", events(3000, 9000)[::-1])   # the overlap, met from the other end
    first, second = ingest(a, "--batch-size", 300), ingest(b, "--batch-size", 300)
    (out_a, err_a), (out_b, err_b) = first.communicate(timeout=300), second.communicate(timeout=300)
    assert first.returncode == 0 and second.returncode == 0, err_a + err_b
    assert accepted(out_a) + accepted(out_b) == 9000
    assert assert_rollups_equal_events(sessions) == (9000, expected(0, 9000))


def settle(sessions, quiet_seconds: float = 1.0, limit_seconds: float = 30) -> None:
    """Wait until the number of stored events stops changing."""
    deadline, last = time.monotonic() + limit_seconds, None
    while time.monotonic() < deadline:
        with sessions() as session:
            count = session.scalar(select(func.count()).select_from(UsageEvent))
        if count == last:
            return
        last = count
        time.sleep(quiet_seconds)


# Big enough that the ingest is still running when the test sees its first 3,000 events stored (it polls every
# 50 ms; the ingest stores tens of thousands of events a second).
KILLED_FILE_EVENTS = 200_000


def test_an_ingest_killed_mid_file_loses_nothing_and_a_rerun_completes_it(cli, tmp_path, sessions):
    save_tiny(cli, tmp_path)
    path = write_lines(tmp_path / "big.jsonl", events(0, KILLED_FILE_EVENTS))
    process = ingest(path, "--batch-size", 500)
    deadline = time.monotonic() + 120
    stored = 0
    while stored < 3000 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
        with sessions() as session:
            stored = session.scalar(select(func.count()).select_from(UsageEvent))
    assert process.poll() is None, "the ingest finished before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    settle(sessions)  # a COMMIT the process sent just before the kill may still complete on the server

    partly, _ = assert_rollups_equal_events(sessions)
    assert 3000 <= partly < KILLED_FILE_EVENTS and partly % 500 == 0     # whole batches only

    rerun = ingest(path, "--batch-size", 500)
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert accepted(out) == KILLED_FILE_EVENTS - partly
    assert f"{partly:,} duplicates" in out
    assert assert_rollups_equal_events(sessions) == (KILLED_FILE_EVENTS, expected(0, KILLED_FILE_EVENTS))
