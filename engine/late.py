"""Late usage: what arrived after its period's invoice was issued, billed on the next open invoice.

The issued invoice never changes. The late usage of its period P is billed once,
on the next invoice of the contract that is not issued yet, as the difference it
makes to P: P is computed again under P's own contract version, from the cap
counts P started from, once with the usage P has billed so far and once with the
late usage added; every line that changes gives a line of the difference, marked
"late usage for P" (each line kind says how, engine/lines.py):

    Standard processing, late usage for 2026-05: 120 units             102.00
    minimum: late usage for 2026-05: true-up 0.00 instead of 102.00   -102.00

so graduated tiers continue where P stopped, a minimum already trued up is not
charged twice, and a cap already reached stays reached. Late events that P would
not have billed (site inactive, unknown category, …) and conflicts that arrived
after P was issued are listed under `unbilled` of the invoice that bills them,
marked with P. docs/late-events.md says why.

The engine computes all of it from what the ledger gathered (`LateUsage`); the
ledger only reads the rows and, when the invoice is issued, marks them billed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from engine.lines import kind_of
from engine.periods import Period
from engine.usage import Tally, UnbilledKey, Usage

ZERO = Decimal(0)


@dataclass(frozen=True)
class LateUsage:
    """An issued period's late usage billed now, with what that period had billed before it."""

    period: Period
    counts_before: dict[tuple[str, str], Decimal]   # the cap counts the period started from, as it froze them
    billed: Usage                                    # its rollups and the late usage billed before now
    added: Usage                                     # the late usage billed now
    conflicts: dict[UnbilledKey, Tally] = field(default_factory=dict)   # late conflicts reported now


@dataclass
class LateDifference:
    """What one late period adds to an invoice: lines per site, unbilled usage, and what its caps count more."""

    period: Period
    lines: dict[str, list] = field(default_factory=dict)            # site → lines of differences
    names: dict[str, str] = field(default_factory=dict)             # site → its name in `period`
    unbilled: dict[UnbilledKey, Tally] = field(default_factory=dict)
    cap_counts: dict[tuple[str, str], Decimal] = field(default_factory=dict)


def late_difference(before, after, late: LateUsage) -> LateDifference:
    """The difference between `before` and `after`, two results of `late.period` (engine.evaluate.PeriodResult)."""
    difference = LateDifference(late.period)
    for key, tally in late.conflicts.items():
        difference.unbilled.setdefault(key, Tally()).add(tally.quantity, tally.events)
    money = after.plan.terms.money
    old_sites = {site.site: site for site in before.sites}
    for site in after.sites:
        old_lines = {_key(line): line for line in old_sites[site.site].lines}
        lines = []
        for line in site.lines:
            lines += _difference(old_lines.pop(_key(line), None), line, late.period, money)
        for gone in old_lines.values():
            lines += _difference(gone, None, late.period, money)
        if lines:
            difference.lines[site.site] = lines
            difference.names[site.site] = site.name
    for key, tally in after.unbilled.items():
        was = before.unbilled.get(key, Tally())
        if tally.events != was.events:
            difference.unbilled.setdefault(key, Tally()).add(tally.quantity - was.quantity, tally.events - was.events)
    for key, counted in after.cap_counts.items():
        if counted != before.cap_counts.get(key, ZERO):
            difference.cap_counts[key] = counted - before.cap_counts.get(key, ZERO)
    return difference


def _key(line) -> tuple:
    return line.kind, kind_of(line).match_key(line)


def _difference(old, new, period: Period, money) -> list:
    """The lines that take `old` to `new` (either may be None), as their kind builds them; none when equal."""
    return kind_of(new or old).difference(old, new, period, money)
