"""The evaluation plan: the one place where the composition order of rules lives.

A plan is, per site, a tuple of steps ordered by phase. The phases and their
order are fixed here (spec §4.6); every step says which lines it reads and
writes, so `billing plan` can print exactly what the evaluator will do.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable

from engine.money import Money


class Phase(str, Enum):
    METER = "meter"      # classify events and sum quantities per category
    RATE = "rate"        # one priced usage line per category with usage
    MINIMUM = "minimum"  # true-ups, from the rounded usage lines
    CAP = "cap"          # reductions, from the lines above, counted over the contract year
    TOTAL = "total"      # site total = sum of its lines
    ACCOUNT = "account"  # once per invoice, after every site: account minimum, account cap, commitment
    INVOICE_TOTAL = "invoice total"   # the site totals plus the account lines


PHASES: tuple[Phase, ...] = tuple(Phase)
SITE_PHASES: tuple[Phase, ...] = PHASES[: PHASES.index(Phase.TOTAL) + 1]     # what each site runs
ACCOUNT_PHASES: tuple[Phase, ...] = PHASES[PHASES.index(Phase.ACCOUNT):]     # what the invoice runs after them


@dataclass(frozen=True)
class Source:
    """The contract text behind a step or a line, so a reader can ask why it is there."""

    line: int
    column: int
    text: str
    block: str  # "category review", "defaults", "site lon-01", "contract"

    def as_dict(self) -> dict:
        return {"line": self.line, "column": self.column, "block": self.block, "text": self.text}


@dataclass(frozen=True)
class Step:
    phase: Phase
    primitive: str          # the registry name of what runs it
    summary: str            # what it does, in words a finance reader follows
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    params: Any             # the primitive's own parameters (a frozen dataclass)
    source: Source | None = None
    stage: int = 0          # order inside the phase, set by the primitive
    # What the evaluator calls: run(step, worksheet). The compiler attaches the primitive's runner,
    # so a compiled plan runs without the parser or the registry.
    run: Callable[["Step", Any], None] | None = field(default=None, compare=False, repr=False)

    def as_dict(self) -> dict:
        params = self.params.as_dict() if hasattr(self.params, "as_dict") else {}
        return {
            "phase": self.phase.value,
            "step": self.primitive,
            "summary": self.summary,
            "reads": list(self.reads),
            "writes": list(self.writes),
            "params": params,
            "source": self.source.as_dict() if self.source else None,
        }


@dataclass(frozen=True)
class Terms:
    """What holds for the whole contract version."""

    contract_id: str
    customer: str
    money: Money
    starts: dt.date
    ends: dt.date | None
    timezone: str
    categories: tuple[tuple[str, str], ...]  # (id, label), in declaration order
    version: str                              # sha256 of the contract text

    @property
    def category_ids(self) -> tuple[str, ...]:
        return tuple(c for c, _ in self.categories)

    def kept(self) -> dict[str, object]:
        """What every version of one contract keeps: contract years, local days and the money caps count run
        across versions (evaluate.Timeline)."""
        return {"starts": self.starts, "timezone": self.timezone, "currency": self.money.currency}

    def changed_from(self, kept: dict[str, object]) -> list[tuple[str, object, object]]:
        """(term, the contract's value, this version's value) for each kept term this version would change."""
        return [(term, kept[term], mine) for term, mine in self.kept().items() if kept[term] != mine]


@dataclass(frozen=True)
class SitePlan:
    site: str
    name: str
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class Plan:
    terms: Terms
    steps: tuple[Step, ...]          # contract-wide: the meter's classification of events
    sites: tuple[SitePlan, ...]
    account: tuple[Step, ...] | None = None   # the `account` block's steps and the invoice total; None without one
    site_index: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self):
        self.site_index.update({s.site: s for s in self.sites})

    def site(self, site_id: str) -> SitePlan | None:
        return self.site_index.get(site_id)

    def account_step(self, primitive: str) -> Step | None:
        """The account block's step of that primitive (`commitment`, …), if it has one."""
        return next((step for step in self.account or () if step.primitive == primitive), None)


def order_steps(steps) -> tuple[Step, ...]:
    """Phase order first, then each primitive's stage; the written order only breaks ties."""
    indexed = list(enumerate(steps))
    indexed.sort(key=lambda pair: (PHASES.index(pair[1].phase), pair[1].stage, pair[0]))
    return tuple(step for _, step in indexed)
