"""Anchors of the audit chain outside the database: what an insider who can rewrite the database cannot forge.

The chain (log.py) proves that no entry was edited, inserted or deleted since it
was written, unless whoever changed it also re-hashed every entry after the
change and updated the head: anyone with write access to the database can. So
the head is also written, signed, outside it: an anchor is one JSON line in an
append-only file the environment names (`audit_anchor_file`), holding the
sequence and hash of the head, when, the environment, and an HMAC-SHA256 of
those with a key the database never holds (BILLING_AUDIT_KEY).

    anchoring = Anchoring(Path("/var/lib/billing/anchors/uk-prod.jsonl"), key, "uk-prod")
    watch(sessions, anchoring)     # an anchor after each commit that recorded an ANCHORED action
    anchor(session, anchoring)     # one now (`billing audit anchor`, from a timer)
    check(session, anchoring)      # AnchorCheck: each anchor against the chain

A rewritten chain no longer holds the hash an anchor recorded at that sequence;
a cut one ends before the last anchor; a forged anchor fails its HMAC. What
was appended after the last anchor is covered only by the chain itself.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from audit.log import HEAD_RECORDED, AuditEntry, chain_head

UTC = dt.timezone.utc
# What changes money or proves it: each close (its reconciliation), approval, issue, void and credit note.
ANCHORED = frozenset({"reconciliation.run", "invoice.approve", "invoice.issue", "invoice.void", "credit_note.issue"})
_log = logging.getLogger("billing.audit")


@dataclass(frozen=True)
class Anchoring:
    path: Path          # the append-only file, outside the database
    key: bytes          # the HMAC key, from the environment's secrets: never in the database
    environment: str

    @classmethod
    def configured(cls, path: str | None, key: str | None, environment: str) -> "Anchoring | None":
        """The environment's anchoring (its audit_anchor_file and BILLING_AUDIT_KEY); None without either."""
        return cls(Path(path), key.encode("utf-8"), environment) if path and key else None


@dataclass(frozen=True)
class AnchorCheck:
    anchors: int                # anchors checked
    last: int | None            # the sequence of the last one
    problem: str | None = None  # where the chain and its anchors disagree (None: they agree)


def _mac(anchoring: Anchoring, fields: dict) -> str:
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hmac.new(anchoring.key, text.encode("utf-8"), hashlib.sha256).hexdigest()


def write_anchor(anchoring: Anchoring, sequence: int, hash_: str, at: dt.datetime | None = None) -> dict:
    """Appends the anchor of (sequence, hash) to the file, synced to disk before it returns."""
    fields = {"environment": anchoring.environment, "sequence": sequence, "hash": hash_,
              "at": (at or dt.datetime.now(UTC)).isoformat()}
    line = json.dumps({**fields, "mac": _mac(anchoring, fields)}, sort_keys=True) + "\n"
    anchoring.path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(anchoring.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(descriptor, line.encode("utf-8"))
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    return fields


def anchor(session: Session, anchoring: Anchoring) -> dict:
    """Anchors the committed head of the chain now."""
    head = chain_head(session)
    return write_anchor(anchoring, head.sequence, head.hash)


def watch(sessions: sessionmaker, anchoring: Anchoring) -> None:
    """After each commit of these sessions that recorded an ANCHORED action, anchors the head it committed. The
    commit stands if the file cannot be written (the failure is logged, and `check` shows the gap)."""

    @event.listens_for(sessions, "after_commit")
    def anchor_committed(session: Session) -> None:
        recorded = session.info.pop(HEAD_RECORDED, None)
        if recorded is None or not recorded[2] & ANCHORED:
            return
        try:
            write_anchor(anchoring, recorded[0], recorded[1])
        except OSError as exc:
            _log.error("the audit chain's head (entry %s) could not be anchored in %s: %s",
                       recorded[0], anchoring.path, exc)

    @event.listens_for(sessions, "after_rollback")
    def forget(session: Session) -> None:
        session.info.pop(HEAD_RECORDED, None)


def check(session: Session, anchoring: Anchoring) -> AnchorCheck:
    """Each anchor of the file against the chain: its HMAC, its environment, and the entry it anchored."""
    if not anchoring.path.is_file():
        return AnchorCheck(0, None, f"there is no anchor file {anchoring.path}: the chain cannot be checked "
                                    "against anything outside the database")
    count, last = 0, None
    with anchoring.path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            where = f"line {number} of {anchoring.path}"
            try:
                written = json.loads(line)
                fields = {name: written[name] for name in ("environment", "sequence", "hash", "at")}
                mac = written["mac"]
            except (ValueError, KeyError, TypeError):
                return AnchorCheck(count, last, f"{where} is not an anchor")
            if not hmac.compare_digest(str(mac), _mac(anchoring, fields)):
                return AnchorCheck(count, last, f"{where} is not signed with this environment's audit key")
            if fields["environment"] != anchoring.environment:
                return AnchorCheck(count, last, f"{where} anchors environment {fields['environment']}'s log")
            held = session.scalar(select(AuditEntry.hash).where(AuditEntry.sequence == fields["sequence"]))
            if held is None:
                return AnchorCheck(count, last, f"entry {fields['sequence']}, anchored at {fields['at']} "
                                                f"({where}), is no longer in the log: it was cut")
            if held != fields["hash"]:
                return AnchorCheck(count, last, f"entry {fields['sequence']} is not the one anchored at "
                                                f"{fields['at']} ({where}): the chain was rewritten at or "
                                                "before it")
            count, last = count + 1, fields["sequence"]
    return AnchorCheck(count, last)
