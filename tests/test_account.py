"""The account block in file mode (spec §4.9, interfaces §3): the worked examples of tests/fixtures/examples-account,
the plan's account phase, the refusal of a commitment changed mid-year, the rules at the edges of a year and of the
contract, and the account section in every format."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from decimal import Decimal

import pytest

from dsl.compile import compile_source
from engine.evaluate import Timeline, bill
from engine.periods import Period
from engine.usage import Usage
from invoicing.invoice import build_invoice, invoice_json
from invoicing.pdf import invoice_view
from invoicing.render import render_document

from conftest import COMPARE_TOOL, EXAMPLES

ACCOUNT_EXAMPLES = EXAMPLES.with_name("examples-account")
GLOBEX = ACCOUNT_EXAMPLES / "globex-account"
PERIODS = [(case, period) for case in sorted(p for p in ACCOUNT_EXAMPLES.iterdir() if (p / "args.json").exists())
           for period in json.loads((case / "args.json").read_text())["periods"]]


def _invoice(run_billing, case, period: str, *more: str) -> subprocess.CompletedProcess:
    args = json.loads((case / "args.json").read_text())
    contracts = [part for spec in args["contracts"] for part in ("--contract", spec)]
    return run_billing("invoice", *contracts, "--events", args["events"], "--period", period, *more, cwd=case)


def test_compare_invoices_passes_on_the_account_examples(billing_exe):
    result = subprocess.run([sys.executable, str(COMPARE_TOOL), billing_exe, "."], cwd=ACCOUNT_EXAMPLES,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0 and "13/13" in result.stdout, result.stdout + result.stderr


@pytest.mark.parametrize("case, period", PERIODS, ids=[f"{c.name}-{p}" for c, p in PERIODS])
def test_the_account_section_has_every_field_the_language_names(run_billing, case, period):
    result = _invoice(run_billing, case, period)
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout)
    expected = json.loads((case / f"expected-{period}.json").read_text())
    assert got["totals"] == expected["totals"]
    assert got["account"]["total"] == expected["account"]["total"]
    assert [{key: line[key] for key in want} for line, want in zip(got["account"]["lines"],
                                                                   expected["account"]["lines"])] \
        == expected["account"]["lines"]
    assert len(got["account"]["lines"]) == len(expected["account"]["lines"])


def test_the_plan_prints_the_account_phase_after_every_site_in_its_order(run_billing):
    result = run_billing("plan", GLOBEX / "contract.pricing", "--format", "json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["account_phases"] == ["account", "invoice total"]
    steps = [(s["phase"], s["step"], s["reads"], s["writes"]) for s in plan["account"]]
    assert [step[:2] for step in steps] == [("account", "account_minimum"), ("account", "account_cap"),
                                            ("account", "commitment"), ("invoice total", "invoice_total")]
    assert "account cap count" in steps[1][2] and "account cap count" in steps[1][3]
    assert "commitment balance" in steps[2][3] and steps[3][3] == ["invoice total"]
    text = run_billing("plan", GLOBEX / "contract.pricing").stdout
    assert text.index("site ham") < text.index("account (once per period, after every site") \
        < text.index("true up the sum of the site totals") < text.index("limit the site totals") \
        < text.index("bill 12000.00 in the contract year's first period") < text.index("invoice total = ")


def _with_commit(text: str, commit: str) -> str:
    return text.replace("        commit 12_000.00 yearly prepaid", f"        {commit}")


@pytest.mark.parametrize("effective, refused", [("2026-05", True), ("2027-01", False)])
def test_a_version_may_change_the_commit_only_at_a_contract_year_start(run_billing, tmp_path, effective, refused):
    amended = tmp_path / "amended.pricing"
    amended.write_text(_with_commit((GLOBEX / "contract.pricing").read_text(), "commit 15_000.00 yearly in arrears"))
    result = run_billing("invoice", "--contract", GLOBEX / "contract.pricing", "--contract", f"{amended}@{effective}",
                         "--events", GLOBEX / "events.jsonl", "--period", "2026-06")
    if refused:
        assert result.returncode == 1 and result.stdout == ""
        assert "changes the account's commit" in result.stderr and "could take effect from 2027-01" in result.stderr
    else:
        assert result.returncode == 0, result.stderr


CONTRACT = """\
contract "edges" {
    customer "Edges"
    currency GBP
    starts 2026-01-01
    ends 2026-03-10
    category a "A" rate 1.00
    site "s1" { active until 2026-01-31 }
    account {
        minimum 310.00 monthly
        commit 2_000.00 yearly in arrears
    }
}
"""


def _bill(text: str, period: str, usage: Usage | None = None):
    plan = compile_source(text.encode()).plan
    result = bill(Timeline(((Period.of(plan.terms.starts), plan),)), usage or Usage(), Period.parse(period))
    return invoice_json(build_invoice(result))


def test_the_account_rules_run_when_no_site_is_active_and_the_minimum_is_prorated_at_ends():
    usage = Usage()
    usage.add(Period(2026, 1).first_day, "s1", "a", Decimal(100))
    january, february, march = (_bill(CONTRACT, p, usage) for p in ("2026-01", "2026-02", "2026-03"))
    assert [(l["kind"], l["amount"]) for l in january["account"]["lines"]] == [("account_minimum", "210.00")]
    assert february["sites"] == [] and february["account"]["lines"][0]["amount"] == "310.00"
    minimum, true_up = march["account"]["lines"]
    assert (minimum["commitment"], minimum["amount"]) == ("100.00", "100.00")     # 310.00 × 10 ÷ 31
    assert (true_up["kind"], true_up["spent"], true_up["amount"]) == ("commitment_true_up", "720.00", "1280.00")
    assert march["totals"]["total"] == "1380.00"


def test_a_contract_without_an_account_block_has_no_account_section_or_total():
    document = _bill(CONTRACT.replace(CONTRACT[CONTRACT.index("    account"):CONTRACT.rindex("}")], ""), "2026-01")
    assert "account" not in document and "account" not in document["totals"]


def _globex_invoice(period: str):
    from billing.contracts import build_timeline, compile_versions, parse_version_spec
    from metering.aggregate import meter
    from zoneinfo import ZoneInfo

    timeline = build_timeline(compile_versions([parse_version_spec(str(GLOBEX / "contract.pricing")),
                                                parse_version_spec(f"{GLOBEX / 'contract-2026-05.pricing'}@2026-05")]))
    until = Period.parse(period)
    metered = meter([str(GLOBEX / "events.jsonl")], "globex", ZoneInfo("Europe/Berlin"), lambda r: None, until=until)
    return build_invoice(bill(timeline, metered.usage, until), metered.unbilled.period(until))


def test_text_csv_and_pdf_show_the_account_section_and_the_pdf_verifies_it():
    invoice = _globex_invoice("2026-12")
    text = render_document(invoice, "text")
    assert "Account (all sites together)" in text and "Commitment drawdown" in text and "expires" in text
    rows = list(csv.DictReader(io.StringIO(render_document(invoice, "csv"))))
    account = [row for row in rows if row["kind"].startswith(("account", "commitment"))]
    assert [row["kind"] for row in account] == ["account_minimum", "account_cap", "commitment_drawdown",
                                                "account total"]
    assert account[2]["expiring (EUR)"] == "0.00" and account[1]["limit (EUR)"] == "40000.00"
    assert sum(Decimal(row["amount (EUR)"]) for row in account[:-1]) == Decimal(account[-1]["amount (EUR)"])
    view = invoice_view(invoice)
    checks = {check.added: (check.sum, check.figure) for check in view["verification"].checks}
    assert checks["Totals of the 3 sites + account lines"] == (view["totals"]["total"],) * 2
    assert view["account"].total == view["totals"]["account"]
    assert render_document(invoice, "pdf")[:4] == b"%PDF"
