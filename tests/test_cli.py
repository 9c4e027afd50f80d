"""The `billing` command as operators use it (interfaces §2): output formats and exit codes.

Every test runs the installed console script and checks that no traceback reaches the user.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import COMPARE_TOOL, EXAMPLES


@pytest.fixture
def billing(run_billing):
    def run(*args, cwd=None) -> subprocess.CompletedProcess:
        result = run_billing(*args, cwd=cwd)
        assert "Traceback" not in result.stderr, result.stderr
        assert "Traceback" not in result.stdout
        return result

    return run


CONTRACT = """\
contract "t" {
    customer "T Ltd"
    currency GBP
    starts 2026-01-01
    category a "A" rate 1.00
    category b "B" rate 2.00
    site "s1" "Site one" {
        cap 1_000.00 yearly on all
    }
}
"""


def event(number: int, time: str = "2026-01-05T10:00:00Z", site: str = "s1", category: str = "a", quantity=1,
          customer: str = "t") -> dict:
    return {"specversion": "1.0", "id": f"e{number}", "source": "test", "type": "unit.processed", "time": time,
            "data": {"customer": customer, "site": site, "category": category, "quantity": quantity}}


def write_events(path: Path, rows) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@pytest.fixture
def contract_file(tmp_path) -> Path:
    path = tmp_path / "t.pricing"
    path.write_text(CONTRACT)
    return path


def rejected_lines(stderr: str, name: str) -> dict[int, str]:
    """`name:LINE: …` lines of standard error, by line number."""
    found = {}
    for text in stderr.splitlines():
        match = re.match(rf"^(?:.*/)?{re.escape(name)}:(\d+):\s*(.+)$", text)
        if match:
            found[int(match[1])] = match[2]
    return found


# --- the worked examples ------------------------------------------------------------------


def test_compare_invoices_tool_passes_on_every_worked_example(billing_exe):
    result = subprocess.run([sys.executable, str(COMPARE_TOOL), billing_exe, "."], cwd=EXAMPLES,
                            capture_output=True, text=True, timeout=600)
    assert "Traceback" not in result.stderr
    assert result.returncode == 0, result.stdout + result.stderr


def _example_periods():
    for case in sorted(p for p in EXAMPLES.iterdir() if (p / "args.json").exists()):
        for period in json.loads((case / "args.json").read_text())["periods"]:
            yield pytest.param(case, period, id=f"{case.name}-{period}")


@pytest.mark.parametrize("case, period", list(_example_periods()))
def test_example_invoice_matches_expected_totals_field_by_field(billing, case, period):
    args = json.loads((case / "args.json").read_text())
    command = ["invoice", "--events", args["events"], "--period", period, "--format", "json"]
    for contract in args["contracts"]:
        command += ["--contract", contract]
    result = billing(*command, cwd=case)
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout)
    expected = json.loads((case / f"expected-{period}.json").read_text())
    for field in ("usage", "minimum", "cap", "total"):
        assert got["totals"][field] == expected["totals"][field], field
    for field in ("contract", "customer", "currency", "period", "period_start", "period_end", "contract_year_start"):
        if field in expected:
            assert got[field] == expected[field], field
    assert [(s["site"], s["total"]) for s in got["sites"]] == [(s["site"], s["total"]) for s in expected["sites"]]


# --- billing check ------------------------------------------------------------------------


def test_check_prints_ok_for_a_good_contract(billing, contract_file):
    result = billing("check", contract_file)
    assert result.returncode == 0
    assert result.stdout.strip().splitlines() == [f"{contract_file}: ok"]


def test_check_prints_each_error_like_a_compiler_and_exits_1(billing, tmp_path):
    bad = tmp_path / "bad.pricing"
    bad.write_text(CONTRACT.replace("starts 2026-01-01", "starts 2026-01-15").replace("rate 2.00", "rate -2.00"))
    result = billing("check", bad)
    assert result.returncode == 1
    output = (result.stdout + result.stderr).strip().splitlines()
    errors = [line for line in output if re.match(rf"^{re.escape(str(bad))}:\d+:\d+: error: .+", line)]
    assert [line.split(":")[1:3] for line in errors] == [["4", "12"], ["6", "25"]]
    assert f"{bad}: ok" not in output


def test_check_prints_warnings_and_still_ok(billing, tmp_path):
    warned = tmp_path / "warned.pricing"
    warned.write_text(CONTRACT.replace("site \"s1\" \"Site one\" {", "site \"s1\" \"Site one\" {\n        disable b"))
    result = billing("check", warned)
    assert result.returncode == 0
    lines = result.stdout.strip().splitlines()
    assert any(re.match(rf"^{re.escape(str(warned))}:6:14: warning: .+", line) for line in lines), lines
    assert lines[-1] == f"{warned}: ok"


def test_check_reports_every_file_and_fails_if_any_fails(billing, tmp_path, contract_file):
    bad = tmp_path / "bad.pricing"
    bad.write_text(CONTRACT.replace("currency GBP", "currency QQQ"))
    result = billing("check", contract_file, bad)
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert f"{contract_file}: ok" in output
    assert re.search(rf"^{re.escape(str(bad))}:3:14: error: .*QQQ", output, re.M)


def test_check_of_a_missing_file_exits_2(billing, tmp_path):
    result = billing("check", tmp_path / "missing.pricing")
    assert result.returncode == 2
    assert "missing.pricing" in result.stderr


def test_check_of_a_syntax_error_names_the_place(billing, tmp_path):
    bad = tmp_path / "bad.pricing"
    bad.write_text(CONTRACT.replace("    category a", "    categroy a"))
    result = billing("check", bad)
    assert result.returncode == 1
    assert re.search(rf"^{re.escape(str(bad))}:5:\d+: error: .*categroy", result.stdout + result.stderr, re.M)


# --- billing plan -------------------------------------------------------------------------

PHASES = ["meter", "rate", "minimum", "cap", "total"]

PLAN_CONTRACT = """\
contract "p" {
    customer "P"
    currency GBP
    starts 2026-01-01
    category a "A" rate 1.00
    category b "B" rate 2.00
    defaults {
        minimum 100.00 monthly on a
        disable b
    }
    site "s1" {
        cap 5_000.00 yearly on all
        active from 2026-02-01
    }
    site "s2" {
        enable b
    }
}
"""


@pytest.fixture
def plan_file(tmp_path) -> Path:
    path = tmp_path / "p.pricing"
    path.write_text(PLAN_CONTRACT)
    return path


def test_plan_json_lists_phases_in_order_and_every_step_says_what_it_reads_and_writes(billing, plan_file):
    result = billing("plan", plan_file, "--format", "json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["phases"] == PHASES
    assert [s["site"] for s in plan["sites"]] == ["s1", "s2"]
    for site in plan["sites"]:
        phases = [step["phase"] for step in site["steps"]]
        assert phases == sorted(phases, key=PHASES.index), phases
        assert phases[0] == "meter" and phases[-1] == "total"
        for step in site["steps"]:
            assert step["phase"] in PHASES
            assert isinstance(step["reads"], list) and step["reads"]
            assert isinstance(step["writes"], list) and step["writes"]


def test_plan_json_has_each_rule_in_its_phase(billing, plan_file):
    plan = json.loads(billing("plan", plan_file, "--format", "json").stdout)
    s1 = {step["step"]: step["phase"] for step in plan["sites"][0]["steps"]}
    assert s1["spend_minimum"] == "minimum"
    assert s1["cap"] == "cap"
    assert s1["disable"] == "rate"
    assert s1["active_from"] == "meter"
    s2 = [step["step"] for step in plan["sites"][1]["steps"]]
    assert "disable" not in s2 and "cap" not in s2  # s2 re-enables b and has no cap


def test_plan_json_site_filter(billing, plan_file):
    plan = json.loads(billing("plan", plan_file, "--format", "json", "--site", "s2").stdout)
    assert [s["site"] for s in plan["sites"]] == ["s2"]


def test_plan_of_an_unknown_site_exits_2(billing, plan_file):
    result = billing("plan", plan_file, "--site", "nope")
    assert result.returncode == 2
    assert "nope" in result.stderr


def test_plan_text_shows_the_phases_in_order_per_site(billing, plan_file):
    result = billing("plan", plan_file)
    assert result.returncode == 0
    text = result.stdout
    for site in ("s1", "s2"):
        block = text[text.index(f"site {site}"):]
        block = block.split("\nsite ", 1)[0]
        positions = [block.index(f"  {phase}\n") for phase in PHASES if f"  {phase}\n" in block]
        assert positions == sorted(positions)
        assert "reads" in block and "writes" in block
    s1 = text[text.index("site s1"):text.index("site s2")]
    assert all(f"  {phase}\n" in s1 for phase in PHASES)


def test_plan_of_a_contract_with_errors_exits_1(billing, tmp_path):
    bad = tmp_path / "bad.pricing"
    bad.write_text(PLAN_CONTRACT.replace("currency GBP", "currency QQQ"))
    result = billing("plan", bad)
    assert result.returncode == 1
    assert re.search(r"bad\.pricing:3:14: error:", result.stderr)


# --- billing invoice: good input -------------------------------------------------------------


def test_invoice_from_jsonl(billing, tmp_path, contract_file):
    events = write_events(tmp_path / "ev.jsonl", [event(1, quantity=300), event(2, category="b", quantity="10.5")])
    result = billing("invoice", "--contract", contract_file, "--events", events, "--period", "2026-01")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    # 300 × 1.00 + 10.5 × 2.00 = 321.00
    assert doc["totals"] == {"usage": "321.00", "minimum": "0.00", "cap": "0.00", "total": "321.00"}
    assert (doc["contract"], doc["customer"], doc["currency"], doc["period"]) == ("t", "T Ltd", "GBP", "2026-01")
    assert doc["unbilled"] == []


def test_invoice_text_format(billing, tmp_path, contract_file):
    events = write_events(tmp_path / "ev.jsonl", [event(1, quantity=300)])
    result = billing("invoice", "--contract", contract_file, "--events", events, "--period", "2026-01",
                     "--format", "text")
    assert result.returncode == 0, result.stderr
    assert "300.00" in result.stdout and "s1" in result.stdout


def test_invoice_to_an_output_file(billing, tmp_path, contract_file):
    events = write_events(tmp_path / "ev.jsonl", [event(1, quantity=3)])
    out = tmp_path / "invoice.json"
    result = billing("invoice", "--contract", contract_file, "--events", events, "--period", "2026-01",
                     "--output", out)
    assert result.returncode == 0, result.stderr
    assert json.loads(out.read_text())["totals"]["total"] == "3.00"


def test_invoice_from_csv(billing, tmp_path, contract_file):
    csv = tmp_path / "ev.csv"
    csv.write_text(
        "id,source,type,time,customer,site,category,quantity\n"
        "e1,test,unit.processed,2026-01-05T10:00:00Z,t,s1,a,4\n"
        "e2,test,unit.processed,2026-01-06T10:00:00+01:00,t,s1,b,1.5\n"
        "e3,test,unit.processed,2026-01-07T10:00:00Z,t,s1,a,\n"
    )
    result = billing("invoice", "--contract", contract_file, "--events", csv, "--period", "2026-01")
    assert result.returncode == 0, result.stderr
    # a: 4 + 1 (empty quantity defaults to 1) = 5 × 1.00 = 5.00; b: 1.5 × 2.00 = 3.00; total 8.00
    assert json.loads(result.stdout)["totals"]["total"] == "8.00"


def test_invoice_from_csv_with_bad_rows(billing, tmp_path, contract_file):
    csv = tmp_path / "ev.csv"
    csv.write_text(
        "id,source,type,time,customer,site,category,quantity\n"
        "e1,test,unit.processed,2026-01-05T10:00:00Z,t,s1,a,4\n"
        "e2,test,unit.processed,2026-01-05T10:00:00,t,s1,a,4\n"       # no offset
        "e3,test,unit.processed,2026-01-05T10:00:00Z,t,s1,a,-1\n"     # negative
        "e4,test,unit.processed,2026-01-05T10:00:00Z,t,s1\n"          # too few columns
        "e5,test,unit.processed,2026-01-05T10:00:00Z,t,s1,a,lots\n"   # not a number
        "e6,test,unit.processed,2026-01-05T10:00:00Z,t,s1,a,2\n"
    )
    result = billing("invoice", "--contract", contract_file, "--events", csv, "--period", "2026-01")
    assert result.returncode == 1
    # good rows 2 and 7: 4 + 2 = 6 × 1.00
    assert json.loads(result.stdout)["totals"]["total"] == "6.00"
    assert sorted(rejected_lines(result.stderr, "ev.csv")) == [3, 4, 5, 6]


def test_a_period_outside_the_contract_exits_1(billing, tmp_path, contract_file):
    events = write_events(tmp_path / "ev.jsonl", [event(1)])
    result = billing("invoice", "--contract", contract_file, "--events", events, "--period", "2025-12")
    assert result.returncode == 1
    assert "2025-12" in result.stderr
    assert result.stdout == ""


def test_a_period_after_the_contract_ends_exits_1(billing, tmp_path):
    ended = tmp_path / "ended.pricing"
    ended.write_text(CONTRACT.replace("starts 2026-01-01", "starts 2026-01-01\n    ends 2026-03-31"))
    events = write_events(tmp_path / "ev.jsonl", [event(1)])
    result = billing("invoice", "--contract", ended, "--events", events, "--period", "2026-04")
    assert result.returncode == 1


def test_a_contract_with_errors_gives_no_invoice_and_exits_1(billing, tmp_path):
    bad = tmp_path / "bad.pricing"
    bad.write_text(CONTRACT.replace("rate 1.00", "rate -1.00"))
    events = write_events(tmp_path / "ev.jsonl", [event(1)])
    result = billing("invoice", "--contract", bad, "--events", events, "--period", "2026-01")
    assert result.returncode == 1
    assert re.search(r"bad\.pricing:5:25: error:", result.stderr)
    assert result.stdout == ""


def test_unbillable_events_are_listed_not_errors(billing, tmp_path, contract_file):
    events = write_events(tmp_path / "ev.jsonl", [event(1, site="nowhere"), event(2, category="zzz"),
                                                  event(3, customer="someone-else")])
    result = billing("invoice", "--contract", contract_file, "--events", events, "--period", "2026-01")
    assert result.returncode == 0
    unbilled = {u["reason"]: u["events"] for u in json.loads(result.stdout)["unbilled"]}
    assert unbilled == {"unknown site": 1, "unknown category": 1}


# --- billing invoice: malformed event lines --------------------------------------------------

BAD_LINES = {
    "malformed JSON": '{"specversion": "1.0", "id": "x1",',
    "missing field": json.dumps({k: v for k, v in event(91).items() if k != "source"}),
    "missing data field": json.dumps({**event(92), "data": {"customer": "t", "category": "a", "quantity": 1}}),
    "timestamp without offset": json.dumps(event(93, time="2026-01-05T10:00:00")),
    "negative quantity": json.dumps(event(94, quantity=-3)),
    "non-numeric quantity": json.dumps(event(95, quantity="three")),
    "not an object": "[1, 2, 3]",
}


@pytest.mark.parametrize("kind", BAD_LINES)
def test_a_malformed_line_is_reported_and_the_rest_still_billed(billing, tmp_path, contract_file, kind):
    events = write_events(tmp_path / "ev.jsonl", [event(1, quantity=5), BAD_LINES[kind], event(2, quantity=7)])
    result = billing("invoice", "--contract", contract_file, "--events", events, "--period", "2026-01")
    assert result.returncode == 1
    # the invoice is still printed from lines 1 and 3: 5 + 7 = 12 × 1.00
    assert json.loads(result.stdout)["totals"]["total"] == "12.00"
    reported = rejected_lines(result.stderr, "ev.jsonl")
    assert list(reported) == [2], result.stderr
    assert len(reported[2].split()) >= 3  # a reason, not just a code


def test_each_malformed_line_gets_one_stderr_line_with_its_reason(billing, tmp_path, contract_file):
    rows = [event(1, quantity=5), *BAD_LINES.values(), event(2, quantity=7)]
    events = write_events(tmp_path / "ev.jsonl", rows)
    result = billing("invoice", "--contract", contract_file, "--events", events, "--period", "2026-01")
    assert result.returncode == 1
    assert json.loads(result.stdout)["totals"]["total"] == "12.00"
    reported = rejected_lines(result.stderr, "ev.jsonl")
    assert sorted(reported) == list(range(2, 2 + len(BAD_LINES)))
    per_line = [l for l in result.stderr.splitlines() if re.search(r"ev\.jsonl:\d+:", l)]
    assert len(per_line) == len(BAD_LINES)
    assert "time" in reported[5].lower() or "timestamp" in reported[5].lower()
    assert "quantity" in reported[6].lower() and "quantity" in reported[7].lower()
    assert "source" in reported[3]
    assert "site" in reported[4]


def test_a_malformed_line_with_output_file_still_writes_the_invoice(billing, tmp_path, contract_file):
    events = write_events(tmp_path / "ev.jsonl", [event(1, quantity=5), "not json"])
    out = tmp_path / "inv.json"
    result = billing("invoice", "--contract", contract_file, "--events", events, "--period", "2026-01",
                     "--output", out)
    assert result.returncode == 1
    assert json.loads(out.read_text())["totals"]["total"] == "5.00"


# --- billing invoice: misuse (exit 2) ---------------------------------------------------------


def test_an_unreadable_events_file_exits_2(billing, tmp_path, contract_file):
    result = billing("invoice", "--contract", contract_file, "--events", tmp_path / "none.jsonl", "--period", "2026-01")
    assert result.returncode == 2
    assert "none.jsonl" in result.stderr


def test_an_events_path_that_is_a_directory_exits_2(billing, tmp_path, contract_file):
    result = billing("invoice", "--contract", contract_file, "--events", tmp_path, "--period", "2026-01")
    assert result.returncode == 2


def test_an_unreadable_contract_exits_2(billing, tmp_path):
    events = write_events(tmp_path / "ev.jsonl", [event(1)])
    result = billing("invoice", "--contract", tmp_path / "none.pricing", "--events", events, "--period", "2026-01")
    assert result.returncode == 2
    assert "none.pricing" in result.stderr


@pytest.mark.parametrize("period", ["2026-13", "2026-1", "May", "2026/01", "2026-00"])
def test_a_bad_period_exits_2(billing, tmp_path, contract_file, period):
    events = write_events(tmp_path / "ev.jsonl", [event(1)])
    result = billing("invoice", "--contract", contract_file, "--events", events, "--period", period)
    assert result.returncode == 2
    assert period in result.stderr


def test_an_output_path_that_cannot_be_written_exits_2(billing, tmp_path, contract_file):
    events = write_events(tmp_path / "ev.jsonl", [event(1)])
    out = tmp_path / "no" / "such" / "dir" / "inv.json"
    result = billing("invoice", "--contract", contract_file, "--events", events, "--period", "2026-01",
                     "--output", out)
    assert result.returncode == 2
    assert "inv.json" in result.stderr


def test_a_missing_required_option_exits_2(billing, contract_file):
    result = billing("invoice", "--contract", contract_file, "--period", "2026-01")
    assert result.returncode == 2


def test_an_unknown_command_exits_2(billing):
    assert billing("frobnicate").returncode == 2


# --- amendments: --contract FILE@YYYY-MM --------------------------------------------------------


def test_an_amendment_must_be_the_same_contract(billing, tmp_path, contract_file):
    other = tmp_path / "other.pricing"
    other.write_text(CONTRACT.replace('contract "t"', 'contract "other"'))
    events = write_events(tmp_path / "ev.jsonl", [event(1)])
    result = billing("invoice", "--contract", contract_file, "--contract", f"{other}@2026-02",
                     "--events", events, "--period", "2026-02")
    assert result.returncode == 1
    assert "other" in result.stderr


def test_an_amendment_must_keep_starts(billing, tmp_path, contract_file):
    moved = tmp_path / "moved.pricing"
    moved.write_text(CONTRACT.replace("starts 2026-01-01", "starts 2026-02-01"))
    events = write_events(tmp_path / "ev.jsonl", [event(1)])
    result = billing("invoice", "--contract", contract_file, "--contract", f"{moved}@2026-03",
                     "--events", events, "--period", "2026-03")
    assert result.returncode == 1


def test_an_amendment_with_a_bad_period_exits_2(billing, tmp_path, contract_file):
    events = write_events(tmp_path / "ev.jsonl", [event(1)])
    result = billing("invoice", "--contract", contract_file, "--contract", f"{contract_file}@2026-13",
                     "--events", events, "--period", "2026-02")
    assert result.returncode == 2


def test_caps_carry_across_an_amendment(billing, tmp_path, contract_file):
    amended = tmp_path / "t-v2.pricing"
    amended.write_text(CONTRACT.replace("category a \"A\" rate 1.00", "category a \"A\" rate 2.00"))
    events = write_events(tmp_path / "ev.jsonl", [
        event(1, time="2026-01-10T10:00:00Z", quantity=800),
        event(2, time="2026-02-10T10:00:00Z", quantity=300),
    ])
    base = ["--contract", contract_file, "--contract", f"{amended}@2026-02", "--events", events]
    january = billing("invoice", *base, "--period", "2026-01")
    february = billing("invoice", *base, "--period", "2026-02")
    assert january.returncode == 0 and february.returncode == 0, february.stderr
    # January under v1: 800 × 1.00 = 800.00, counted 800
    assert json.loads(january.stdout)["totals"]["total"] == "800.00"
    # February under v2: 300 × 2.00 = 600.00; before 800 → reduction min(600, 800 + 600 − 1,000) = 400
    doc = json.loads(february.stdout)
    cap = [l for l in doc["sites"][0]["lines"] if l["kind"] == "cap"]
    assert [(c["counted_before"], c["amount"]) for c in cap] == [("800.00", "-400.00")]
    assert doc["totals"] == {"usage": "600.00", "minimum": "0.00", "cap": "-400.00", "total": "200.00"}
    assert doc["contract_version"] != json.loads(january.stdout)["contract_version"]


def test_an_amendment_order_on_the_command_line_does_not_matter(billing, tmp_path, contract_file):
    amended = tmp_path / "t-v2.pricing"
    amended.write_text(CONTRACT.replace("rate 1.00", "rate 2.00"))
    events = write_events(tmp_path / "ev.jsonl", [event(1, time="2026-02-10T10:00:00Z", quantity=3)])
    first = billing("invoice", "--contract", f"{amended}@2026-02", "--contract", contract_file,
                    "--events", events, "--period", "2026-02")
    assert first.returncode == 0, first.stderr
    # 3 × 2.00 = 6.00 under the amendment
    assert json.loads(first.stdout)["totals"]["total"] == "6.00"


def test_invoice_totals_are_consistent(billing, tmp_path, contract_file):
    events = write_events(tmp_path / "ev.jsonl", [event(1, quantity=900), event(2, category="b", quantity=100)])
    doc = json.loads(billing("invoice", "--contract", contract_file, "--events", events, "--period", "2026-01").stdout)
    # 900.00 + 200.00 = 1,100.00; cap 1,000.00 → −100.00; total 1,000.00
    assert doc["totals"] == {"usage": "1100.00", "minimum": "0.00", "cap": "-100.00", "total": "1000.00"}
    t = doc["totals"]
    assert Decimal(t["total"]) == sum(Decimal(s["total"]) for s in doc["sites"])


# --- events that must not crash the command --------------------------------------------------


def test_a_line_with_bytes_that_are_not_utf8_is_rejected_not_a_crash(billing, tmp_path, contract_file):
    path = tmp_path / "ev.jsonl"
    bad = json.dumps(event(9)).replace('"e9"', '"e\\u00e9"').encode().replace(b"\\u00e9", b"\xff")
    path.write_bytes(json.dumps(event(1, quantity=5)).encode() + b"\n" + bad + b"\n"
                     + json.dumps(event(2, quantity=7)).encode() + b"\n")
    result = billing("invoice", "--contract", contract_file, "--events", path, "--period", "2026-01")
    assert result.returncode == 1
    assert json.loads(result.stdout)["totals"]["total"] == "12.00"
    assert list(rejected_lines(result.stderr, "ev.jsonl")) == [2]


def test_a_byte_order_mark_on_a_jsonl_file_is_ignored_like_on_csv(billing, tmp_path, contract_file):
    path = tmp_path / "ev.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(event(1, quantity=5)).encode() + b"\n")
    result = billing("invoice", "--contract", contract_file, "--events", path, "--period", "2026-01")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["totals"]["total"] == "5.00"


def test_a_huge_quantity_is_billed_exactly_or_rejected_never_a_crash(billing, tmp_path, contract_file):
    events = write_events(tmp_path / "ev.jsonl", [event(1, quantity="1e30")])
    result = billing("invoice", "--contract", contract_file, "--events", events, "--period", "2026-01")
    assert result.returncode in (0, 1), result.stderr
    if result.returncode == 0:
        # 10^30 × 1.00, exactly
        assert json.loads(result.stdout)["totals"]["usage"] == "1" + "0" * 30 + ".00"
    else:
        assert list(rejected_lines(result.stderr, "ev.jsonl")) == [1]
