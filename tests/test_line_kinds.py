"""The registry of line kinds (engine/lines.py): every kind declared completely, and no kind guessed.

Each registered kind is tried on the lines the worked examples really produce (tests/fixtures/examples, and
tests/fixtures/examples-account for the account section's kinds): its
JSON goes there and back, its row carries the line's amount, a late difference of a line against itself is
nothing, and the lines of a correct invoice break none of its invariants. A kind nobody registered stops every
renderer with an error that names it.
"""

from __future__ import annotations

import dataclasses
import json
from decimal import Decimal
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from billing.contracts import build_timeline, compile_versions, parse_version_spec
from dsl.compile import compile_file
from engine.evaluate import SiteResult, Timeline, bill
from engine.lines import (CapLine, LineKind, Row, UnknownLineKind, UsageLine, kind_of, line_kind, line_kinds,
                          register_kind, totals_titles)
from engine.periods import Period
from invoicing.invoice import build_invoice, invoice_json
from invoicing.render import FORMATS, render_document
from invoicing.stored import invoice_from_document
from metering.aggregate import meter
from rules.registry import registry

EXAMPLES = Path(__file__).resolve().parent / "fixtures" / "examples"
ACCOUNT_EXAMPLES = Path(__file__).resolve().parent / "fixtures" / "examples-account"
PERIODS = {"acme-health": ("2026-05", "2026-06", "2026-07"),
           "northwind-cap": ("2026-03", "2026-04", "2026-05", "2027-01", "2027-02")}
ACCOUNT_PERIODS = {"globex-account": ("2026-01", "2026-05", "2026-06", "2026-12"),
                   "initech-commit": ("2027-02",)}


@cache
def _invoice(name: str, period: str):
    plan = compile_file(str(EXAMPLES / name / "contract.pricing")).plan
    terms = plan.terms
    until = Period.parse(period)
    metered = meter([str(EXAMPLES / name / "events.jsonl")], terms.contract_id, ZoneInfo(terms.timezone),
                    lambda rejection: None, until=until)
    result = bill(Timeline(((Period.of(terms.starts), plan),)), metered.usage, until)
    return build_invoice(result, metered.unbilled.period(until))


@cache
def _account_invoice(name: str, period: str):
    """The invoice of an account example, with its versions (args.json) as the file mode puts them together."""
    case = ACCOUNT_EXAMPLES / name
    args = json.loads((case / "args.json").read_text())
    specs = [parse_version_spec(str(case / spec)) for spec in args["contracts"]]
    timeline = build_timeline(compile_versions(specs))
    terms = timeline.first.terms
    until = Period.parse(period)
    metered = meter([str(case / args["events"])], terms.contract_id, ZoneInfo(terms.timezone),
                    lambda rejection: None, until=until)
    return build_invoice(bill(timeline, metered.usage, until), metered.unbilled.period(until))


def _examples(kind: LineKind) -> list:
    """(money, line) for each line of `kind` on the worked examples' invoices."""
    invoices = [_invoice(name, period) for name, periods in PERIODS.items() for period in periods]
    invoices += [_account_invoice(name, period) for name, periods in ACCOUNT_PERIODS.items() for period in periods]
    return [(invoice.money, line) for invoice in invoices for line in invoice.lines() if line.kind == kind.name]


@pytest.mark.parametrize("kind", line_kinds(), ids=lambda kind: kind.name)
def test_a_kind_is_declared_completely(kind):
    assert kind.name and kind.title and kind.plural and kind.line.kind == kind.name
    assert kind.totals_key in totals_titles() and kind.totals_key != "total"
    for hook in ("to_json", "from_json", "row", "match_key", "difference", "invariants"):
        assert callable(getattr(kind, hook)), hook
    assert line_kind(kind.name) is kind


@pytest.mark.parametrize("kind", line_kinds(), ids=lambda kind: kind.name)
def test_a_kind_round_trips_on_the_lines_of_the_examples(kind):
    examples = _examples(kind)
    assert examples, f"no worked example has a {kind.name} line: add one to tests/fixtures/examples"
    for money, line in examples:
        data = {"kind": kind.name, **kind.to_json(line, money)}
        again = kind.from_json(data)
        assert kind_of(again) is kind
        assert kind.to_json(again, money) == kind.to_json(line, money)
        assert kind.row(again, money) == kind.row(line, money)
        assert kind.match_key(again) == kind.match_key(line)


