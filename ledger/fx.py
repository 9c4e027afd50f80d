"""GBP rates recorded by finance (interfaces §4, Tax): `billing fx set --date D --currency USD --gbp RATE`.

    record_rate(session, "USD", dt.date(2026, 7, 3), Decimal("0.7931"), who)   # audited as fx.set
    gbp_rate(session, "USD", dt.date(2026, 7, 3))                             # Decimal("0.7931"), or None

A rate is for one day (finance may record HMRC's period rate for each day of the
period); recording a day again replaces its rate, and the audit log keeps both.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy.orm import Session

from audit.log import Actor, record
from engine.money import is_currency
from engine.refusal import Refusal, Refused
from ledger.models import FxRate

UTC = dt.timezone.utc


def gbp_rate(session: Session, currency: str, on: dt.date) -> Decimal | None:
    row = session.get(FxRate, (currency, on))
    return row.gbp if row is not None else None


def record_rate(session: Session, currency: str, on: dt.date, gbp: Decimal, who: Actor, *,
                now: dt.datetime | None = None) -> FxRate:
    now = now or dt.datetime.now(UTC)
    if not is_currency(currency) or currency == "GBP":
        raise Refused(Refusal("fx-currency", f"{currency!r} is not a currency other than GBP", field="currency"))
    if not gbp.is_finite() or gbp <= 0:
        raise Refused(Refusal("fx-rate", f"a rate is a positive number of GBP, not {gbp}", field="gbp"))
    row = session.get(FxRate, (currency, on), with_for_update=True)
    before = row.gbp if row is not None else None
    if row is None:
        row = FxRate(currency=currency, on=on, gbp=gbp, recorded_by=who.name, recorded_at=now)
        session.add(row)
    else:
        row.gbp, row.recorded_by, row.recorded_at = gbp, who.name, now
    session.flush()
    record(session, who, "fx.set", f"fx:{currency}/{on}",
           details={"gbp": f"{gbp:f}", "before": None if before is None else f"{before:f}"}, at=now)
    return row
