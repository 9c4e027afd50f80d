"""How long each contract's oldest open period has waited: what an operator alerts on when invoicing stalls.

    open_period_ages(session, now)   # {"acme-health": 2678400.0, "tiny": 0.0}: seconds since the end of the
                                     # oldest ended period without an issued invoice in force (0: none)

A period is open from the contract's start until its invoice is issued (a void
opens it again); only ended periods count, up to the month of the contract's
latest usage, so a contract whose term is over stops counting once its last
billed month is issued. Three queries whatever the number of contracts or
invoices (contracts, invoices in force, each contract's latest rollup day): cheap
enough to run at every scrape of the metrics.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.periods import Period
from ledger.models import Contract, Invoice, in_force
from metering.models import Rollup


def open_period_ages(session: Session, now: dt.datetime) -> dict[str, float]:
    issued = set(session.execute(select(Invoice.customer, Invoice.period).where(in_force())).all())
    latest = dict(session.execute(select(Rollup.customer, func.max(Rollup.day)).group_by(Rollup.customer)).all())
    ages = {}
    for customer, starts, zone in session.execute(select(Contract.id, Contract.starts, Contract.timezone)):
        ages[customer] = 0.0
        if customer not in latest:
            continue
        tz = ZoneInfo(zone)
        period, last = Period.of(starts), Period.of(latest[customer])
        while period <= last and period.end(tz) <= now:
            if (customer, period) not in issued:
                ages[customer] = (now - period.end(tz)).total_seconds()
                break
            period = period.shift(1)
    return ages
