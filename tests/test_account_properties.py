"""Property-based tests of the account block (spec §4.9): generated contracts with an `account` block, billed
period by period over a contract year as `billing invoice` does in file mode. Every expectation is an invariant
of the rules, never the program's own output. Deterministic: hypothesis draws the same examples every run."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

try:
    import strategies as gen
    from test_properties import Run, billed_periods, without_event_counts
except ImportError:  # tests/ became a package
    from tests import strategies as gen
    from tests.test_properties import Run, billed_periods, without_event_counts

ZERO = Decimal(0)


def bounded(examples: int):
    return settings(max_examples=examples, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@st.composite
def account_years(draw, max_events: int = 25):
    """A contract with an account block, the billed periods of one of its contract years, events around them."""
    model = draw(gen.account_contracts())
    year = draw(st.sampled_from((0, 1)))
    periods = billed_periods(model, year) or billed_periods(model, 0)
    first = periods[0].first_day - dt.timedelta(days=10)
    last = periods[-1].last_day + dt.timedelta(days=10)
    return model, periods, draw(gen.events(model, first, last, max_size=max_events))


def _documents(model, periods, events) -> list[dict]:
    run = Run(model, events)
    return [run.invoice(period)[1] for period in periods]


def _lines(document: dict, kind: str) -> list[dict]:
    return [line for line in document["account"]["lines"] if line["kind"] == kind]


def _rule(model, word: str) -> str | None:
    return next((rule for rule in model.account if rule.startswith(word + " ")), None)


@bounded(25)
@given(account_years())
def test_the_invoice_total_is_the_site_totals_plus_the_account_lines(scenario):
    model, periods, events = scenario
    for document in _documents(model, periods, events):
        account = document["account"]
        sites = sum((Decimal(site["total"]) for site in document["sites"]), ZERO)
        assert Decimal(account["total"]) == sum((Decimal(line["amount"]) for line in account["lines"]), ZERO)
        assert Decimal(document["totals"]["account"]) == Decimal(account["total"])
        assert Decimal(document["totals"]["total"]) == sites + Decimal(account["total"])
        kinds = [line["kind"] for line in account["lines"]]
        order = ["account_minimum", "account_cap", "commitment_fee", "commitment_drawdown", "commitment_true_up"]
        assert kinds == sorted(kinds, key=order.index)


@bounded(25)
@given(account_years())
def test_a_drawdown_never_exceeds_the_balance_and_the_balance_is_never_negative(scenario):
    model, periods, events = scenario
    commit = _rule(model, "commit")
    documents = _documents(model, periods, events)
    fees = [line for document in documents for line in _lines(document, "commitment_fee")]
    if commit is None or not commit.endswith("prepaid"):
        assert fees == [] and all(not _lines(d, "commitment_drawdown") for d in documents)
        return
    amount = Decimal(commit.split()[1])
    assert [Decimal(fee["amount"]) for fee in fees] == [amount] and _lines(documents[0], "commitment_fee") == fees
    balance = amount
    for document in documents:
        for line in _lines(document, "commitment_drawdown"):
            assert Decimal(line["balance_before"]) == balance
            assert ZERO <= -Decimal(line["amount"]) <= balance
            balance += Decimal(line["amount"])
            assert Decimal(line["balance_after"]) == balance >= 0
    last = _lines(documents[-1], "commitment_drawdown")
    assert len(last) == 1 and Decimal(last[0]["expiring"]) == balance


@bounded(25)
@given(account_years())
def test_the_account_cap_never_counts_more_than_its_limit_in_a_year(scenario):
    model, periods, events = scenario
    cap = _rule(model, "cap")
    counted = ZERO
    for document in _documents(model, periods, events):
        sites = sum((Decimal(site["total"]) for site in document["sites"]), ZERO)
        minimum = sum((Decimal(line["amount"]) for line in _lines(document, "account_minimum")), ZERO)
        reduction = sum((Decimal(line["amount"]) for line in _lines(document, "account_cap")), ZERO)
        counted += sites + minimum + reduction
        if cap is None:
            assert reduction == 0
        else:
            assert counted <= Decimal(cap.split()[1])


@bounded(20)
@given(account_years(max_events=20), st.data())
def test_reordering_or_splitting_events_changes_no_account_line(scenario, data):
    model, periods, events = scenario
    period = data.draw(st.sampled_from(periods))
    shuffled = data.draw(st.permutations(events))
    split = [piece for event in shuffled for piece in _halves(event)]
    documents = [Run(model, usage).invoice(period)[1] for usage in (events, shuffled, split)]
    assert documents[0] == documents[1]
    assert without_event_counts(documents[2]) == without_event_counts(documents[0])


def _halves(event: gen.GenEvent) -> list[gen.GenEvent]:
    """The event as two events that share its quantity, each with its decimal places (as in test_properties)."""
    exponent = event.quantity.as_tuple().exponent
    units = int(event.quantity.scaleb(-exponent))
    half = Decimal(units // 2).scaleb(exponent)
    return [gen.GenEvent(f"{event.id}-a", event.site, event.category, event.local, half, event.customer),
            gen.GenEvent(f"{event.id}-b", event.site, event.category, event.local, event.quantity - half,
                         event.customer)]
