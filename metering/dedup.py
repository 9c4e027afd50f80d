"""Deduplication by (source, id): the first event read wins; a repeat is a duplicate or a conflict.

Only a fingerprint per identity is kept (`metering.events.fingerprint`, a 64-bit
hash of time, customer, site, category and quantity), so memory grows with the
number of distinct events, never with their content. Identities are kept per
source, so a key is the event's own id string and no joined copy is made.
"""

from __future__ import annotations

from metering.events import Event

DUPLICATE = "duplicate"
CONFLICT = "conflict"


class Deduplicator:
    def __init__(self) -> None:
        self.by_source: dict[str, dict[str, int]] = {}  # source → id → fingerprint of the first event read

    def classify(self, event: Event) -> str | None:
        """None for a first sighting (counted), else DUPLICATE or CONFLICT (not counted)."""
        ids = self.by_source.setdefault(event.source, {})
        first = ids.get(event.id)
        if first is None:
            ids[event.id] = event.fingerprint
            return None
        return DUPLICATE if first == event.fingerprint else CONFLICT

    def __len__(self) -> int:
        return sum(map(len, self.by_source.values()))
