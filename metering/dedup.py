"""When a repeat of an identity (source, id) is a duplicate and when a conflict: the first event wins, and a
repeat is a duplicate when its content (time as an instant, customer, site, category, quantity as a decimal)
is the first one's, else a conflict.

    content_hash(event.time - EPOCH, event.data)   # in one process: file mode keeps one per identity
    fingerprint(event)                             # stable across processes and databases: `conflicts.fingerprint`
    differences(stored, event)                     # ["quantity"]: what a conflict changed

File mode (metering/aggregate.py) keeps only a `content_hash` per identity, so
its memory grows with the number of distinct events, never with their content;
ingest (ingest/pipeline.py) compares a repeat with the stored event, and keeps
each distinct conflicting content once, by its `fingerprint`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Context

from engine.money import decimal_text
from metering.events import Event, EventData

UTC = dt.timezone.utc

DUPLICATE = "duplicate"
CONFLICT = "conflict"
CONTENT = ("time", "customer", "site", "category", "quantity")


def content_hash(instant: dt.timedelta, data: EventData) -> int:
    """A 64-bit hash of the content, the time given as the instant since 1970 (`metering.events.EPOCH`).

    The quantity enters as an exact fraction, so 2 and 2.00 match and 2 and 2.000001 do not. Python salts the
    hashes of strings per process: a `content_hash` is only compared with others of the same process."""
    return hash((instant.days, instant.seconds, instant.microseconds, data.customer, data.site, data.category,
                 data.quantity.as_integer_ratio()))


def fingerprint(event: Event) -> str:
    """The content as 32 hex digits, the same in every process and database (1.50 and 1.5 are one quantity)."""
    data = event.data
    quantity = data.quantity   # trailing zeros dropped, rounding nothing away
    exact = quantity.normalize(Context(prec=max(28, len(quantity.as_tuple().digits))))
    text = "\x1f".join((event.time.astimezone(UTC).isoformat(), data.customer, data.site, data.category,
                        decimal_text(exact)))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def differences(stored: tuple, event: Event) -> list[str]:
    """The fields in which `event` differs from the stored (time, customer, site, category, quantity)."""
    data = event.data
    return [name for name, mine, theirs in zip(
        CONTENT, (event.time, data.customer, data.site, data.category, data.quantity), stored) if mine != theirs]
