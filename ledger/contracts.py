"""Contract versions in the database: saving a new one, loading a contract's timeline.

    saved = save_contract(session, compile_file("acme.pricing"), comment="new review tiers")
    saved.outcome        # created | saved | replaced | unchanged
    contract = load_contract(session, "acme-health")
    contract.timeline    # engine.evaluate.Timeline: each version's plan from its period on

A contract's first version is in effect from its `starts`. A later one takes
effect at a period boundary: by default the next one after today (in the
contract's time zone), or the `effective` period given, which no issued invoice
may cover, and that changes the account's `commit` only at a contract year's
start. Saving again for a period that already has a version replaces it
(sqlalchemy-continuum keeps the replaced text); saving the text of the version
already in effect then changes nothing.
"""

from __future__ import annotations

import datetime as dt
import getpass
from dataclasses import dataclass
from functools import lru_cache
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dsl.compile import Compiled, compile_source
from engine.account import commitment_refused_until, describe_commitment
from engine.evaluate import Timeline
from engine.periods import Period
from engine.refusal import Refusal, Refused
from ledger.models import Contract, ContractVersion, Invoice, in_force

UTC = dt.timezone.utc


class UnknownContract(Refused, LookupError):
    def __init__(self, contract_id: str):
        super().__init__(Refusal("unknown-contract", f"no contract '{contract_id}' in the database",
                                 params={"customer": contract_id}, action="save-contract"))
        self.contract_id = contract_id


@dataclass(frozen=True)
class VersionInfo:
    effective: Period
    sha256: str
    author: str
    saved_at: dt.datetime

    @classmethod
    def of(cls, version: ContractVersion) -> "VersionInfo":
        return cls(version.effective, version.sha256, version.author, version.saved_at)


@dataclass(frozen=True)
class Saved:
    outcome: str                       # created | saved | replaced | unchanged
    contract_id: str
    effective: Period
    sha256: str
    same_as: VersionInfo | None        # unchanged: the version in effect; replaced: the one replaced


def author_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a bare container)
        return "unknown"


def last_issued_period(session: Session, contract_id: str) -> Period | None:
    return session.scalar(
        select(func.max(Invoice.period)).where(Invoice.customer == contract_id, in_force())
    )


def save_contract(
    session: Session,
    compiled: Compiled,
    *,
    effective: Period | None = None,
    comment: str = "",
    author: str | None = None,
    now: dt.datetime | None = None,
) -> Saved:
    """Raises Refused (nothing saved) with the reason; `compiled` must have compiled without errors."""
    terms = compiled.plan.terms
    now = now or dt.datetime.now(UTC)
    first = Period.of(terms.starts)
    row = dict(text=compiled.text, sha256=terms.version, author=author or author_name(), saved_at=now,
               comment=comment or "")
    contract = session.get(Contract, terms.contract_id, with_for_update=True)
    if contract is None:
        if effective not in (None, first):
            raise Refused(Refusal(
                "first-version-effective", f"the first version of '{terms.contract_id}' is in effect from its start "
                f"({terms.starts.isoformat()}, period {first})", field="effective",
                params={"effective": effective}, action="omit-effective"))
        contract = Contract(id=terms.contract_id, customer=terms.customer, timezone=terms.timezone,
                            starts=terms.starts, currency=terms.money.currency, created_at=now)
        session.add(contract)
        session.add(ContractVersion(contract=contract, effective=first, **row))
        return Saved("created", contract.id, first, terms.version, None)

    changed = terms.changed_from({"starts": contract.starts, "timezone": contract.timezone,
                                  "currency": contract.currency})
    if changed:
        what, theirs, mine = changed[0]
        raise Refused(Refusal("kept-term", f"a new version must keep the contract's {what} "
                                           f"({theirs} in the database, {mine} here)", field="source",
                              params={"term": what, "stored": theirs, "given": mine}))
    today = now.astimezone(ZoneInfo(contract.timezone)).date()
    target = effective or max(Period.of(today).shift(1), first)
    asked = {"effective": effective} if effective else {}
    if target < first:
        raise Refused(Refusal("before-start", "a version cannot take effect before the contract starts "
                              f"({terms.starts.isoformat()})",
                              field="effective", params=asked))
    issued = last_issued_period(session, contract.id)
    if issued is not None and target <= issued:
        where = "" if effective else f"the next period boundary after today ({target}): "
        raise Refused(Refusal(
            "period-issued", f"{where}the invoice for {issued} is already issued, so a new version can take effect "
            f"from {issued.shift(1)} at the earliest; nothing saved", field="effective",
            params={**asked, "issued": issued, "earliest": issued.shift(1)}))

    _check_commitment(contract, compiled, target, asked)
    in_effect = _version_in_effect(contract.versions, target)
    if in_effect is not None and in_effect.sha256 == terms.version:
        return Saved("unchanged", contract.id, in_effect.effective, terms.version, VersionInfo.of(in_effect))
    contract.customer = terms.customer
    if in_effect is not None and in_effect.effective == target:
        replaced = VersionInfo.of(in_effect)
        for name, value in row.items():
            setattr(in_effect, name, value)
        return Saved("replaced", contract.id, target, terms.version, replaced)
    session.add(ContractVersion(contract=contract, effective=target, **row))
    return Saved("saved", contract.id, target, terms.version, None)


