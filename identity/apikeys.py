"""API keys for the event API: one per (customer, event source), stored only as a hash.

    issued = create_api_key(session, "acme-health", "platform/eu-west")
    issued.key            # bk_3f9a0c1d2e4b_…  shown once, never stored
    find_api_key(session, "bk_3f9a0c1d2e4b_…")   # the ApiKey, or None (unknown, wrong or revoked)

A key is `bk_` + a 12-character public prefix + `_` + 43 characters of secret
(256 random bits). The prefix finds the row; the SHA-256 of the whole key must
match its hash. A plain hash is enough: the key is random and long, not a
password a person chose, so there is nothing for a slow hash to protect.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import ForeignKey, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from engine.refusal import Refusal, Refused
from ledger.contracts import UnknownContract
from ledger.models import Contract
from storage.base import Base, RowId

UTC = dt.timezone.utc
KEY_MARK = "bk_"
PREFIX_CHARS = 12


class ApiKey(Base):
    """A key that may post events of one source for one customer, until it is revoked."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(RowId, primary_key=True)
    prefix: Mapped[str] = mapped_column(String(PREFIX_CHARS), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    customer: Mapped[str] = mapped_column(ForeignKey("contracts.id"))
    source: Mapped[str]
    created_at: Mapped[dt.datetime]
    revoked_at: Mapped[dt.datetime | None]


@dataclass(frozen=True)
class IssuedKey:
    row: ApiKey
    key: str


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(session: Session, customer: str, source: str, *, now: dt.datetime | None = None) -> IssuedKey:
    if not source:
        raise ValueError("the event source may not be empty")
    if session.get(Contract, customer) is None:
        raise UnknownContract(customer)
    prefix = secrets.token_hex(PREFIX_CHARS // 2)
    key = f"{KEY_MARK}{prefix}_{secrets.token_urlsafe(32)}"
    row = ApiKey(prefix=prefix, key_hash=key_hash(key), customer=customer, source=source,
                 created_at=now or dt.datetime.now(UTC), revoked_at=None)
    session.add(row)
    session.flush()
    return IssuedKey(row, key)


def find_api_key(session: Session, presented: str) -> ApiKey | None:
    """The live key `presented` is, or None."""
    prefix = presented[len(KEY_MARK):len(KEY_MARK) + PREFIX_CHARS]
    if not presented.startswith(KEY_MARK) or len(prefix) != PREFIX_CHARS:
        return None
    row = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if row is None or row.revoked_at is not None or not hmac.compare_digest(row.key_hash, key_hash(presented)):
        return None
    return row


def list_api_keys(session: Session, customer: str | None = None) -> list[ApiKey]:
    query = select(ApiKey).order_by(ApiKey.customer, ApiKey.created_at)
    if customer is not None:
        query = query.where(ApiKey.customer == customer)
    return list(session.scalars(query))


def revoke_api_key(session: Session, prefix: str, *, now: dt.datetime | None = None) -> ApiKey:
    """Revokes the key with this prefix (revoking a revoked key keeps its first revocation time)."""
    row = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix).with_for_update())
    if row is None:
        raise Refused(Refusal("unknown-api-key", f"no API key with prefix '{prefix}'", params={"prefix": prefix}))
    if row.revoked_at is None:
        row.revoked_at = now or dt.datetime.now(UTC)
    return row
