"""File mode and database mode print the same invoice for every worked example (interfaces §2).

The one difference the interface allows: exact duplicates are routine retries for a
system of record, so the database mode leaves them out of `unbilled`.
"""

from __future__ import annotations

import json

import pytest

from .conftest import EXAMPLES

CASES = [(case.name, period) for case in sorted(EXAMPLES.iterdir()) if (case / "args.json").exists()
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
    case = EXAMPLES / name
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