def _check_commitment(contract: Contract, compiled: Compiled, target: Period, asked: dict) -> None:
    """Refuses a version that changes the `commit` at `target` (from the version before it), or whose `commit`
    the next version would change, other than at a contract year's start."""
    others = [v for v in contract.versions if v.effective != target]
    before = _version_in_effect(others, target)
    after = min((v for v in others if v.effective > target), key=lambda v: v.effective, default=None)
    plan = compiled.plan
    pairs = [(compiled_text(before.text, "before").plan if before else None, plan, target)]
    if after is not None:
        pairs.append((plan, compiled_text(after.text, "after").plan, after.effective))
    for earlier, later, effective in pairs:
        if later is None:   # a stored version that no longer compiles: loading the contract says so
            continue
        earliest = commitment_refused_until(contract.starts, earlier, later, effective)
        if earliest is not None:
            raise Refused(Refusal(
                "commit-mid-year", f"a version in effect from {effective} would change the account's commit "
                f"({describe_commitment(earlier)} before, {describe_commitment(later)} then), which can change "
                f"only at the start of a contract year; it could take effect from {earliest}; nothing saved",
                field="effective", params={**asked, "earliest": earliest}))


def _version_in_effect(versions: list[ContractVersion], period: Period) -> ContractVersion | None:
    current = None
    for version in sorted(versions, key=lambda v: v.effective):
        if version.effective <= period:
            current = version
    return current


@dataclass(frozen=True)
class StoredContract:
    id: str
    zone: ZoneInfo
    versions: tuple[ContractVersion, ...]   # in effective order
    timeline: Timeline


class StoredVersionInvalid(Refused):
    """A stored version no longer compiles (the language changed under it)."""

    def __init__(self, message: str):
        super().__init__(Refusal("stored-version-invalid", message))


@lru_cache(maxsize=64)
def compiled_text(text: str, name: str) -> Compiled:
    return compile_source(text.encode("utf-8"), name)


def load_contract(session: Session, contract_id: str) -> StoredContract:
    """Raises UnknownContract, or StoredVersionInvalid with the first error."""
    contract = session.get(Contract, contract_id)
    if contract is None:
        raise UnknownContract(contract_id)
    versions = tuple(sorted(contract.versions, key=lambda v: v.effective))
    plans = []
    for version in versions:
        name = f"{contract_id}@{version.effective}"
        compiled = compiled_text(version.text, name)
        if not compiled.ok:
            first_error = next(d for d in compiled.diagnostics if d.severity == "error")
            raise StoredVersionInvalid(f"the stored version {name} no longer compiles: {first_error.render(name)}")
        plans.append((version.effective, compiled.plan))
    return StoredContract(contract.id, ZoneInfo(contract.timezone), versions, Timeline(tuple(plans)))
