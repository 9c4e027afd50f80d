"""The command line's entries in the audit log: every contract save (refused ones too, with the reason),
and the reads of financial data (`contract history`, `invoice --customer`), like the portal's."""

from __future__ import annotations

import hashlib

from sqlalchemy import func, select

from audit.log import AuditEntry, verify
from ledger.contracts import author_name
from ledger.models import ContractVersion

from .support import TINY, event, write_lines

AMENDED = TINY.replace("rate 1.00", "rate 1.10")


def entries(sessions, action: str) -> list[AuditEntry]:
    with sessions() as session:
        found = list(session.scalars(select(AuditEntry).where(AuditEntry.action == action)
                                     .order_by(AuditEntry.sequence)))
        assert verify(session) is None
        return found


def versions(sessions) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(ContractVersion))


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_a_save_is_recorded_with_who_which_version_where_and_the_outcome(sessions, cli, tmp_path, monkeypatch):
    monkeypatch.setenv("BILLING_ENV", "test")
    path = tmp_path / "tiny.pricing"
    path.write_text(TINY, encoding="utf-8")
    assert cli("db", "upgrade")[0] == 0
    assert cli("contract", "save", path, "--comment", "signed")[0] == 0
    path.write_text(AMENDED, encoding="utf-8")
    assert cli("contract", "save", path, "--effective", "2026-04", "--author", "bob")[0] == 0
    assert cli("contract", "save", path, "--effective", "2026-04")[0] == 0   # the same text again: unchanged

    first, amended, again = entries(sessions, "contract.save")
    assert first.actor == f"cli:{author_name()}" and first.environment == "test" and first.outcome == "success"
    assert first.resource == f"contract:tiny@{sha(TINY)[:12]}" and first.at.tzinfo is not None
    assert first.details["result"] == "created" and first.details["comment"] == "signed"
    assert first.details["in_effect_from"] == "2026-01"
    assert amended.resource == f"contract:tiny@{sha(AMENDED)[:12]}"
    assert (amended.details["result"], amended.details["in_effect_from"], amended.details["author"]) == \
        ("saved", "2026-04", "bob")
    assert again.details["result"] == "unchanged"


def test_a_refused_save_is_recorded_as_a_failure_with_its_reason(sessions, cli, tmp_path):
    path = tmp_path / "tiny.pricing"
    path.write_text(TINY, encoding="utf-8")
    assert cli("db", "upgrade")[0] == 0
    status, _, err = cli("contract", "save", path, "--effective", "2026-03")
    assert status == 1 and "first version" in err
    assert versions(sessions) == 0
    [refused] = entries(sessions, "contract.save")
    assert refused.outcome == "failure" and refused.resource == f"contract:tiny@{sha(TINY)[:12]}"
    assert "first version of 'tiny' is in effect from its start" in refused.details["reason"]
    assert refused.details["in_effect_from"] == "2026-03"


def test_a_contract_with_errors_is_a_refused_save(sessions, cli, tmp_path):
    path = tmp_path / "broken.pricing"
    path.write_text(TINY.replace("starts   2026-01-01", "starts   2026-01-15"), encoding="utf-8")
    assert cli("db", "upgrade")[0] == 0
    assert cli("contract", "save", path)[0] == 1
    [refused] = entries(sessions, "contract.save")
    assert (refused.outcome, refused.details["reason"]) == ("failure", "the contract has errors")
    assert refused.resource.startswith("contract:tiny@")


def test_an_unreadable_file_is_a_misused_command_not_a_save(sessions, cli, tmp_path):
    assert cli("db", "upgrade")[0] == 0
    assert cli("contract", "save", tmp_path / "missing.pricing")[0] == 2
    assert entries(sessions, "contract.save") == []


def test_reads_of_financial_data_on_the_command_line_are_recorded(sessions, cli, tmp_path):
    path = tmp_path / "tiny.pricing"
    path.write_text(TINY, encoding="utf-8")
    events = write_lines(tmp_path / "events.jsonl", [event(1, "2026-02-03T10:00:00Z", "7")])
    assert cli("db", "upgrade")[0] == 0
    assert cli("contract", "save", path)[0] == 0
    assert cli("ingest", events)[0] == 0

    assert cli("contract", "history", "tiny")[0] == 0
    assert cli("invoice", "--customer", "tiny", "--period", "2026-02", "--format", "text")[0] == 0
    [history] = entries(sessions, "contract.history")
    assert history.resource == "contract:tiny" and history.actor == f"cli:{author_name()}"
    [view] = entries(sessions, "invoice.view")
    assert view.resource == "invoice:tiny/2026-02" and view.details["format"] == "text"

    assert cli("contract", "history", "nobody")[0] == 1          # nothing was read, nothing recorded
    assert len(entries(sessions, "contract.history")) == 1
