"""The steps every plan has whatever its rules: classify (contract-wide), meter and total (per site)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from engine.plan import Phase, Source, Step, Terms
from engine.usage import Tally

OUTSIDE_CONTRACT = "outside contract"
UNKNOWN_SITE = "unknown site"
UNKNOWN_CATEGORY = "unknown category"
SITE_INACTIVE = "site inactive"


@dataclass(frozen=True)
class ClassifyParams:
    starts: dt.date
    ends: dt.date | None
    categories: frozenset[str]

    def as_dict(self) -> dict:
        return {
            "starts": self.starts.isoformat(),
            "ends": self.ends.isoformat() if self.ends else None,
            "reasons_in_order": [OUTSIDE_CONTRACT, UNKNOWN_SITE, UNKNOWN_CATEGORY],
        }


def classify_step(terms: Terms, source: Source) -> Step:
    return Step(
        Phase.METER,
        "classify",
        "route each day's usage to its site; report usage outside the contract's dates, "
        "at an unknown site or of an unknown category",
        reads=("events",),
        writes=("site usage", "unbilled"),
        params=ClassifyParams(terms.starts, terms.ends, frozenset(terms.category_ids)),
        source=source,
        run=run_classify,
    )


def run_classify(step: Step, evaluation) -> None:
    params: ClassifyParams = step.params
    for (day, site, category), tally in evaluation.cells.items():
        if day < params.starts or (params.ends is not None and day > params.ends):
            reason = OUTSIDE_CONTRACT
        elif site not in evaluation.sheets:
            reason = UNKNOWN_SITE
        elif category not in params.categories:
            reason = UNKNOWN_CATEGORY
        else:
            evaluation.sheets[site].daily[(day, category)] = tally
            continue
        evaluation.report(reason, site, category, tally)


@dataclass(frozen=True)
class SiteParams:
    site: str

    def as_dict(self) -> dict:
        return {"site": self.site}


def meter_step(site: str) -> Step:
    return Step(
        Phase.METER,
        "meter",
        "sum each category's quantity over the site's billable days; usage on other days is site inactive",
        reads=("site usage", "billable days"),
        writes=("quantity:*", "unbilled"),
        params=SiteParams(site),
        stage=1,
        run=run_meter,
    )


def run_meter(step: Step, sheet) -> None:
    for (day, category), tally in sheet.daily.items():
        target = sheet.quantities if sheet.first_day <= day <= sheet.last_day else sheet.inactive
        if category not in target:
            target[category] = Tally()
        target[category].add(tally.quantity, tally.events)


def total_step(site: str) -> Step:
    return Step(
        Phase.TOTAL,
        "total",
        "site total = the sum of its usage, minimum and cap lines",
        reads=("usage:*", "minimum:*", "cap:*"),
        writes=("site total",),
        params=SiteParams(site),
        run=run_total,
    )


def run_total(step: Step, sheet) -> None:
    sheet.total = sum((line.amount for line in sheet.lines), Decimal(0))

