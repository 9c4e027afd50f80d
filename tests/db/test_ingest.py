"""`billing ingest`: each event stored once by (source, id), rollups exact, bad lines rejected one by one."""

from __future__ import annotations

import json
import os
from decimal import Decimal

import pytest
from sqlalchemy import select, text

from ingest.pipeline import ingest_events
from metering.events import read_events
from metering.models import Rollup, UsageEvent

from .support import TINY, event, stored_state, write_lines


@pytest.fixture
def tiny(cli, tmp_path):
    assert cli("db", "upgrade")[0] == 0
    path = tmp_path / "tiny.pricing"
    path.write_text(TINY, encoding="utf-8")
    status, _, err = cli("contract", "save", path)
    assert status == 0, err
    return path


def test_summary_counts_and_a_rerun_changes_nothing(cli, tiny, tmp_path, sessions):
    events = write_lines(tmp_path / "may.jsonl", [
        event(1, "2026-05-03T10:00:00Z", "2"),
        event(2, "2026-05-03T11:00:00Z", "1.5", category="review"),
        event(3, "2026-05-04T09:00:00Z"),
        event(1, "2026-05-03T11:00:00+01:00", "2.00"),     # the same instant and quantity: a duplicate
        event(3, "2026-05-04T09:00:00Z", "7"),              # another quantity: a conflict
    ])
    status, out, err = cli("ingest", events)
    assert status == 0, err
    assert out.strip() == ("ingested 1 file: 5 events read, 3 accepted, 1 duplicate, 1 conflict, 0 rejected")
    before = stored_state(sessions)
    assert before["events"] == 3 and before["conflicts"] == 1
    assert before["rollups"][("tiny", "s1", "standard", before_day("2026-05-03"))] == (Decimal("2"), 1)

    status, out, err = cli("ingest", events)
    assert status == 0, err
    assert out.strip() == "ingested 1 file: 5 events read, 0 accepted, 4 duplicates, 1 conflict, 0 rejected"
    assert stored_state(sessions) == before


def before_day(text):
    import datetime as dt
    return dt.date.fromisoformat(text)


def test_a_conflict_sent_again_is_listed_once(cli, tiny, tmp_path):
    first = write_lines(tmp_path / "a.jsonl", [event(1, "2026-05-03T10:00:00Z", "2")])
    again = write_lines(tmp_path / "b.jsonl", [event(1, "2026-05-03T10:00:00Z", "5")] * 3)
    assert cli("ingest", first)[0] == 0
    assert cli("ingest", again)[0] == 0
    assert cli("ingest", again)[0] == 0
    status, out, err = cli("invoice", "--customer", "tiny", "--period", "2026-05")
    assert status == 0, err
    assert json.loads(out)["unbilled"] == [
        {"reason": "conflict", "site": "s1", "category": "standard", "events": 1, "quantity": "5"}
    ]


def test_quantities_add_up_exactly(sessions, cli, tiny, tmp_path):
    write_lines(tmp_path / "tenths.jsonl", [
        event(1, "2026-05-03T10:00:00Z", "0.1"),
        event(2, "2026-05-03T11:00:00Z", 0.2),
        event(3, "2026-05-03T12:00:00Z", "0.000000000000000000000000000001"),
        event(4, "2026-05-04T12:00:00Z", "12345678901234567890.123456789012345678"),
    ])
    assert cli("ingest", tmp_path / "tenths.jsonl")[0] == 0
    with sessions() as session:
        rollups = {r.day.isoformat(): r.quantity for r in session.scalars(select(Rollup))}
        stored = {e.event_id: e.quantity for e in session.scalars(select(UsageEvent))}
    assert rollups["2026-05-03"] == Decimal("0.300000000000000000000000000001")
    assert rollups["2026-05-04"] == Decimal("12345678901234567890.123456789012345678")
    assert stored["evt-2"] == Decimal("0.2")


