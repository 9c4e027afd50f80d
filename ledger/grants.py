"""Credit grants (interfaces §4, Credit grants): granted, listed, revoked by finance; drawn by invoices.

    grant = add_grant(session, "acme-health", Decimal("500.00"), who, reason="service credit")   # G-000001
    draws(session, "acme-health", Period(2026, 5), Decimal("8000.00"))
    # ({"grant": "G-000001", "amount": "-500.00", "remaining": "0.00"},)   what a draft of that period draws
    consume(session, invoice_row)        # at issue: the draft's draws become grant_draws rows
    revoke_grant(session, grant.id, who, "granted twice")
    grant_ledger(session, "acme-health", today=seller_today(seller))   # each grant, its history and its state

A grant is expired from the day after its `expires` (its last valid day), that day
taken in the seller's time zone (the environment's `[seller] timezone`): what
`billing grant list` and the portal show. Which periods may draw on it is decided
by the periods' first days, as interfaces §4 says.

A grant's remaining amount is its amount less what invoices in force drew: a
void gives back by itself. Drafts do not reserve; the draft's `credits` are part
of its document, so a grant drawn by another invoice, revoked or changed since
makes it stale (the lifecycle's draft_is_current and issue checks). Issuing locks
the customer's contract row, so two invoices of one customer are never issued at
once, and no grant is drawn twice. Every change is audited (grant.add, grant.revoke).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from audit.log import Actor, record
from engine.money import Money
from engine.periods import Period
from engine.refusal import Refusal, Refused
from ledger.contracts import UnknownContract, last_issued_period
from ledger.models import Contract, CreditGrant, GrantDraw, Invoice, InvoiceVoid, in_force

UTC = dt.timezone.utc
DEFAULT_PRIORITY = 100


def grant_name(grant_id: int) -> str:
    return f"G-{grant_id:06d}"


def grant_resource(grant_id: int) -> str:
    return f"grant:{grant_name(grant_id)}"


def add_grant(session: Session, customer: str, amount: Decimal, who: Actor, *, from_period: Period | None = None,
              expires: dt.date | None = None, priority: int = DEFAULT_PRIORITY, reason: str = "",
              now: dt.datetime | None = None) -> CreditGrant:
    """A new grant; `from_period` defaults to the customer's earliest period not yet issued."""
    now = now or dt.datetime.now(UTC)
    contract = session.get(Contract, customer, with_for_update=True)
    if contract is None:
        raise UnknownContract(customer)
    money = Money.of(contract.currency)
    if not amount.is_finite() or amount <= 0 or amount != money.round(amount):
        raise Refused(Refusal("grant-amount", f"a grant is a positive amount in {contract.currency} with at most "
                                              f"{money.places} decimal places, not {amount}", field="amount"))
    if from_period is None:
        last = last_issued_period(session, customer)
        from_period = last.shift(1) if last is not None else Period.of(contract.starts)
    grant = CreditGrant(customer=customer, amount=amount, from_period=from_period, expires=expires,
                        priority=priority, reason=reason, granted_by=who.name, granted_at=now)
    session.add(grant)
    session.flush()
    record(session, who, "grant.add", grant_resource(grant.id),
           details={"customer": customer, "amount": f"{amount:f}", "from": str(from_period),
                    "expires": expires.isoformat() if expires else None, "priority": priority, "reason": reason},
           at=now)
    return grant


def revoke_grant(session: Session, grant_id: int, who: Actor, reason: str, *,
                 now: dt.datetime | None = None) -> CreditGrant:
    """What was drawn stays drawn; no invoice draws on it again."""
    now = now or dt.datetime.now(UTC)
    if not reason.strip():
        raise Refused(Refusal("reason-missing", "revoking a grant needs a reason", field="reason"))
    grant = session.get(CreditGrant, grant_id, with_for_update=True)
    if grant is None:
        raise Refused(Refusal("no-grant", f"there is no grant {grant_name(grant_id)}"))
    if grant.revoked_at is not None:
        raise Refused(Refusal("grant-revoked", f"{grant_name(grant_id)} was revoked already, by {grant.revoked_by}"))
    grant.revoked_at, grant.revoked_by, grant.revoke_reason = now, who.name, reason.strip()
    session.flush()
    record(session, who, "grant.revoke", grant_resource(grant_id),
           details={"customer": grant.customer, "reason": reason.strip(), "remaining": f"{remaining(session, grant):f}"},
           at=now)
    return grant


def remaining(session: Session, grant: CreditGrant) -> Decimal:
    drawn = session.scalar(select(func.coalesce(func.sum(GrantDraw.amount), 0))
                           .join(Invoice, Invoice.id == GrantDraw.invoice_id)
                           .where(GrantDraw.grant_id == grant.id, in_force()))
    return grant.amount - Decimal(drawn)