@pytest.mark.parametrize("kind", line_kinds(), ids=lambda kind: kind.name)
def test_a_kinds_row_late_difference_and_invariants_agree_with_its_lines(kind):
    for money, line in _examples(kind):
        row = kind.row(line, money)
        assert isinstance(row, Row) and row.amount == line.amount and row.title
        assert kind.difference(line, line, Period(2026, 5), money) == []
        added = kind.difference(None, line, Period(2026, 5), money)
        assert sum(new.amount for new in added) == line.amount and all(kind_of(new) is kind for new in added)
        assert sum(gone.amount for gone in kind.difference(line, None, Period(2026, 5), money)) == -line.amount
        assert list(kind.invariants(line)) == []


def test_the_invariants_catch_a_negative_true_up_and_a_cap_beyond_its_scope():
    money, minimum = _examples(line_kind("minimum"))[0]
    broken = list(line_kind("minimum").invariants(dataclasses.replace(minimum, amount=Decimal("-1.00"))))
    assert [(b.rule, b.expected, b.found) for b in broken] == [("no negative true-up", 0, Decimal("-1.00"))]
    money, cap = _examples(line_kind("cap"))[0]
    too_much = dataclasses.replace(cap, amount=-cap.in_scope - 1)
    assert [b.rule for b in line_kind("cap").invariants(too_much)] == ["a cap reduces no more than its scope"]


def test_registering_refuses_a_name_twice_a_line_of_another_kind_and_the_total():
    usage = line_kind("usage")
    with pytest.raises(ValueError, match="'usage' is registered already"):
        register_kind(usage)
    with pytest.raises(ValueError, match="must be 'rebate'"):
        register_kind(dataclasses.replace(usage, name="rebate"))
    assert "rebate" not in {kind.name for kind in line_kinds()}
    with pytest.raises(ValueError, match="`total`"):
        register_kind(dataclasses.replace(usage, name="rebate", line=_Rebate, totals_key="total"))
    with pytest.raises(UnknownLineKind):
        line_kind("rebate")


def test_the_throwaway_kind_of_test_new_line_kind_is_left_behind_nowhere():
    with pytest.raises(UnknownLineKind):
        line_kind("discount")
    assert "discount" not in registry() and "discount" not in totals_titles()


# --- a kind nobody registered ---------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _Rebate:
    amount: Decimal
    source: None = None
    kind = "rebate"


@pytest.fixture(scope="module")
def with_rebate():
    """The June invoice of acme-health with a line of the unregistered kind `rebate` added to its first site."""
    invoice = _invoice("acme-health", "2026-06")
    first = invoice.sites[0]
    rebate = _Rebate(Decimal("-5.00"))
    site = SiteResult(first.site, first.name, first.lines + (rebate,), first.total + rebate.amount)
    return dataclasses.replace(invoice, sites=(site, *invoice.sites[1:]))


@pytest.mark.parametrize("format", FORMATS)
def test_an_unknown_kind_stops_every_renderer_naming_it(with_rebate, format):
    with pytest.raises(UnknownLineKind, match="no line kind 'rebate' is registered"):
        render_document(with_rebate, format)


def test_an_unknown_kind_stops_the_totals_and_a_stored_invoice_read_back(with_rebate):
    with pytest.raises(UnknownLineKind, match="'rebate'"):
        _ = with_rebate.totals
    document = invoice_json(_invoice("acme-health", "2026-06"))
    document["sites"][0]["lines"].append({"kind": "rebate", "amount": "-5.00"})
    with pytest.raises(UnknownLineKind, match="'rebate'"):
        invoice_from_document(document, timezone="Europe/London")


def test_an_object_that_is_no_line_is_named_by_its_type():
    with pytest.raises(UnknownLineKind, match="'dict'"):
        kind_of({"amount": Decimal(1)})
    assert isinstance(UsageLine.kind, str) and isinstance(CapLine.kind, str)
