"""A contract's history: every version ever saved, who saved it and why, what changed, what it billed.

sqlalchemy-continuum keeps each state of each `contract_versions` row, so a
version replaced before it took effect is still there. `contract_history`
answers "which version billed 2026-05, who saved it, and what changed":

    history = contract_history(session, "acme-health", today=dt.date(2026, 6, 2))
    print(render_history(history))
"""

from __future__ import annotations

import datetime as dt
import difflib
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy_continuum import version_class

from engine.periods import Period, periods_between
from ledger.contracts import UnknownContract, compiled_text
from ledger.models import Contract, ContractVersion, Invoice, in_force

UTC = dt.timezone.utc


@dataclass(frozen=True)
class SavedVersion:
    number: int                 # 1, 2, … in the order saved
    effective: Period
    sha256: str
    author: str
    saved_at: dt.datetime
    comment: str
    text: str
    replaced_by: int | None     # a later save for the same period replaced this one
    until: Period | None        # the last period it is in effect (None: open-ended or replaced)


@dataclass(frozen=True)
class PeriodLine:
    period: Period
    version: int | None         # the version that billed it (issued) or bills it now
    invoice: str | None         # the invoice's status, if there is one


@dataclass(frozen=True)
class History:
    contract_id: str
    customer: str
    versions: tuple[SavedVersion, ...]
    periods: tuple[PeriodLine, ...]


def contract_history(session: Session, contract_id: str, today: dt.date | None = None) -> History:
    contract = session.get(Contract, contract_id)
    if contract is None:
        raise UnknownContract(contract_id)
    states = session.scalars(
        select(version_class(ContractVersion)).where(version_class(ContractVersion).contract_id == contract_id)
        .order_by(version_class(ContractVersion).transaction_id)
    ).all()
    number_of = {}       # (row id, transaction id) → number
    for number, state in enumerate(states, 1):
        number_of[(state.id, state.transaction_id)] = number
    current = {row.id: row for row in contract.versions}
    live = sorted((s for s in states if s.end_transaction_id is None and s.id in current), key=lambda s: s.effective)
    until = {number_of[(s.id, s.transaction_id)]: nxt.effective.shift(-1) for s, nxt in zip(live, live[1:])}
    versions = []
    for state in states:
        number = number_of[(state.id, state.transaction_id)]
        later = [number_of[(s.id, s.transaction_id)] for s in states
                 if s.id == state.id and s.transaction_id == state.end_transaction_id]
        versions.append(SavedVersion(number, state.effective, state.sha256, state.author, state.saved_at,
                                     state.comment or "", state.text, later[0] if later else None,
                                     until.get(number)))

    invoices = {row.period: row for row in session.scalars(
        select(Invoice).where(Invoice.customer == contract_id, Invoice.status.in_(("draft", "approved")) | in_force()))}
    by_sha = {}
    for version in versions:
        by_sha.setdefault(version.sha256, version.number)
    today = today or dt.datetime.now(ZoneInfo(contract.timezone)).date()
    last = max([Period.of(today), *invoices, *(s.effective for s in live)])
    ends = _ends(live)
    if ends is not None:
        last = min(last, ends)
    periods = []
    for period in periods_between(Period.of(contract.starts), last):
        invoice = invoices.get(period)
        if invoice is not None and invoice.status == "issued":
            number = by_sha.get(invoice.contract_sha)
        else:
            in_effect = [s for s in live if s.effective <= period]
            number = number_of[(in_effect[-1].id, in_effect[-1].transaction_id)] if in_effect else None
        periods.append(PeriodLine(period, number, invoice.status if invoice else None))
    return History(contract.id, contract.customer, tuple(versions), tuple(periods))


def _ends(live) -> Period | None:
    """The contract's last period, as its latest version says."""
    if not live:
        return None
    compiled = compiled_text(live[-1].text, "history")
    ends = compiled.plan.terms.ends if compiled.ok else None
    return Period.of(ends) if ends else None


def text_diff(old: str, new: str, old_name: str, new_name: str) -> list[str]:
    """The unified diff of two contract texts, one line per item, without line ends (empty when equal)."""
    diff = difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True), old_name, new_name)
    return [line.rstrip("\r\n") for line in diff]


def render_history(history: History) -> str:
    count = len(history.versions)
    out = [f"Contract {history.contract_id} ({history.customer}): {count} version{'s' * (count != 1)} saved", ""]
    previous = None
    for version in history.versions:
        if version.replaced_by:
            state = f"for {version.effective}, replaced by version {version.replaced_by} before it took effect"
        elif version.until:
            state = f"in effect {version.effective} to {version.until}"
        else:
            state = f"in effect from {version.effective}"
        saved = version.saved_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        out.append(f"Version {version.number}: {state}")
        out.append(f"  saved {saved} by {version.author}" + (f": {version.comment}" if version.comment else ""))
        out.append(f"  sha256 {version.sha256}")
        if previous is not None:
            diff = text_diff(previous.text, version.text, f"version {previous.number}", f"version {version.number}")
            out.extend("  " + line for line in diff)
        out.append("")
        previous = version
    out.append("Which version bills each period:")
    for line in history.periods:
        version = f"version {line.version}" if line.version else "no version"
        status = f"  ({line.invoice})" if line.invoice else ""
        out.append(f"  {line.period}  {version}{status}")
    return "\n".join(out) + "\n"