def _drawing_order(grant: CreditGrant) -> tuple:
    """Lowest priority number first, then the earliest expiry (none last), then the oldest."""
    return (grant.priority, grant.expires is None, grant.expires or dt.date.max, grant.granted_at, grant.id)


def draws(session: Session, customer: str, period: Period, total: Decimal, currency: str) -> tuple[dict, ...]:
    """What an invoice of `period` with charges `total` draws, as its `credits` (negative amounts)."""
    money, left, drawn = Money.of(currency), total, []
    grants = session.scalars(select(CreditGrant).where(CreditGrant.customer == customer,
                                                       CreditGrant.revoked_at.is_(None),
                                                       CreditGrant.from_period <= period)).all()
    for grant in sorted(grants, key=_drawing_order):
        if left <= 0:
            break
        if grant.expires is not None and grant.expires < period.first_day:
            continue
        available = remaining(session, grant)
        amount = min(available, left)
        if amount <= 0:
            continue
        left -= amount
        drawn.append({"grant": grant_name(grant.id), "amount": money.format(-amount),
                      "remaining": money.format(available - amount)})
    return tuple(drawn)


def consume(session: Session, invoice: Invoice) -> None:
    """Records what the issued invoice's `credits` drew (the lifecycle checked they are still available)."""
    for credit in invoice.document.get("credits", ()):
        session.add(GrantDraw(grant_id=int(credit["grant"].removeprefix("G-")), invoice_id=invoice.id,
                              amount=-Decimal(credit["amount"])))
    session.flush()


def seller_today(seller: Mapping | None, now: dt.datetime | None = None) -> dt.date:
    """Today in the seller's time zone (UTC when the environment names none)."""
    zone = ZoneInfo((seller or {}).get("timezone") or "UTC")
    return (now or dt.datetime.now(UTC)).astimezone(zone).date()


def grant_id_of(name: str) -> int | None:
    """G-000004 (or g-4, or 4) → 4; None when it names no grant."""
    digits = name.strip().upper().removeprefix("G-")
    return int(digits) if digits.isdigit() and len(digits) <= 18 else None


def grant_of(session: Session, customer: str, grant_id: int) -> CreditGrant | None:
    """The grant if it is this customer's: another customer's is not found."""
    grant = session.get(CreditGrant, grant_id)
    return grant if grant is not None and grant.customer == customer else None


def state_of(grant: CreditGrant, left: Decimal, today: dt.date | None) -> str:
    """revoked, used (nothing remains), expired (after its last valid day), else active."""
    if grant.revoked_at is not None:
        return "revoked"
    if left <= 0:
        return "used"
    if today is not None and grant.expires is not None and grant.expires < today:
        return "expired"
    return "active"


def grant_ledger(session: Session, customer: str, today: dt.date | None = None) -> list[dict]:
    """Each grant of the customer with its history: granted, drawn by which invoice (given back when it was
    voided, and when), expired, revoked; what remains, and its state (state_of; expiry judged on `today`,
    none without it)."""
    ledger = []
    for grant in session.scalars(select(CreditGrant).where(CreditGrant.customer == customer)
                                 .order_by(CreditGrant.id)):
        voided_at = select(InvoiceVoid.voided_at).where(InvoiceVoid.invoice_id == Invoice.id).scalar_subquery()
        rows = session.execute(select(GrantDraw.amount, Invoice.number, Invoice.period, in_force().label("live"),
                                      Invoice.id, Invoice.issued_at, voided_at)
                               .join(Invoice, Invoice.id == GrantDraw.invoice_id)
                               .where(GrantDraw.grant_id == grant.id).order_by(Invoice.id)).all()
        left = remaining(session, grant)
        ledger.append({
            "grant": grant_name(grant.id), "amount": f"{grant.amount:f}", "from": str(grant.from_period),
            "expires": grant.expires.isoformat() if grant.expires else None, "priority": grant.priority,
            "reason": grant.reason, "granted_by": grant.granted_by, "granted_at": grant.granted_at.isoformat(),
            "revoked": None if grant.revoked_at is None else {"at": grant.revoked_at.isoformat(),
                                                              "by": grant.revoked_by, "reason": grant.revoke_reason},
            "draws": [{"invoice": number, "invoice_id": invoice_id, "period": str(period), "amount": f"{amount:f}",
                       "issued_at": issued_at.isoformat() if issued_at else None, "given_back": not live,
                       "given_back_at": voided_at.isoformat() if voided_at else None}
                      for amount, number, period, live, invoice_id, issued_at, voided_at in rows],
            "remaining": f"{left:f}",
            "state": state_of(grant, left, today),
        })
    return ledger
