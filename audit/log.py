"""The audit log: who did what to which resource, when, from where, in which environment, with what outcome.

    who = Actor("ana@example.com", environment="uk-prod", ip="10.0.0.7")
    record(session, who, "invoice.view", "invoice:acme-health/2026-05")
    record(session, who, "login.password", outcome=FAILURE, details={"reason": "wrong password"})
    verify(session)      # None, or the first edited, inserted or deleted entry (a ChainBreak)

Entries are only ever appended. Each one's `hash` is the SHA-256 of a canonical
JSON of its fields, `prev_hash` (the previous entry's hash) among them, so an
edited entry no longer matches its hash, and a deleted or inserted one breaks the
link of the entry after it. `audit_head` holds the last sequence and hash:
appending locks it, so entries are numbered in commit order with no gaps, and it
tells a log whose last entries were deleted from a log that is merely short.
The database also refuses UPDATE and DELETE on `audit_log` (triggers created by
the migration); tampering needs the rights to drop them, and `verify` still finds it,
unless the whole chain after the change is re-hashed: anchors.py signs its head
outside the database against that.

Actions are dotted names, area first: login.password, login.mfa, login.locked,
mfa.enrol, session.end, logout, user.add|disable|enable|unlock|reset_mfa|role|password,
access.denied, audit.view, invoice.list|view|download|approve|issue|void,
contract.save|history. Resources name what was touched, `invoice_resource` and
`contract_resource` the financial records, so one filter finds every access.

What an entry's details say has one vocabulary, whoever records it: `VOCABULARY`
names the detail keys of each action that more than one entry point records
(the portal and the command line), and `details(action, **values)` builds them,
every key present (None where it does not apply), so the same action reads the
same from either. `record` refuses a key outside an action's vocabulary.

Call `record` last in a transaction, after the change it describes: the entry
commits (or rolls back) with it, and the head stays locked for as short a time
as possible.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Iterator

from sqlalchemy import JSON, BigInteger, CheckConstraint, Index, Integer, String, literal, select, tuple_
from sqlalchemy.orm import Mapped, Session, mapped_column

from storage.base import Base

UTC = dt.timezone.utc
GENESIS = "0" * 64
SUCCESS, FAILURE, DENIED = "success", "failure", "denied"
OUTCOMES = (SUCCESS, FAILURE, DENIED)
EDITED, INSERTED, DELETED = "edited", "inserted", "deleted"
HEAD_RECORDED = "audit.head"

# The detail keys of the actions both the portal and the command line record. A refused step records `reason`
# (what the user is told) and `code` (the refusal's code); `result` is what a save did (created, saved, replaced,
# unchanged: the entry's own `outcome` says whether it succeeded), `in_effect_from` the period a version takes
# effect, `source` where the text came from (the portal's editor, or a file). A close's `result` is what it did to
# the draft (created, refreshed, unchanged) and `reconciliation` the verdict (passed, explained, failed). A view's
# `status` is the invoice's, `format` what it was shown as (html in the portal; text, json, csv, pdf… on the command
# line), `computed` whether it was computed afresh rather than read as stored, `credit_note` the credit note shown,
# and `output` where it went (a file, or standard output). No detail is named `outcome`: that is the entry's own.
_REFUSAL = ("reason", "code")
_JOURNAL = ("format", "customer", "lines", "output", *_REFUSAL)
VOCABULARY: dict[str, tuple[str, ...]] = {
    "contract.save": ("result", "in_effect_from", "comment", "author", "source", "replaces", *_REFUSAL),
    "invoice.approve": ("total", "usage_hash", *_REFUSAL),
    "invoice.issue": ("number", "total", "pdf_sha256", "document_sha256", "replaces", *_REFUSAL),
    "invoice.void": ("number", "reason", "code"),
    "invoice.view": ("status", "format", "computed", "credit_note", "output", *_REFUSAL),
    "invoice.close": ("result", "total", "reconciliation", *_REFUSAL),
    # the journal: downloaded in the portal, exported by `billing journal`; one read, two names, one set of keys
    "journal.download": _JOURNAL,
    "journal.export": _JOURNAL,
    # recorded for both entry points by the one function that does the step (review/, lifecycle/, ledger/), so
    # their keys are the same by construction; named here so that a new key is a decision, not a drift
    "reconciliation.run": ("passed", "difference", "discrepancies", "invoice_id"),
    "credit_note.issue": ("number", "invoice", "net", "tax", "total", "reason", "pdf_sha256", "code"),
    "grant.add": ("customer", "amount", "from", "expires", "priority", "reason", "code"),
    "grant.revoke": ("customer", "reason", "remaining", "code"),
    "customer.profile": ("revision", "changed", *_REFUSAL),
}   # session.info: (sequence, hash, actions) of the transaction's last entry


class AuditEntry(Base):
    __tablename__ = "audit_log"
    __table_args__ = (
        CheckConstraint(f"outcome IN {OUTCOMES}", name="audit_log_outcome"),
        Index("audit_log_at", "at"),
        Index("audit_log_actor", "actor", "at"),
        Index("audit_log_ip", "ip", "at"),
        Index("audit_log_resource", "resource", "at"),   # failed sign-ins per email (identity/signin.py)
        # the viewer's sorts (SORTS): each column, then the sequence (migration 0013)
        *(Index(f"audit_log_by_{column}", column, "sequence") for column in ("actor", "action", "resource", "outcome")),
    )

    sequence: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[dt.datetime]
    actor: Mapped[str]
    action: Mapped[str]
    resource: Mapped[str]
    ip: Mapped[str | None]
    environment: Mapped[str]
    outcome: Mapped[str] = mapped_column(String(10))
    details: Mapped[dict] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The one row that says where the chain ends (created by the migration with sequence 0)."""

    __tablename__ = "audit_head"
    __table_args__ = (CheckConstraint("id = 1", name="audit_head_single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    sequence: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


@dataclass(frozen=True)
class Actor:
    """Who acts, from where, in which environment: a user's email, or `cli:NAME` on the command line."""

    name: str
    environment: str
    ip: str | None = None


@dataclass(frozen=True)
class ChainBreak:
    sequence: int
    kind: str            # edited | inserted | deleted
    explanation: str

    def __str__(self) -> str:
        return f"entry {self.sequence}: {self.kind}: {self.explanation}"


def invoice_resource(customer: str, period, invoice_id: int | None = None) -> str:
    """`invoice:acme-health/2026-05#12`: the customer and period find it, the row id tells voided ones apart."""
    return f"invoice:{customer}/{period}" + (f"#{invoice_id}" if invoice_id is not None else "")


def contract_resource(contract_id: str, sha256: str | None = None) -> str:
    """`contract:acme-health@9a2ef88edcc2`: a contract, or one version of it by its text's SHA-256."""
    return f"contract:{contract_id}" + (f"@{sha256[:12]}" if sha256 else "")


def canonical(fields: dict) -> bytes:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def entry_hash(entry: AuditEntry) -> str:
    """The SHA-256 of the entry's fields as canonical JSON (its `prev_hash` included)."""
    return hashlib.sha256(canonical({
        "sequence": entry.sequence,
        "at": entry.at.astimezone(UTC).isoformat(timespec="microseconds"),
        "actor": entry.actor,
        "action": entry.action,
        "resource": entry.resource,
        "ip": entry.ip,
        "environment": entry.environment,
        "outcome": entry.outcome,
        "details": entry.details,
        "prev_hash": entry.prev_hash,
    })).hexdigest()


def details(action: str, **values) -> dict:
    """The details of `action` in its vocabulary: every key, None where no value is given."""
    _check_vocabulary(action, values)
    return {key: values.get(key) for key in VOCABULARY[action]}


def refusal_details(action: str, reason: str, code: str | None = None) -> dict:
    """A refused or denied step's details: in the action's vocabulary when it has one, else just these two."""
    if action in VOCABULARY:
        return details(action, reason=reason, code=code)
    return {"reason": reason, **({"code": code} if code is not None else {})}


def _check_vocabulary(action: str, values: dict) -> None:
    unknown = set(values) - set(VOCABULARY.get(action, values))
    if unknown:
        raise ValueError(f"{action}: {sorted(unknown)} not in its audit vocabulary {VOCABULARY[action]} "
                         "(audit/log.py VOCABULARY)")


def record(session: Session, who: Actor, action: str, resource: str = "", *, outcome: str = SUCCESS,
           details: dict | None = None, at: dt.datetime | None = None) -> AuditEntry:
    """Appends one entry to the chain, in the caller's transaction."""
    if outcome not in OUTCOMES:
        raise ValueError(f"an audit outcome is one of {OUTCOMES}, not {outcome!r}")
    _check_vocabulary(action, details or {})
    head = session.scalars(select(AuditHead).where(AuditHead.id == 1).with_for_update()).one()
    entry = AuditEntry(
        sequence=head.sequence + 1,
        at=at or dt.datetime.now(UTC),
        actor=who.name,
        action=action,
        resource=resource,
        ip=who.ip,
        environment=who.environment,
        outcome=outcome,
        details=json.loads(json.dumps(details or {})),   # hashed as it will read back: JSON values only
        prev_hash=head.hash,
    )
    entry.hash = entry_hash(entry)
    head.sequence, head.hash = entry.sequence, entry.hash
    _, _, actions = session.info.get(HEAD_RECORDED, (0, "", frozenset()))
    session.info[HEAD_RECORDED] = (entry.sequence, entry.hash, actions | {action})   # for anchors.watch
    session.add(entry)
    session.flush()
    return entry


def verify(session: Session) -> ChainBreak | None:
    """The first entry that was edited, inserted or deleted, walking the chain from the start; None if intact."""
    head = session.get(AuditHead, 1)
    expected, previous, before_previous = 1, GENESIS, None
    for entry in _in_order(session):
        if entry.sequence < expected or entry.sequence > head.sequence:
            return ChainBreak(entry.sequence, INSERTED, f"its sequence is outside the chain (1 to {head.sequence})")
        if entry.sequence > expected:
            missing = f"entry {expected}" if entry.sequence == expected + 1 else \
                f"entries {expected} to {entry.sequence - 1}"
            return ChainBreak(expected, DELETED, f"{missing} missing: entry {entry.sequence} follows entry {expected - 1}")
        intact = entry_hash(entry) == entry.hash
        if entry.prev_hash == previous and not intact:
            return ChainBreak(entry.sequence, EDITED, "its fields no longer match its hash")
        if entry.prev_hash != previous:
            if entry.prev_hash == before_previous:
                return ChainBreak(entry.sequence - 1, INSERTED,
                                  f"entry {entry.sequence} links to the entry before it, not to it")
            if intact and entry.sequence > 1:
                return ChainBreak(entry.sequence - 1, EDITED,
                                  f"its hash was recomputed, so entry {entry.sequence} no longer links to it")
            return ChainBreak(entry.sequence, EDITED, "it does not link to the entry before it")
        expected, previous, before_previous = entry.sequence + 1, entry.hash, previous
    if expected - 1 < head.sequence:
        missing = f"entry {head.sequence}" if expected == head.sequence else f"entries {expected} to {head.sequence}"
        return ChainBreak(expected, DELETED, f"{missing} missing at the end of the log")
    if previous != head.hash:
        return ChainBreak(head.sequence, EDITED, "its hash was recomputed: it differs from the one the head recorded")
    return None


def _in_order(session: Session) -> Iterator[AuditEntry]:
    query = select(AuditEntry).order_by(AuditEntry.sequence).execution_options(yield_per=1000)
    for entry in session.scalars(query):
        yield entry
        session.expunge(entry)


def chain_head(session: Session) -> AuditHead:
    return session.get(AuditHead, 1)


# What the viewer sorts by; every order ends with the sequence, so that it is total and a page ends at one entry.
# "when" is the sequence: entries are numbered in commit order.
SORTS = {"when": AuditEntry.sequence, "actor": AuditEntry.actor, "action": AuditEntry.action,
         "resource": AuditEntry.resource, "outcome": AuditEntry.outcome}


@dataclass(frozen=True)
class AuditQuery:
    """The viewer's filters, order and page; empty filters do not filter."""

    actor: str = ""            # part of the actor, any case
    action: str = ""           # an action or its prefix: `login` finds login.password, login.mfa, …
    resource: str = ""         # part of the resource, any case
    since: dt.date | None = None
    until: dt.date | None = None   # inclusive, UTC days
    sort: str = "when"             # a key of SORTS
    descending: bool = True
    after: int | None = None       # the sequence of the last entry of the page before (keyset paging)
    limit: int = 100

    def __post_init__(self):
        if self.sort not in SORTS:
            raise ValueError(f"the audit log sorts by one of {tuple(SORTS)}, not {self.sort!r}")


def search(session: Session, query: AuditQuery) -> list[AuditEntry]:
    """One page of entries in the query's order, filtered, sorted and cut by the database: the page after
    `query.after` starts past that entry's (sort value, sequence), so every page costs the same."""
    column = SORTS[query.sort]
    ordered = [column, AuditEntry.sequence] if column is not AuditEntry.sequence else [column]
    statement = select(AuditEntry).order_by(*(c.desc() if query.descending else c.asc() for c in ordered)) \
        .limit(query.limit)
    if query.actor:
        statement = statement.where(AuditEntry.actor.ilike(f"%{_escaped(query.actor)}%", escape="\\"))
    if query.action:
        action = _escaped(query.action)
        statement = statement.where(AuditEntry.action.like(action, escape="\\")
                                    | AuditEntry.action.like(f"{action}.%", escape="\\"))
    if query.resource:
        statement = statement.where(AuditEntry.resource.ilike(f"%{_escaped(query.resource)}%", escape="\\"))
    if query.since is not None:
        statement = statement.where(AuditEntry.at >= _midnight(query.since))
    if query.until is not None:
        statement = statement.where(AuditEntry.at < _midnight(query.until + dt.timedelta(days=1)))
    if query.after is not None:
        statement = statement.where(_past(session, column, query.after, query.descending))
    return list(session.scalars(statement))


def _past(session: Session, column, sequence: int, descending: bool):
    """Entries after the one numbered `sequence` in the order (its sort value, then the sequence)."""
    beyond = (lambda a, b: a < b) if descending else (lambda a, b: a > b)
    if column is AuditEntry.sequence:
        return beyond(AuditEntry.sequence, sequence)
    value = session.scalar(select(column).where(AuditEntry.sequence == sequence))
    if value is None:   # no such entry: the page starts at the beginning
        return AuditEntry.sequence.is_not(None)
    return beyond(tuple_(column, AuditEntry.sequence), tuple_(literal(value), literal(sequence)))   # one index range


def _escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), UTC)
