"""Usage events (interfaces §1): CloudEvents 1.0 as JSON Lines or CSV, read line by line.

Every line yields either an `Event` or a `Rejection` that names the file, the
line and the reason; a bad line never stops the others.
"""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Iterator

import msgspec

CSV_HEADER = ["id", "source", "type", "time", "customer", "site", "category", "quantity"]


class EventData(msgspec.Struct):
    customer: str
    site: str
    category: str
    quantity: Decimal = Decimal(1)


class Event(msgspec.Struct):
    specversion: str
    id: str
    source: str
    type: str
    time: Annotated[dt.datetime, msgspec.Meta(tz=True)]
    data: EventData

    @property
    def identity(self) -> str:
        return f"{self.source}\x1f{self.id}"

    @property
    def fingerprint(self) -> int:
        """What a repeat must match to be a duplicate rather than a conflict (time as an instant, quantity as a decimal)."""
        d = self.data
        return hash((self.time, d.customer, d.site, d.category, d.quantity))


@dataclass(frozen=True)
class Rejection:
    file: str
    line: int
    reason: str        # one short category, for summaries: "malformed JSON", "bad quantity", …
    detail: str        # what exactly is wrong, for the person fixing the file
    text: str = ""

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: rejected: {self.detail}"


_DECODER = msgspec.json.Decoder(Event)


def _explain(exc: Exception) -> tuple[str, str]:
    message = str(exc)
    if isinstance(exc, msgspec.DecodeError) and not isinstance(exc, msgspec.ValidationError):
        return "malformed JSON", f"not a JSON object ({message})"
    where = message.rsplit(" - at `$", 1)
    path = where[1].rstrip("`").lstrip(".") if len(where) == 2 else ""
    text = where[0]
    if text.startswith("Object missing required field"):
        field = text.split("`")[1]
        full = f"{path}.{field}" if path else field
        return "missing field", f"missing required field '{full}'"
    if path == "time":
        return "bad time", "time must be an RFC 3339 timestamp with an offset or Z, such as 2026-05-03T10:15:00Z"
    if path == "data.quantity":
        return "bad quantity", "quantity must be a non-negative decimal number (a JSON number or a string)"
    return "bad field", f"{path or 'event'}: {text[0].lower() + text[1:]}"


def _validate(event: Event) -> tuple[str, str] | None:
    if event.specversion != "1.0":
        return "bad field", f"specversion must be \"1.0\", not {event.specversion!r}"
    for name, value in (("id", event.id), ("source", event.source), ("data.customer", event.data.customer),
                        ("data.site", event.data.site), ("data.category", event.data.category)):
        if not value:
            return "missing field", f"{name} is empty"
    quantity = event.data.quantity
    if not quantity.is_finite():
        return "bad quantity", f"quantity {quantity} is not a finite decimal number"
    if quantity < 0:
        return "bad quantity", f"quantity {quantity} is negative; usage quantities are 0 or more"
    return None


def decode_json_event(raw: bytes) -> Event | tuple[str, str]:
    try:
        event = _DECODER.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        return _explain(exc)
    return _validate(event) or event


def _jsonl(path: Path, name: str) -> Iterator[tuple[int, Event | Rejection]]:
    with path.open("rb") as stream:
        for number, raw in enumerate(stream, 1):
            if not raw.strip():
                continue
            result = decode_json_event(raw)
            if isinstance(result, tuple):
                yield number, Rejection(name, number, *result, _text(raw))
            else:
                yield number, result


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace").rstrip("\r\n")


def event_from_row(row: dict[str, str]) -> Event | tuple[str, str]:
    for field in ("id", "source", "type", "time", "customer", "site", "category"):
        if not row.get(field):
            return "missing field", f"missing required field '{field}'"
    try:
        time = dt.datetime.fromisoformat(row["time"])
    except ValueError:
        time = None
    if time is None or time.tzinfo is None:
        return "bad time", "time must be an RFC 3339 timestamp with an offset or Z, such as 2026-05-03T10:15:00Z"
    try:
        quantity = Decimal(row["quantity"]) if row.get("quantity") else Decimal(1)
    except InvalidOperation:
        return "bad quantity", "quantity must be a non-negative decimal number"
    event = Event("1.0", row["id"], row["source"], row["type"], time,
                  EventData(row["customer"], row["site"], row["category"], quantity))
    return _validate(event) or event


def _csv(path: Path, name: str) -> Iterator[tuple[int, Event | Rejection]]:
    with path.open("rb") as stream:
        header = None
        for number, raw in enumerate(stream, 1):
            try:
                text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError:
                yield number, Rejection(name, number, "not UTF-8", "the line is not UTF-8 text", _text(raw))
                continue
            if not text.strip():
                continue
            cells = next(csv.reader([text]))
            if header is None:
                header = [c.strip() for c in cells]
                if header != CSV_HEADER:
                    yield number, Rejection(name, number, "bad header",
                                            f"the CSV header must be {','.join(CSV_HEADER)}", text.rstrip())
                    return
                continue
            if len(cells) != len(header):
                yield number, Rejection(name, number, "malformed CSV",
                                        f"expected {len(header)} columns, found {len(cells)}", text.rstrip())
                continue
            result = event_from_row(dict(zip(header, cells)))
            if isinstance(result, tuple):
                yield number, Rejection(name, number, *result, text.rstrip())
            else:
                yield number, result


def read_events(path: str | Path) -> Iterator[tuple[int, Event | Rejection]]:
    """Events of a `.jsonl`/`.json` or `.csv` file, in file order. Raises OSError if it cannot be opened."""
    path = Path(path)
    reader = _csv if path.suffix.lower() == ".csv" else _jsonl
    return reader(path, str(path))