def test_point_one_plus_point_two_is_point_three(sessions, cli, tiny, tmp_path):
    write_lines(tmp_path / "tenths.jsonl", [event(1, "2026-05-03T10:00:00Z", 0.1),
                                            event(2, "2026-05-03T11:00:00Z", 0.2)])
    assert cli("ingest", tmp_path / "tenths.jsonl")[0] == 0
    with sessions() as session:
        assert session.scalars(select(Rollup.quantity)).all() == [Decimal("0.3")]
    status, out, _ = cli("invoice", "--customer", "tiny", "--period", "2026-05")
    usage = json.loads(out)["sites"][0]["lines"][0]
    assert (usage["quantity"], usage["amount"]) == ("0.3", "0.30")


def test_bad_lines_are_rejected_one_by_one_and_the_rest_is_taken(cli, tiny, tmp_path, sessions):
    good = [event(1, "2026-05-03T10:00:00Z"), event(2, "2026-05-03T10:00:00Z")]
    bad = {
        "malformed JSON": '{"specversion": "1.0", "id": ',
        "unknown customer": event(10, "2026-05-03T10:00:00Z", customer="nobody"),
        "bad quantity": event(11, "2026-05-03T10:00:00Z", "lots"),
        "bad time": event(12, "2026-05-03T10:00:00"),
        "missing field": json.dumps({"specversion": "1.0", "id": "x", "source": "s", "type": "t",
                                     "time": "2026-05-03T10:00:00Z", "data": {"customer": "tiny"}}),
    }
    path = write_lines(tmp_path / "mixed.jsonl", [good[0], *bad.values(), good[1]])
    status, out, err = cli("ingest", path, "--rejects", tmp_path / "rejects.jsonl")
    assert status == 1
    assert "Traceback" not in err
    for number in range(2, 2 + len(bad)):
        assert f"{path}:{number}: rejected: " in err
    assert "2 accepted" in out and "5 rejected (1 bad quantity, 1 bad time, 1 malformed JSON, " \
                                    "1 missing field, 1 unknown customer)" in out
    rejects = [json.loads(line) for line in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    assert [(r["line"], r["reason"]) for r in rejects] == [(n, reason) for n, reason in enumerate(bad, 2)]
    assert rejects[0]["text"] == bad["malformed JSON"]
    assert stored_state(sessions)["events"] == 2


def test_a_line_that_is_not_utf8_is_rejected_and_the_rest_taken(cli, tiny, tmp_path, sessions):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(event(1, "2026-05-03T10:00:00Z").encode() + b"\n"
                     + event(9, "2026-05-03T10:00:00Z").replace("s1", "caf\xe9").encode("latin-1") + b"\n"
                     + event(2, "2026-05-03T10:00:00Z").encode() + b"\n")
    status, out, err = cli("ingest", path)
    assert status == 1 and f"{path}:2: rejected: not UTF-8 text: byte " in err and "Traceback" not in err
    assert "(1 not UTF-8)" in out
    assert stored_state(sessions)["events"] == 2


def test_csv_is_accepted_too(cli, tiny, tmp_path, sessions):
    path = tmp_path / "may.csv"
    path.write_text("id,source,type,time,customer,site,category,quantity\n"
                    "e1,platform/csv,unit.processed,2026-05-03T10:00:00Z,tiny,s1,standard,3\n"
                    "e2,platform/csv,unit.processed,2026-05-03T10:00:00,tiny,s1,standard,3\n"
                    "e3,platform/csv,unit.processed,2026-05-03T10:00:00Z,tiny,s1,review,0.5\n", encoding="utf-8")
    status, out, err = cli("ingest", path)
    assert status == 1 and f"{path}:3: rejected: time must be" in err
    assert stored_state(sessions)["events"] == 2


def test_a_csv_line_that_is_not_utf8_is_rejected_as_a_jsonl_line_is(cli, tiny, tmp_path, sessions):
    path = tmp_path / "latin1.csv"
    path.write_bytes("id,source,type,time,customer,site,category,quantity\n"
                     "e1,platform/csv,unit.processed,2026-05-03T10:00:00Z,tiny,s1,standard,3\n"
                     "e2,platform/csv,unit.processed,2026-05-03T10:00:00Z,tiny,caf\xe9,standard,3\n".encode("latin-1"))
    status, out, err = cli("ingest", path)
    assert status == 1 and f"{path}:3: rejected: not UTF-8 text: byte 61 is 0xe9" in err
    assert "(1 not UTF-8)" in out and stored_state(sessions)["events"] == 1


def test_a_file_that_cannot_be_read_is_a_usage_error(cli, tiny, tmp_path):
    status, out, err = cli("ingest", tmp_path / "missing.jsonl")
    assert status == 2 and "missing.jsonl: cannot read the events" in err


def test_the_service_reports_every_item_in_order(sessions, cli, tiny, tmp_path):
    path = write_lines(tmp_path / "e.jsonl", [event(1, "2026-05-03T10:00:00Z"), "not json",
                                              event(1, "2026-05-03T10:00:00Z"), event(2, "2026-05-03T10:00:00Z")])
    results = [(tag, outcome.status) for tag, _, outcome in ingest_events(sessions, read_events(path),
                                                                          batch_size=2)]
    assert results == [(1, "accepted"), (2, "rejected"), (3, "duplicate"), (4, "accepted")]


# A file given as read_events(path) is read in a worker process (ingest/file_batches.py); a list of items goes
# through the service as it comes. Both must store and report the same.

MIXED = [
    event(1, "2026-05-03T10:00:00Z", "1.50"),
    event(2, "2026-05-03T11:00:00Z", "2", category="review"),
    event(3, "2026-05-03T12:00:00Z", "0.1"),
    event(1, "2026-05-03T11:00:00+01:00", "1.5"),         # batch 2: a duplicate of batch 1's event
    event(4, "2026-05-03T13:00:00Z", "3.00"),
    event(2, "2026-05-03T11:00:00Z", "5", category="review"),   # a conflict with batch 1's event
    event(5, "2026-05-04T09:00:00Z", "7"),
    "not json",
    event(5, "2026-05-04T09:00:00Z", "7"),                 # a duplicate within its batch
    event(6, "2026-05-04T09:00:00Z", customer="nobody"),
    event(6, "2026-05-04T10:00:00Z", "2"),                 # the identity of an unknown customer's event
    event(7, "2026-05-31T23:30:00Z", "0.25", site="s2"),   # June 1st in London
]
AGAIN = [   # a second file: repeats of stored events next to new ones on the same rollups
    event(8, "2026-05-03T14:00:00Z", "1"),
    event(4, "2026-05-03T13:00:00Z", "3"),                 # stored by the first file: a duplicate
    event(9, "2026-05-03T15:00:00Z", "0.125"),
    event(3, "2026-05-03T12:00:00Z", "0.2"),               # a conflict
]


def _outcomes(sessions, path, *, batch_size, as_file):
    items = read_events(path) if as_file else list(read_events(path))
    return [(tag, outcome.status, outcome.late, outcome.reason)
            for tag, _, outcome in ingest_events(sessions, items, batch_size=batch_size)]


def _forget_everything(sessions):
    with sessions.begin() as session:
        for table in ("events", "rollups", "late_rollups", "conflicts"):
            session.execute(text(f"DELETE FROM {table}"))


@pytest.mark.parametrize("batch_size", [3, 5, 20_000])
def test_a_file_read_by_the_worker_is_stored_as_items_are(sessions, tiny, tmp_path, batch_size):
    first = write_lines(tmp_path / "first.jsonl", MIXED)
    again = write_lines(tmp_path / "again.jsonl", AGAIN)
    expected = [_outcomes(sessions, path, batch_size=batch_size, as_file=False) for path in (first, again)]
    expected_state = stored_state(sessions)
    _forget_everything(sessions)

    assert [_outcomes(sessions, path, batch_size=batch_size, as_file=True) for path in (first, again)] == expected
    assert stored_state(sessions) == expected_state
    statuses = [status for _, status, _, _ in expected[0]]
    assert statuses.count("duplicate") == 2 and statuses.count("conflict") == 1
    assert [status for _, status, _, _ in expected[1]] == ["accepted", "duplicate", "accepted", "conflict"]
    day = before_day("2026-05-03")
    assert expected_state["rollups"][("tiny", "s1", "standard", day)] == (Decimal("5.725"), 5)


@pytest.mark.parametrize("slot_bytes", [1, 400])
def test_texts_too_large_for_shared_memory_are_pickled(sessions, tiny, tmp_path, monkeypatch, slot_bytes):
    """A batch's texts that do not fit in their slot of shared memory go through the pipe instead."""
    import ingest.file_batches

    first = write_lines(tmp_path / "first.jsonl", MIXED)
    expected = _outcomes(sessions, first, batch_size=3, as_file=False)
    expected_state = stored_state(sessions)
    _forget_everything(sessions)
    monkeypatch.setattr(ingest.file_batches, "SLOT_BYTES", slot_bytes)

    assert _outcomes(sessions, first, batch_size=3, as_file=True) == expected
    assert stored_state(sessions) == expected_state


def test_the_worker_leaves_customers_it_does_not_know_to_the_database(sessions, tiny, tmp_path, monkeypatch):
    """A contract saved after the ingest began: the worker knew no time zone for it; the database decides."""
    from ingest.file_batches import FileReader

    path = write_lines(tmp_path / "first.jsonl", MIXED)
    expected = _outcomes(sessions, path, batch_size=5, as_file=False)
    expected_state = stored_state(sessions)
    _forget_everything(sessions)
    batches = FileReader.batches
    monkeypatch.setattr(FileReader, "batches", lambda reader, backend, zones: batches(reader, backend, {}))

    assert _outcomes(sessions, path, batch_size=5, as_file=True) == expected
    assert stored_state(sessions) == expected_state


def test_a_failure_in_the_worker_is_raised_here(sessions, tiny, tmp_path, monkeypatch):
    import ingest.file_batches

    path = write_lines(tmp_path / "e.jsonl", [event(1, "2026-05-03T10:00:00Z")])
    with pytest.raises(FileNotFoundError):
        list(ingest_events(sessions, read_events(tmp_path / "missing.jsonl")))

    def broken(*args):
        raise ValueError("the reader broke")
        yield

    monkeypatch.setattr(ingest.file_batches, "_make_batches", broken)
    with pytest.raises(ValueError, match="the reader broke"):
        list(ingest_events(sessions, read_events(path)))

    def killed(*args):
        os._exit(3)
        yield

    monkeypatch.setattr(ingest.file_batches, "_make_batches", killed)
    with pytest.raises(RuntimeError, match="stopped .exit status 3"):
        list(ingest_events(sessions, read_events(path)))
    assert stored_state(sessions)["events"] == 0


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="reads the process tree from /proc")
def test_the_worker_ends_when_the_ingest_is_killed(cli, tiny, tmp_path, db_url):
    """Killed, an ingest leaves no worker behind: one would wait for ever, and keep what it inherited open."""
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    path = write_lines(tmp_path / "big.jsonl", [event(n, "2026-05-03T10:00:00Z") for n in range(200_000)])
    process = subprocess.Popen([str(Path(sys.executable).with_name("billing")), "ingest", str(path),
                                "--batch-size", "500"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "BILLING_DATABASE_URL": db_url})
    children, deadline = [], time.monotonic() + 60
    while not children and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
        with open(f"/proc/{process.pid}/task/{process.pid}/children") as listed:
            children = [int(pid) for pid in listed.read().split()]
    assert children, "the ingest ended before its worker could be seen"
    process.send_signal(signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + 10
    while any(map(_alive, children)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(map(_alive, children))
