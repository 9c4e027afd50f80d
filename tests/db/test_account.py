"""The account block in the database mode: what an issued invoice counted for the account rules is frozen with it,
so later periods start from what was invoiced; and late usage meets a drawn-down balance where it is billed
(docs/late-events.md)."""

from __future__ import annotations

import json
from decimal import Decimal

from sqlalchemy import select

from ledger.models import Invoice

from .conftest import EXAMPLES
from .support import event, write_lines

GLOBEX = EXAMPLES.with_name("examples-account") / "globex-account"
VERSIONS = (("contract.pricing", None), ("contract-2026-05.pricing", "2026-05"))


def _file_mode(cli, period: str, events) -> dict:
    status, out, err = cli("invoice", "--contract", GLOBEX / "contract.pricing",
                           "--contract", f"{GLOBEX / 'contract-2026-05.pricing'}@2026-05",
                           "--events", events, "--period", period)
    assert status == 0, err
    invoice = json.loads(out)
    invoice["unbilled"] = [group for group in invoice["unbilled"] if group["reason"] != "duplicate"]
    return invoice


def _globex_saved(cli):
    assert cli("db", "upgrade")[0] == 0
    for name, effective in VERSIONS:
        status, out, err = cli("contract", "save", GLOBEX / name, *(["--effective", effective] if effective else []))
        assert status == 0, err
    status, out, err = cli("ingest", GLOBEX / "events.jsonl")
    assert status == 0, err


def _issue(cli, period: str) -> None:
    for step in ("close", "approve", "issue"):
        status, out, err = cli(step, "--customer", "globex", "--period", period)
        assert status == 0, f"{step} {period}: {err}"


def test_issued_invoices_freeze_the_account_counts_and_later_periods_start_from_them(cli, sessions):
    _globex_saved(cli)
    for period in ("2026-01", "2026-02", "2026-03", "2026-04", "2026-05"):
        _issue(cli, period)
    with sessions() as session:
        rows = {row.period: row for row in session.scalars(select(Invoice).where(Invoice.customer == "globex"))}
        may = dict(tuple(r) for r in rows[max(rows)].cap_counts if len(r) == 2)
        document = rows[max(rows)].document
    drawdowns = sum(Decimal(line["amount"]) for row in rows.values() for line in row.document["account"]["lines"]
                    if line["kind"] == "commitment_drawdown")
    assert Decimal(may["commitment drawn"]) == -drawdowns > 0
    assert Decimal(may["account cap"]) > 0 and Decimal(may["year spend"]) >= Decimal(may["account cap"])
    assert document["totals"]["account"] == document["account"]["total"]
    for period in ("2026-06", "2026-12"):
        status, out, err = cli("invoice", "--customer", "globex", "--period", period)
        assert status == 0, err
        assert json.loads(out) == _file_mode(cli, period, GLOBEX / "events.jsonl"), period


def test_late_usage_of_an_issued_period_is_drawn_from_the_balance_of_the_period_that_bills_it(cli, tmp_path):
    _globex_saved(cli)
    _issue(cli, "2026-01")
    january = json.loads(cli("invoice", "--customer", "globex", "--period", "2026-01")[1])
    late = write_lines(tmp_path / "late.jsonl", [
        event("late-1", "2026-01-20T10:00:00Z", "10000", customer="globex", site="muc", category="infer")])
    assert cli("ingest", late)[0] == 0
    status, out, err = cli("invoice", "--customer", "globex", "--period", "2026-02")
    assert status == 0, err
    february = json.loads(out)
    late_lines = [line for site in february["sites"] for line in site["lines"] if line.get("late_for") == "2026-01"]
    assert [line["amount"] for line in late_lines] == ["200.00"]
    drawdown = next(line for line in february["account"]["lines"] if line["kind"] == "commitment_drawdown")
    january_after = next(line for line in january["account"]["lines"]
                         if line["kind"] == "commitment_drawdown")["balance_after"]
    # February's drawdown starts from what January's issued invoice left, and takes the late 200.00 with
    # February's own charges: the late usage is drawn where it is billed.
    assert drawdown["balance_before"] == january_after
    sites = sum(Decimal(site["total"]) for site in february["sites"])
    assert Decimal(drawdown["amount"]) == -min(Decimal(january_after), sites
                                               + sum(Decimal(line["amount"]) for line in february["account"]["lines"]
                                                     if line["kind"] in ("account_minimum", "account_cap")))
    assert Decimal(february["totals"]["total"]) == sites + Decimal(february["account"]["total"])
