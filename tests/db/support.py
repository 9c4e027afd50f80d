"""Helpers for the database tests: small contracts, events as JSON lines, the stored state in one value."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import func, select

from metering.models import ConflictingEvent, LateRollup, Rollup, UsageEvent

TINY = """\
contract "tiny" {
    customer "Tiny Ltd"
    currency GBP
    starts   2026-01-01
    timezone "Europe/London"

    category standard "Standard processing" rate 1.00
    category review   "Manual review" graduated {
        up to 10 at 2.00
        above    at 1.00
    }

    defaults {
        minimum 50.00 monthly on standard
        cap 500.00 yearly on all
    }

    site "s1" "Site one" { }
    site "s2" "Site two" { active until 2026-06-30 }
}
"""


def event(number: int | str, time: str, quantity="1", *, customer="tiny", site="s1", category="standard",
          source="platform/test") -> str:
    return json.dumps({
        "specversion": "1.0", "id": f"evt-{number}", "source": source, "type": "unit.processed", "time": time,
        "data": {"customer": customer, "site": site, "category": category, "quantity": quantity},
    })


def write_lines(path: Path, lines) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def stored_state(sessions) -> dict:
    """Everything ingestion writes, in a form two runs can be compared by."""
    with sessions() as session:
        return {
            "events": session.scalar(select(func.count()).select_from(UsageEvent)),
            "rollups": {(r.customer, r.site, r.category, r.day): (r.quantity, r.events)
                        for r in session.scalars(select(Rollup))},
            "late": sorted((r.customer, r.site, r.category, r.day, r.quantity, r.events, r.billed_on)
                           for r in session.scalars(select(LateRollup))),
            "conflicts": session.scalar(select(func.count()).select_from(ConflictingEvent)),
        }
