"""Customer billing profiles: who an invoice bills, and how it is taxed (interfaces §4).

    profile = save_profile(session, "acme-health", who, {"name": "Acme Health Ltd", "address": ["1 High St", "London"],
                                                         "tax_treatment": "uk_standard"})
    history(session, "acme-health")   # its revisions, newest first: who, when, which fields changed (before, after)
    missing_for(profile)     # [] when the profile has what its treatment needs, else what it lacks
    buyer_json(profile)      # the invoice's `buyer`
    legal_terms(session, document, seller, tax_point)   # invoicing.legal.Legal (tax_point None: a draft)

Only the fields given change; each save is a new revision (1, 2, …), kept by
sqlalchemy-continuum with the earlier ones, and audited (`customer.profile`, with
the fields changed, old and new). A draft records the revision it used, so a later
save makes it stale.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal

from sqlalchemy.orm import Session

from audit.log import Actor, record
from engine.periods import Period
from engine.refusal import Refusal, Refused
from invoicing.legal import Legal
from ledger.contracts import UnknownContract
from ledger.fx import gbp_rate
from ledger.grants import draws
from ledger.models import TAX_TREATMENTS, Contract, CustomerProfile

UTC = dt.timezone.utc
FIELDS = ("name", "address", "tax_id", "tax_treatment", "exempt_reason", "purchase_order", "terms_days")
# What each treatment needs of the buyer, besides a name and an address (interfaces §4, Tax).
NEEDS = {"uk_standard": (), "reverse_charge": ("tax_id",), "exempt": ("exempt_reason",), "none": ()}
LABELS = {"name": "the legal name", "address": "the address", "tax_id": "the buyer's tax id",
          "exempt_reason": "the exemption certificate or reason"}


def customer_resource(contract_id: str) -> str:
    return f"customer:{contract_id}"


def profile_of(session: Session, contract_id: str) -> CustomerProfile | None:
    return session.get(CustomerProfile, contract_id)


def save_profile(session: Session, contract_id: str, who: Actor, changes: dict, *,
                 treatments: tuple[str, ...] = TAX_TREATMENTS, now: dt.datetime | None = None) -> CustomerProfile:
    """Applies `changes` (a subset of FIELDS) to the profile, creating it on first use. Refused: an unknown
    contract, a treatment this environment does not issue, negative payment terms."""
    now = now or dt.datetime.now(UTC)
    unknown = set(changes) - set(FIELDS)
    if unknown:
        raise ValueError(f"not a profile field: {', '.join(sorted(unknown))}")
    if session.get(Contract, contract_id, with_for_update=True) is None:
        raise UnknownContract(contract_id)
    treatment = changes.get("tax_treatment")
    if treatment is not None and treatment not in treatments:
        raise Refused(Refusal("treatment-not-issued", f"this environment issues {' or '.join(treatments)} only, "
                                                      f"not {treatment}", field="tax_treatment"))
    if changes.get("terms_days") is not None and changes["terms_days"] < 0:
        raise Refused(Refusal("terms-negative", "payment terms are a number of days, 0 or more", field="terms_days"))
    profile = profile_of(session, contract_id)
    if profile is None:
        profile = CustomerProfile(contract_id=contract_id, name="", address=[], tax_id="", tax_treatment="none",
                                  exempt_reason="", purchase_order="", terms_days=None, revision=0)
        session.add(profile)
    changed = {name: [getattr(profile, name), value] for name, value in changes.items()
               if getattr(profile, name) != value}
    if not changed and profile.revision:
        return profile
    for name, value in changes.items():
        setattr(profile, name, value)
    profile.revision += 1
    profile.saved_by, profile.saved_at = who.name, now
    session.flush()
    record(session, who, "customer.profile", customer_resource(contract_id),
           details={"revision": profile.revision, "changed": changed}, at=now)
    return profile


def missing_for(profile: CustomerProfile | None) -> list[str]:
    """What the profile lacks for its treatment, worded for people; the whole profile when there is none."""
    if profile is None:
        return ["a billing profile"]
    needed = ("name", "address") + NEEDS[profile.tax_treatment]
    return [LABELS[name] for name in needed if not getattr(profile, name)]


def profile_json(profile: CustomerProfile) -> dict:
    return {"customer": profile.contract_id, "revision": profile.revision,
            **{name: getattr(profile, name) for name in FIELDS},
            "saved_by": profile.saved_by, "saved_at": profile.saved_at.isoformat()}


def buyer_json(profile: CustomerProfile) -> dict:
    """The invoice's `buyer` (interfaces §4)."""
    return {"name": profile.name, "address": list(profile.address), "tax_id": profile.tax_id or None,
            "purchase_order": profile.purchase_order or None}


def revisions(session: Session, contract_id: str) -> list[dict]:
    """Every saved state of the profile, oldest first (sqlalchemy-continuum's history table)."""
    from sqlalchemy_continuum import version_class

    history = version_class(CustomerProfile)
    rows = session.query(history).filter(history.contract_id == contract_id).order_by(history.transaction_id)
    return [{"revision": row.revision, **{name: getattr(row, name) for name in FIELDS},
             "saved_by": row.saved_by, "saved_at": row.saved_at.isoformat()} for row in rows]


def history(session: Session, contract_id: str) -> list[dict]:
    """The profile's revisions, newest first, each with who saved it, when, and what it changed
    (`changed`: field, before, after; the first revision: every field it set)."""
    shown, before = [], None
    for revision in revisions(session, contract_id):
        changed = [(name, None if before is None else before[name], revision[name]) for name in FIELDS
                   if before is None and revision[name] not in ("", [], None)
                   or before is not None and before[name] != revision[name]]
        shown.append({**revision, "changed": changed})
        before = revision
    return shown[::-1]


def legal_terms(session: Session, document: dict, seller: Mapping, tax_point: dt.date | None) -> Legal:
    """What the invoice of `document` is made legal with: the seller's entity, the buyer's current profile
    (without one, the contract's customer name and no tax), the payment terms (the buyer's, else the seller's)
    the credits it draws from the customer's grants (ledger/grants.py), and, when issuing (a `tax_point`),
    finance's GBP rate for it: a draft states no GBP amount."""
    credits = draws(session, document["contract"], Period.parse(document["period"]),
                    Decimal(document["totals"]["total"]), document["currency"])
    profile = profile_of(session, document["contract"])
    terms = seller.get("payment_terms_days", 30)
    if profile is None:
        return Legal(seller=seller, buyer={"name": document["customer"], "address": [], "tax_id": None,
                                           "purchase_order": None},
                     terms_days=terms, credits=credits)
    fx_rate = None if document["currency"] == "GBP" or tax_point is None \
        else gbp_rate(session, document["currency"], tax_point)
    return Legal(seller=seller, buyer=buyer_json(profile), treatment=profile.tax_treatment,
                 exempt_reason=profile.exempt_reason,
                 terms_days=terms if profile.terms_days is None else profile.terms_days,
                 credits=credits, fx_rate=fx_rate)
