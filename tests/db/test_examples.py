"""File mode and database mode print the same invoice for every worked example (interfaces §2), those of the
account block (tests/fixtures/examples-account) included.

The one difference the interface allows: exact duplicates are routine retries for a
system of record, so the database mode leaves them out of `unbilled`.
"""

from __future__ import annotations

import json

import pytest

from .conftest import EXAMPLES

FOLDERS = {case.name: case for examples in (EXAMPLES, EXAMPLES.with_name("examples-account"))
           for case in sorted(examples.iterdir()) if (case / "args.json").exists()}
CASES = [(name, period) for name, case in FOLDERS.items()
         for period in json.loads((case / "args.json").read_text())["periods"]]


def _file_mode_without_duplicates(cli, case, args, period) -> dict:
    contracts = [part for spec in args["contracts"] for part in ("--contract", case / spec)]
    status, out, err = cli("invoice", *contracts, "--events", case / args["events"], "--period", period)
    assert status == 0, err
    invoice = json.loads(out)
    invoice["unbilled"] = [group for group in invoice["unbilled"] if group["reason"] != "duplicate"]
    return invoice


@pytest.mark.parametrize("name", sorted({name for name, _ in CASES}))
def test_database_mode_prints_the_file_mode_invoice(cli, name):
    case = FOLDERS[name]
    args = json.loads((case / "args.json").read_text())
    assert cli("db", "upgrade")[0] == 0
    for spec in args["contracts"]:
        path, _, effective = spec.partition("@")
        status, out, err = cli("contract", "save", case / path, *(["--effective", effective] if effective else []))
        assert status == 0, err
    status, out, err = cli("ingest", case / args["events"])
    assert status == 0, err
    for period in args["periods"]:
        expected = _file_mode_without_duplicates(cli, case, args, period)
        status, out, err = cli("invoice", "--customer", expected["contract"], "--period", period)
        assert status == 0, err
        assert json.loads(out) == expected, f"{name} {period}"


def test_amendments_saved_with_effective_bill_as_in_file_mode(cli, tmp_path):
    from .support import TINY, event, write_lines

    base = tmp_path / "tiny.pricing"
    base.write_text(TINY, encoding="utf-8")
    amended = tmp_path / "tiny-march.pricing"
    amended.write_text(TINY.replace("rate 1.00", "rate 1.25").replace("cap 500.00", "cap 400.00"), encoding="utf-8")
    events = write_lines(tmp_path / "events.jsonl", [
        event(n, f"2026-{1 + n % 4:02d}-{1 + n % 27:02d}T12:00:00Z", str(40 + n), site="s1" if n % 3 else "s2",
              category="review" if n % 4 == 0 else "standard") for n in range(40)
    ] + [event(3, "2026-04-04T12:00:00Z", "43", site="s2")])   # a duplicate of event 3
    assert cli("db", "upgrade")[0] == 0
    assert cli("contract", "save", base)[0] == 0
    status, out, err = cli("contract", "save", amended, "--effective", "2026-03")
    assert status == 0, err
    assert cli("ingest", events)[0] == 0
    for period in ("2026-01", "2026-02", "2026-03", "2026-04"):
        status, out, err = cli("invoice", "--contract", base, "--contract", f"{amended}@2026-03",
                               "--events", events, "--period", period)
        assert status == 0, err
        expected = json.loads(out)
        expected["unbilled"] = [group for group in expected["unbilled"] if group["reason"] != "duplicate"]
        status, out, err = cli("invoice", "--customer", "tiny", "--period", period)
        assert status == 0, err
        assert json.loads(out) == expected, period
