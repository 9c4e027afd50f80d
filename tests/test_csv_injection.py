"""CSV formula injection (issue 13, item 2): text a spreadsheet would evaluate is written as text, from the
contract (site ids and names, category names) and from events (the unbilled rows' site and category); numbers,
negative ones included, stay numbers (invoicing/csv_view.py `spreadsheet_safe`)."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest

from dsl.compile import compile_source
from engine.evaluate import Timeline, bill
from engine.periods import Period
from engine.usage import Usage
from invoicing.csv_view import render_csv, spreadsheet_safe
from invoicing.invoice import build_invoice

HOSTILE = ["=HYPERLINK(\"http://x\")", "+SUM(A1)", "-2+3+cmd|' /C calc'!A0", "@SUM(A1)", "\tTAB", "\rCR"]
CONTRACT = """contract "hostile" {
    customer "Hostile plc"
    currency GBP
    starts 2026-01-01
    timezone "Europe/London"
    rounding half_up
    category std "=1+2" rate 1.00
    site "=cmd|'/C calc'!A0" "@SUM(1+1)*cmd" { }
    site "+s2" "-2+3" { }
}
"""


@pytest.mark.parametrize("value, written", [
    ("=1+2", "'=1+2"), ("+s2", "'+s2"), ("-2+3", "'-2+3"), ("@x", "'@x"), ("\tx", "'\tx"), ("\rx", "'\rx"),
    ("-12.50", "-12.50"), ("+5", "+5"), ("12", "12"), ("-1e5", "'-1e5"), ("lon-01", "lon-01"), (42, 42), ("", ""),
])
def test_a_cell_that_starts_a_formula_is_quoted_and_a_number_is_kept(value, written):
    assert spreadsheet_safe(value) == written


def test_no_cell_of_the_invoice_csv_starts_a_formula():
    compiled = compile_source(CONTRACT.encode(), "hostile.pricing")
    assert compiled.ok, compiled.diagnostics
    usage = Usage()
    usage.add(dt.date(2026, 5, 10), "=cmd|'/C calc'!A0", "std", Decimal("10"))
    usage.add(dt.date(2026, 5, 10), "+s2", "std", Decimal("3"))
    for text in HOSTILE:   # events for a site or category the contract does not have: not billed rows
        usage.add(dt.date(2026, 5, 11), text, text, Decimal("1"))
        usage.add(dt.date(2026, 5, 11), "+s2", text, Decimal("1"))
    invoice = build_invoice(bill(Timeline(((Period(2026, 1), compiled.plan),)), usage, Period(2026, 5)))
    rows = list(csv.DictReader(io.StringIO(render_csv(invoice))))
    cells = [cell for row in rows for column, cell in row.items() if column not in ("amount (GBP)", "quantity")]
    assert any(cell == "'=cmd|'/C calc'!A0" for cell in cells) and any(cell == "'@SUM(1+1)*cmd" for cell in cells)
    assert any(cell == "'=1+2" for cell in cells)
    assert sum(cell.startswith("'") for cell in cells) >= 2 * len(HOSTILE)
    assert not [cell for cell in cells if cell.startswith(("=", "+", "-", "@", "\t", "\r"))]
    assert all(row["amount (GBP)"] == "" or not row["amount (GBP)"].startswith("'") for row in rows)
