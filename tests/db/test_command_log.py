"""One JSON line per command in the environment's log file (billing/command_log.py), never an argument's value."""

from __future__ import annotations

import json
import logging

import pytest


@pytest.fixture
def log_file(tmp_path, monkeypatch):
    """BILLING_LOG_FILE set; the root logger's handlers as they were afterwards (the command replaces them)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    path = tmp_path / "billing.jsonl"
    monkeypatch.setenv("BILLING_LOG_FILE", str(path))
    yield path
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_each_command_writes_one_line_without_the_key_it_printed(cli, log_file, tmp_path):
    from db.support import TINY

    assert cli("db", "upgrade")[0] == 0
    contract = tmp_path / "tiny.pricing"
    contract.write_text(TINY, encoding="utf-8")
    assert cli("contract", "save", contract)[0] == 0
    status, key, _ = cli("apikey", "create", "--customer", "tiny", "--source", "platform/test")
    assert status == 0 and key.startswith("bk_")
    assert cli("apikey", "create", "--customer", "nobody", "--source", "platform/test")[0] == 1
    text = log_file.read_text(encoding="utf-8")
    lines = [json.loads(line) for line in text.splitlines()]
    commands = [(line["command"], line["status"]) for line in lines if line["message"] == "command"]
    assert commands == [("db upgrade", 0), ("contract save", 0), ("apikey create", 0), ("apikey create", 1)]
    assert all(line["environment"] == "test" and line["actor"].startswith("cli:") for line in lines
               if line["message"] == "command")
    assert key.strip().split("_", 2)[2] not in text   # the secret (its own alphabet has "_" in it)


def test_an_unexpected_error_leaves_its_traceback_in_the_log_without_the_key(cli, log_file, monkeypatch):
    from billing.commands import db as db_commands

    key = "bk_0123456789ab_" + "s" * 43

    def broken(args):
        raise RuntimeError(f"the upgrade fell over holding {key}")

    monkeypatch.setattr(db_commands, "cmd_db_upgrade", broken)
    with pytest.raises(RuntimeError):
        cli("db", "upgrade")
    [line] = [json.loads(line) for line in log_file.read_text(encoding="utf-8").splitlines()]
    assert line["message"] == "command failed" and line["command"] == "db upgrade"
    assert "RuntimeError: the upgrade fell over holding bk_0123456789ab_[redacted]" in line["traceback"]
    assert key not in log_file.read_text(encoding="utf-8")
