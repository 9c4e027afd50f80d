"""The legal invoice (interfaces §4): who bills whom, the dates, the credits, the tax and what is due.

    legal = Legal(seller=environment.seller, buyer={...}, treatment="uk_standard", exempt_reason="", terms_days=30)
    document = with_legal(document, legal, issue_date=None, as_of=today)          # a draft: no dates yet
    document = with_legal(document, legal, issue_date=today, as_of=today)         # issued: dates, tax point

It adds `seller`, `buyer`, `issue_date`, `tax_point`, `due_date`, `payment_terms`,
`credits` and `tax` to the charges' JSON, and to its totals `credits`, `net`, `tax`
and `due`: net = total + credits, due = net + tax; none is ever negative (credits
stop at a net of 0). A draft has no issue date: its tax is at the rate in force
`as_of` (today in the seller's time zone), so a rate change before the issue makes
the draft stale, as any change does.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from engine.money import Money
from invoicing.tax import tax_section

SELLER_FIELDS = ("name", "company_number", "address", "tax_id", "bank")


@dataclass(frozen=True)
class Legal:
    """What the invoice's legal fields are made from: the seller's entity, the buyer's profile, the treatment,
    the payment terms in days, the credits drawn ([{"grant", "amount"(negative), "remaining"}]) and the GBP
    rate of the tax point (None when none was recorded)."""

    seller: Mapping
    buyer: Mapping
    treatment: str = "none"
    exempt_reason: str = ""
    terms_days: int = 30
    credits: tuple = ()
    fx_rate: Decimal | None = None


def with_legal(document: dict, legal: Legal, *, issue_date: dt.date | None, as_of: dt.date) -> dict:
    """A copy of the charges' document with the legal fields."""
    money = Money.of(document["currency"])
    total = Decimal(document["totals"]["total"])
    credits = sum((Decimal(c["amount"]) for c in legal.credits), Decimal(0))
    net = total + credits
    tax = tax_section(legal.treatment, net, document["currency"], issue_date or as_of, fx_rate=legal.fx_rate,
                      exempt_reason=legal.exempt_reason)
    tax_amount = Decimal(tax["amount"]) if tax else Decimal(0)
    due_date = issue_date + dt.timedelta(days=legal.terms_days) if issue_date else None
    return {
        **document,
        "seller": {name: legal.seller.get(name) for name in SELLER_FIELDS},
        "buyer": dict(legal.buyer),
        "issue_date": issue_date.isoformat() if issue_date else None,
        "tax_point": issue_date.isoformat() if issue_date else None,
        "due_date": due_date.isoformat() if due_date else None,
        "payment_terms": f"net {legal.terms_days}",
        "credits": [dict(c) for c in legal.credits],
        **({"tax": tax} if tax else {}),
        "totals": {**document["totals"], "credits": money.format(credits), "net": money.format(net),
                   "tax": money.format(tax_amount), "due": money.format(net + tax_amount)},
    }
