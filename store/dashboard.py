"""What the dashboard shows for a customer's period: the invoice the engine computes now from the rollups.

    now = figures(session, "acme-health", Period(2026, 6))
    now.total, [(site.site, site.charges) for site in now.sites]

The dashboard and the invoice are one computation (store/billing_from_db.py on
the same rollups with the same contract version), so the dashboard's figure of a
period can only differ from its invoice when the data under them changed; the
reconciliation (store/reconcile.py) records these figures when a period closes
and compares them with the draft.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy.orm import Session

from engine.periods import Period
from store.billing_from_db import ComputedInvoice, invoice_from_db


@dataclass(frozen=True)
class SiteFigure:
    site: str
    name: str
    charges: Decimal        # the site's total as the invoice of the period would show it now


@dataclass(frozen=True)
class Figures:
    customer: str
    period: Period
    sites: tuple[SiteFigure, ...]
    computed: ComputedInvoice

    @property
    def total(self) -> Decimal:
        return sum((site.charges for site in self.sites), Decimal(0))


def figures(session: Session, customer: str, period: Period) -> Figures:
    """Raises store.contracts.UnknownContract, engine.evaluate.OutsideContract (as invoice_from_db)."""
    computed = invoice_from_db(session, customer, period)
    sites = tuple(SiteFigure(site.site, site.name, site.total) for site in computed.invoice.sites)
    return Figures(customer, period, sites, computed)
