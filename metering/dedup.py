"""Deduplication by (source, id): the first event read wins; a repeat is a duplicate or a conflict.

Only a fingerprint per identity is kept (a 64-bit hash of time, customer, site,
category and quantity), so memory grows with the number of distinct events,
never with their content.
"""

from __future__ import annotations

from metering.events import Event

DUPLICATE = "duplicate"
CONFLICT = "conflict"


class Deduplicator:
    def __init__(self) -> None:
        self._seen: dict[str, int] = {}

    def classify(self, event: Event) -> str | None:
        """None for a first sighting (counted), else DUPLICATE or CONFLICT (not counted)."""
        key, fingerprint = event.identity, event.fingerprint
        first = self._seen.get(key)
        if first is None:
            self._seen[key] = fingerprint
            return None
        return DUPLICATE if first == fingerprint else CONFLICT

    def __len__(self) -> int:
        return len(self._seen)
