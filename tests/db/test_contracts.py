"""`billing contract save|history`: versions at period boundaries, never under an issued invoice, all kept."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select
from sqlalchemy_continuum import version_class

from dsl.compile import compile_source
from engine.periods import Period
from engine.refusal import Refused
from ledger.contracts import load_contract, save_contract
from ledger.history import contract_history, render_history
from ledger.issuing import record_issued_invoice
from ledger.models import ContractVersion

from .support import TINY, event, write_lines

AMENDED = TINY.replace("rate 1.00", "rate 1.10")
AMENDED_AGAIN = TINY.replace("rate 1.00", "rate 1.20")
UTC = dt.timezone.utc


def compiled(text: str):
    result = compile_source(text.encode(), "tiny.pricing")
    assert result.ok
    return result


def save(sessions, text, **options):
    with sessions.begin() as session:
        return save_contract(session, compiled(text), author="alice", **options)


def effective_periods(sessions) -> list[str]:
    with sessions() as session:
        return [str(v.effective) for v in load_contract(session, "tiny").versions]


def test_first_version_from_the_start_then_the_next_boundary_after_today(sessions):
    assert save(sessions, TINY).effective == Period(2026, 1)
    may_tenth = dt.datetime(2026, 5, 10, 9, 0, tzinfo=UTC)
    saved = save(sessions, AMENDED, now=may_tenth, comment="price review")
    assert (saved.outcome, saved.effective) == ("saved", Period(2026, 6))
    assert effective_periods(sessions) == ["2026-01", "2026-06"]


def test_today_is_the_contracts_own_today(sessions):
    save(sessions, TINY)
    # 23:30 UTC on 31 May is already 1 June in London: the next boundary is July's
    saved = save(sessions, AMENDED, now=dt.datetime(2026, 5, 31, 23, 30, tzinfo=UTC))
    assert saved.effective == Period(2026, 7)


def test_saving_the_version_in_effect_again_is_a_no_op(sessions, cli, tmp_path):
    path = tmp_path / "tiny.pricing"
    path.write_text(TINY, encoding="utf-8")
    assert cli("db", "upgrade")[0] == 0
    assert cli("contract", "save", path)[0] == 0
    status, out, err = cli("contract", "save", path, "--comment", "again")
    assert status == 0
    assert "unchanged" in out and "nothing saved" in out
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(version_class(ContractVersion))) == 1


def test_a_first_version_cannot_start_elsewhere(sessions):
    with pytest.raises(Refused, match="in effect from its start") as refused:
        save(sessions, TINY, effective=Period(2026, 3))
    assert (refused.value.refusal.code, refused.value.refusal.field) == ("first-version-effective", "effective")


def test_a_version_keeps_start_and_time_zone(sessions):
    save(sessions, TINY)
    with pytest.raises(Refused, match="keep the contract's timezone"):
        save(sessions, TINY.replace("Europe/London", "Europe/Paris"), effective=Period(2026, 3))


def test_effective_may_not_reach_an_issued_period(sessions, cli, tmp_path):
    path = tmp_path / "amended.pricing"
    path.write_text(AMENDED, encoding="utf-8")
    save(sessions, TINY)
    write_lines(tmp_path / "e.jsonl", [event(1, "2026-04-03T10:00:00Z", "5")])
    assert cli("ingest", tmp_path / "e.jsonl")[0] == 0
    with sessions.begin() as session:
        record_issued_invoice(session, "tiny", Period(2026, 4))

    for period in ("2026-02", "2026-04"):
        status, out, err = cli("contract", "save", path, "--effective", period)
        assert status == 1, out
        assert "the invoice for 2026-04 is already issued" in err and "from 2026-05 at the earliest" in err
    assert effective_periods(sessions) == ["2026-01"]

    status, out, err = cli("contract", "save", path, "--effective", "2026-05", "--comment", "new rate")
    assert status == 0, err
    assert effective_periods(sessions) == ["2026-01", "2026-05"]


def test_history_keeps_every_save_with_its_diff_and_what_it_billed(sessions, cli, tmp_path):
    save(sessions, TINY, comment="signed")
    save(sessions, AMENDED, effective=Period(2026, 6), comment="first try")
    replaced = save(sessions, AMENDED_AGAIN, effective=Period(2026, 6), comment="agreed rate")
    assert replaced.outcome == "replaced" and replaced.same_as.sha256 == compiled(AMENDED).plan.terms.version
    write_lines(tmp_path / "e.jsonl", [event(1, "2026-01-03T10:00:00Z", "5")])
    assert cli("ingest", tmp_path / "e.jsonl")[0] == 0
    with sessions.begin() as session:
        record_issued_invoice(session, "tiny", Period(2026, 1))

    with sessions() as session:
        history = contract_history(session, "tiny", today=dt.date(2026, 7, 2))
    assert [(v.number, str(v.effective), v.comment, v.replaced_by) for v in history.versions] == [
        (1, "2026-01", "signed", None), (2, "2026-06", "first try", 3), (3, "2026-06", "agreed rate", None),
    ]
    assert [(str(p.period), p.version, p.invoice) for p in history.periods] == [
        ("2026-01", 1, "issued"), ("2026-02", 1, None), ("2026-03", 1, None), ("2026-04", 1, None),
        ("2026-05", 1, None), ("2026-06", 3, None), ("2026-07", 3, None),
    ]
    text = render_history(history)
    assert "Version 2: for 2026-06, replaced by version 3 before it took effect" in text
    assert "saved" in text and "by alice: agreed rate" in text
    assert "-    category standard \"Standard processing\" rate 1.10" in text
    assert "+    category standard \"Standard processing\" rate 1.20" in text

    status, out, err = cli("contract", "history", "tiny")
    assert status == 0 and "Version 3: in effect from 2026-06" in out
    status, out, err = cli("contract", "history", "nobody")
    assert status == 1 and "no contract 'nobody'" in err


def test_a_contract_with_errors_is_not_saved(cli, tmp_path):
    path = tmp_path / "broken.pricing"
    path.write_text(TINY.replace("starts   2026-01-01", "starts   2026-01-15"), encoding="utf-8")
    assert cli("db", "upgrade")[0] == 0
    status, out, err = cli("contract", "save", path)
    assert status == 1 and "error:" in err and "not saved" in err
