"""Late usage in the engine (engine/late.py, engine.evaluate.bill_invoice), without a database.

The database mode gathers an issued period's late usage and hands it to the
engine; these properties pin what the engine makes of it: the late lines of a
period P add up, site by site, to what the late usage changes in P's totals;
they are marked with P; and the next period's caps count from what P counts
with its late usage.
"""

from __future__ import annotations

from decimal import Decimal

from hypothesis import assume, given
from hypothesis import strategies as st

from engine.evaluate import BillingInputs, Carried, Timeline, bill, bill_invoice
from engine.late import LateUsage
from engine.periods import Period
from engine.usage import Usage
from invoicing.invoice import build_invoice, invoice_json
from test_properties import compile_model, fast, year_scenarios

ZERO = Decimal(0)


def usage_of(events) -> Usage:
    usage = Usage()
    for event in events:
        usage.add(event.day, event.site, event.category, event.quantity)
    return usage


def site_totals(result) -> dict[str, Decimal]:
    return {site.site: site.total for site in result.sites}


@fast(40)
@given(year_scenarios(max_events=30), st.data())
def test_late_lines_bill_exactly_what_the_late_usage_changes(scenario, data):
    model, periods, events = scenario
    assume(len(periods) >= 2)
    plan = compile_model(model)
    timeline = Timeline(((Period.of(plan.terms.starts), plan),))
    issued, current = periods[0], periods[1]
    in_issued = [e for e in events if Period.of(e.day) == issued]
    late_flags = data.draw(st.lists(st.booleans(), min_size=len(in_issued), max_size=len(in_issued)))
    on_time = [e for e, late in zip(in_issued, late_flags) if not late]
    late = [e for e, late in zip(in_issued, late_flags) if late]
    assume(late)
    in_current = [e for e in events if Period.of(e.day) == current]

    as_issued = bill(timeline, usage_of(on_time), issued)
    with_late = bill(timeline, usage_of(on_time + late), issued)
    inputs = BillingInputs(timeline, current, usage_of(in_current), Carried(issued, as_issued.cap_counts),
                           (LateUsage(issued, as_issued.cap_counts_before, usage_of(on_time), usage_of(late)),))
    result = bill_invoice(inputs)

    # Late lines, per site, are the change the late usage makes to the issued period's site totals.
    late_amounts: dict[str, Decimal] = {}
    for site in result.sites:
        assert site.total == sum((line.amount for line in site.lines), ZERO)
        for index, line in enumerate(site.lines):
            if site.late_period(index) is not None:
                assert site.late_period(index) == issued
                late_amounts[site.site] = late_amounts.get(site.site, ZERO) + line.amount
    before, after = site_totals(as_issued), site_totals(with_late)
    for site in set(before) | set(after):
        assert late_amounts.get(site, ZERO) == after.get(site, ZERO) - before.get(site, ZERO), site

    # The period's own lines are those it has when its caps count on from the issued period with its late usage.
    own = bill(timeline, usage_of(in_current), current, Carried(issued, with_late.cap_counts))
    mine = {site.site: tuple(line for i, line in enumerate(site.lines) if site.late_period(i) is None)
            for site in result.sites}
    assert {site.site: site.lines for site in own.sites} == {s: mine[s] for s in site_totals(own)}
    assert all(not lines for s, lines in mine.items() if s not in site_totals(own))   # only late lines there
    assert result.cap_counts == own.cap_counts

    # The JSON marks each late line, and only those, with the period it bills.
    document = invoice_json(build_invoice(result))
    for site, site_json in zip(result.sites, document["sites"]):
        for index, line_json in enumerate(site_json["lines"]):
            expected = site.late_period(index)
            assert line_json.get("late_for") == (str(expected) if expected else None)


@fast(25)
@given(year_scenarios(max_events=25))
def test_counts_before_are_what_the_caps_counted_when_the_period_began(scenario):
    model, periods, events = scenario
    plan = compile_model(model)
    timeline = Timeline(((Period.of(plan.terms.starts), plan),))
    usage = usage_of(events)
    for earlier, period in zip(periods, periods[1:]):
        assert bill(timeline, usage, period).cap_counts_before == bill(timeline, usage, earlier).cap_counts
    assert bill(timeline, usage, periods[0]).cap_counts_before == {}
