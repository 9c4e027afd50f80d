"""A cap scope that returns within a contract year continues its earlier count (pricing-language §4.5), in
file mode with versions (`billing invoice --contract FILE@YYYY-MM`)."""

from __future__ import annotations

import json

from billing.cli import main

VERSION = """\
contract "t" {{
    customer "T Ltd"
    currency GBP
    starts 2026-01-01
    category a "A" rate 1.00
    category b "B" rate 2.00
    site "s1" {{
        cap 100.00 yearly on {scope}
    }}
}}
"""
EVENTS = [("2026-01-10", "a", 60), ("2026-02-10", "a", 30), ("2026-03-10", "a", 30), ("2026-03-11", "b", 10)]


def test_a_cap_scope_that_returns_continues_its_count(tmp_path, capsys):
    for name, scope in (("jan", "a, b"), ("feb", "a"), ("mar", "b, a")):
        (tmp_path / f"{name}.pricing").write_text(VERSION.format(scope=scope), encoding="utf-8")
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps({
        "specversion": "1.0", "id": f"e{n}", "source": "test", "type": "unit", "time": f"{day}T12:00:00Z",
        "data": {"customer": "t", "site": "s1", "category": category, "quantity": quantity}}) + "\n"
        for n, (day, category, quantity) in enumerate(EVENTS)), encoding="utf-8")
    status = main(["invoice", "--contract", str(tmp_path / "jan.pricing"),
                   "--contract", f"{tmp_path / 'feb.pricing'}@2026-02",
                   "--contract", f"{tmp_path / 'mar.pricing'}@2026-03",
                   "--events", str(events), "--period", "2026-03"])
    document = json.loads(capsys.readouterr().out)
    assert status == 0
    (site,) = document["sites"]
    (cap,) = [line for line in site["lines"] if line["kind"] == "cap"]
    # a, b counted 60.00 in January; February's cap on a alone counted apart; March: 30.00 + 20.00 in scope,
    # 60.00 + 50.00 − 100.00 = 10.00 over the cap
    assert (cap["counted_before"], cap["in_scope"], cap["amount"]) == ("60.00", "50.00", "-10.00")
    assert document["totals"]["total"] == "40.00"
