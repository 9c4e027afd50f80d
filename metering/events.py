"""Usage events (interfaces §1): CloudEvents 1.0 as JSON Lines or CSV, read line by line.

Every line yields either an `Event` or a `Rejection` that names the file, the
line and the reason; a bad line never stops the others.

A JSON Lines file is read in chunks of whole lines, and each chunk's lines are
decoded straight into valid `Event`s, the checks made by the decoder itself.
Only a chunk with a line that is not a valid event (or is blank) goes line by
line through `decode_json_event`, which says in words what is wrong; so what a
line yields never depends on its neighbours.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from operator import attrgetter
from pathlib import Path
from typing import Annotated, Iterator, Literal

import msgspec

CSV_HEADER = ["id", "source", "type", "time", "customer", "site", "category", "quantity"]
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)

# The longest id, source and type, and the longest customer, site and category name, in characters
# (docs/decisions.md); the OpenAPI document says the same (admin_app/openapi.py).
ID_LENGTH = 256
NAME_LENGTH = 128
# A quantity written as a string is a decimal number as JSON writes one, but for a leading + or . (interfaces §1):
# no spaces, no underscores, no "NaN" or "Infinity".
QUANTITY_PATTERN = r"^\+?[0-9]*\.?[0-9]+([eE][+-]?[0-9]+)?$"
_QUANTITY_TEXT = re.compile(QUANTITY_PATTERN)
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=ID_LENGTH)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=NAME_LENGTH)]
Instant = Annotated[dt.datetime, msgspec.Meta(tz=True)]


# Decoding into these types checks all that `_validate` checks but the quantity.
# Events hold only strings, dates and numbers and cannot form reference cycles:
# gc=False keeps a decoded batch out of the garbage collector's passes.
class EventData(msgspec.Struct, gc=False):
    customer: Name
    site: Name
    category: Name
    quantity: Decimal = Decimal(1)


class Event(msgspec.Struct, gc=False):
    specversion: Literal["1.0"]
    id: Id
    source: Id
    type: Annotated[str, msgspec.Meta(max_length=ID_LENGTH)]
    time: Instant
    data: EventData


# The same shapes with no checks, to decode a bad line far enough to say what is wrong with it: the time as
# written (msgspec would round a seventh fractional digit), the quantity as written (a number or a string).
class _DataAsWritten(msgspec.Struct):
    customer: str
    site: str
    category: str
    quantity: msgspec.Raw = msgspec.Raw(b"1")


class _AsWritten(msgspec.Struct):
    specversion: str
    id: str
    source: str
    type: str
    time: str
    data: _DataAsWritten


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
_ARRAY_DECODER = msgspec.json.Decoder(list[Event])
_AS_WRITTEN = msgspec.json.Decoder(_AsWritten)


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
        return _BAD_TIME
    if path == "data.quantity":
        return _BAD_QUANTITY
    return "bad field", f"{path or 'event'}: {text[0].lower() + text[1:]}"


# Limits that keep every sum and product exact in the engine's 60-digit arithmetic
# (engine/money.py) and every period computable; no real meter comes near them.
QUANTITY_LIMIT = Decimal(10) ** 24
QUANTITY_PLACES = 30
FIRST_YEAR, LAST_YEAR = 1900, 9998


def _quantity_problem(quantity: Decimal) -> tuple[str, str] | None:
    if not quantity.is_finite():
        return "bad quantity", f"quantity {quantity} is not a finite decimal number"
    if quantity < 0:
        return "bad quantity", f"quantity {quantity} is negative; usage quantities are 0 or more"
    if quantity >= QUANTITY_LIMIT:
        return "bad quantity", f"quantity {quantity} is too large; a quantity stays below 10^24"
    if quantity.as_tuple().exponent < -QUANTITY_PLACES:
        return "bad quantity", f"quantity {quantity} has more than {QUANTITY_PLACES} decimal places"
    return None


_BAD_TIME = "bad time", "time must be an RFC 3339 timestamp with an offset or Z, such as 2026-05-03T10:15:00Z"
_BAD_QUANTITY = "bad quantity", "quantity must be a non-negative decimal number (a JSON number or a string)"
_EXTRA_DIGITS = re.compile(r"(\.[0-9]{6})[0-9]+")


def parse_instant(text: str) -> dt.datetime | None:
    """An RFC 3339 timestamp with an offset, or None. Digits past the microsecond are dropped, never rounded:
    an instant rounded up could move into the next day, and so the next month (pricing-language §4.1)."""
    try:
        return msgspec.convert(_EXTRA_DIGITS.sub(r"\1", text, count=1), Instant)
    except msgspec.ValidationError:
        return None


def parse_quantity(text: str) -> Decimal | None:
    """A quantity written as a string, or None unless it is a decimal number (QUANTITY_PATTERN)."""
    if not _QUANTITY_TEXT.fullmatch(text):
        return None
    try:
        return Decimal(text)
    except InvalidOperation:   # an exponent past what Decimal holds
        return None


def _strings_problem(event: Event | _AsWritten) -> tuple[str, str] | None:
    data = event.data
    for name, value, longest in (("id", event.id, ID_LENGTH), ("source", event.source, ID_LENGTH),
                                 ("type", event.type, ID_LENGTH), ("data.customer", data.customer, NAME_LENGTH),
                                 ("data.site", data.site, NAME_LENGTH), ("data.category", data.category, NAME_LENGTH)):
        if not value and name != "type":
            return "missing field", f"{name} is empty"
        if len(value) > longest:
            return "too long", f"{name} has {len(value):,} characters; at most {longest} are taken"
        # PostgreSQL's text cannot hold a NUL: one would fail the whole batch's transaction.
        if "\x00" in value:
            return "bad field", f"{name} contains a NUL character (\\u0000)"
    return None


def _validate(event: Event | _AsWritten) -> tuple[str, str] | None:
    if event.specversion != "1.0":
        return "bad field", f"specversion must be \"1.0\", not {event.specversion!r}"
    if problem := _strings_problem(event):
        return problem
    if not FIRST_YEAR <= event.time.year <= LAST_YEAR:
        return "bad time", f"time {event.time.isoformat()} is outside the years {FIRST_YEAR}–{LAST_YEAR}"
    return _quantity_problem(event.data.quantity)


def _not_utf8(raw: bytes | msgspec.Raw) -> tuple[str, str] | None:
    """Why a line is not UTF-8 text (a file saved as Latin-1 or UTF-16, say), or None if it is."""
    data = bytes(raw)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return "not UTF-8", f"not UTF-8 text: byte {exc.start + 1} is 0x{data[exc.start]:02x} (UTF-8 is required)"
    return None


def decode_json_event(raw: bytes) -> Event | tuple[str, str]:
    try:
        written = _AS_WRITTEN.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        return _not_utf8(raw) or _explain(exc)
    except UnicodeDecodeError:
        return _not_utf8(raw) or ("not UTF-8", "the line is not UTF-8 text")
    time = parse_instant(written.time)
    if time is None:
        return _BAD_TIME
    data = written.data
    quantity = _written_quantity(data.quantity)
    if quantity is None:
        return _BAD_QUANTITY
    event = Event(written.specversion, written.id, written.source, written.type, time,
                  EventData(data.customer, data.site, data.category, quantity))
    return _validate(event) or event


def _written_quantity(raw: msgspec.Raw) -> Decimal | None:
    try:
        if bytes(raw).startswith(b'"'):
            return parse_quantity(msgspec.json.decode(raw, type=str))
        return msgspec.json.decode(raw, type=Decimal)   # a number, as written (not through a float)
    except msgspec.DecodeError:
        return None


# A few hundred events a chunk: their objects are still in the processor's cache
# when the meter sums them (a megabyte at a time was some 20% slower).
CHUNK_BYTES = 1 << 16
BATCH_EVENTS = 4096
_ZERO = Decimal(0)
_QUANTITY_OF, _YEAR_OF = attrgetter("data.quantity"), attrgetter("time.year")


def _whole_lines(stream, size: int = CHUNK_BYTES) -> Iterator[bytes]:
    """The stream's bytes in chunks of whole lines (the last one may lack its newline)."""
    parts = []
    while block := stream.read(size):
        cut = block.rfind(b"\n") + 1
        if not cut:
            parts.append(block)
            continue
        parts.append(block[:cut])
        yield b"".join(parts)
        parts = [block[cut:]]
    if tail := b"".join(parts):
        yield tail


# What the one-call decoders leave to the line-by-line one, found in the bytes: a seventh fractional digit (msgspec
# would round the time), any backslash (a \\u escape is a NUL, or a key such as "quantit\\u0079"; looking for the
# one byte is a memchr, 15 times faster than looking for the two, and events rarely hold another escape), a
# quantity string that is not a plain decimal number (msgspec would take " 5 " and "1_000").
# Three searches, each skipping to a literal of its own: one pattern of three alternatives tries every byte
# (3 times slower: a third of a file reader's time, 2 ms of an event API request of 500).
_PAST_MICROSECONDS = re.compile(rb"\.[0-9]{7}")
_ODD_QUANTITY = re.compile(rb'"quantity"\s*:\s*"(?!\+?[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?")')


def _usual(text: bytes) -> bool:
    return b"\\" not in text and _PAST_MICROSECONDS.search(text) is None and _ODD_QUANTITY.search(text) is None


def _valid_events(lines: list[bytes], text: bytes | None = None) -> list[Event] | None:
    """Each line's event, or None unless every line is a valid event. `text`: the lines' bytes as they were read
    (the chunk they were split from), searched once rather than joined again."""
    if not _usual(b"\n".join(lines) if text is None else text):
        return None
    try:
        events = list(map(_DECODER.decode, lines))
    except Exception:  # whatever it is, the line-by-line reader meets it at its line, as it always did
        return None
    return _all_valid(events)


def decode_event_array(body: bytes) -> list[Event] | None:
    """A JSON array of events (the event API's batch), or None unless every element is a valid event: then
    each goes through `decode_json_event`, which says what is wrong with it."""
    if not _usual(body):
        return None
    try:
        events = _ARRAY_DECODER.decode(body)
    except Exception:  # the element-by-element decoding says what it is
        return None
    return _all_valid(events) if events else events


def _all_valid(events: list[Event]) -> list[Event] | None:
    """The events, or None unless each is valid.

    The decoder checks all but the quantity and the year, checked here for the
    whole list at once: quantities finite (first: comparing a NaN raises), not
    negative, below the limit, with at most QUANTITY_PLACES decimals (an exact
    sum has the smallest exponent of its terms); times within the years.
    """
    quantities = list(map(_QUANTITY_OF, events))
    if (
        not all(map(Decimal.is_finite, quantities))
        or min(quantities) < _ZERO
        or max(quantities) >= QUANTITY_LIMIT
        or sum(quantities).as_tuple().exponent < -QUANTITY_PLACES
    ):
        return None
    years = list(map(_YEAR_OF, events))
    if min(years) < FIRST_YEAR or max(years) > LAST_YEAR:
        return None
    return events


def _each_line(chunk: bytes, name: str, first: int) -> Iterator[tuple[int, Event | Rejection]]:
    for number, raw in enumerate(io.BytesIO(chunk), first):
        if not raw.strip():
            continue
        result = decode_json_event(raw)
        if isinstance(result, tuple):
            yield number, Rejection(name, number, *result, _text(raw))
        else:
            yield number, result


def _jsonl(path: Path, name: str) -> Iterator[tuple[int, list[Event] | Rejection]]:
    with path.open("rb") as stream:
        if stream.read(3) != "\ufeff".encode():  # a byte-order mark is not part of the first line
            stream.seek(0)
        first = 1
        for chunk in _whole_lines(stream):
            lines = chunk.split(b"\n")
            if not lines[-1]:
                lines.pop()  # what follows the chunk's last newline
            events = _valid_events(lines, chunk)
            if events is not None:
                yield first, events
            else:
                yield from _batched(_each_line(chunk, name, first))
            first += len(lines)


def _batched(numbered: Iterator[tuple[int, Event | Rejection]]) -> Iterator[tuple[int, list[Event] | Rejection]]:
    """Runs of events on consecutive lines as lists; each rejection on its own, in file order."""
    first, events = 0, []
    for number, item in numbered:
        if events and (isinstance(item, Rejection) or number != first + len(events) or len(events) == BATCH_EVENTS):
            yield first, events
            events = []
        if isinstance(item, Rejection):
            yield number, item
            continue
        if not events:
            first = number
        events.append(item)
    if events:
        yield first, events


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace").rstrip("\r\n")


def event_from_row(row: dict[str, str]) -> Event | tuple[str, str]:
    for field in ("id", "source", "type", "time", "customer", "site", "category"):
        if not row.get(field):
            return "missing field", f"missing required field '{field}'"
    time = parse_instant(row["time"])
    if time is None:
        return _BAD_TIME
    quantity = parse_quantity(row["quantity"]) if row.get("quantity") else Decimal(1)
    if quantity is None:
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
                yield number, Rejection(name, number, *_not_utf8(raw), _text(raw))
                continue
            if not raw.strip():   # blank as in JSON Lines: ASCII whitespace only
                continue
            try:
                cells = next(csv.reader([text]))
            except csv.Error as exc:   # a carriage return inside an unquoted field, say
                yield number, Rejection(name, number, "malformed CSV", f"not a CSV row ({exc})", text.rstrip())
                continue
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


def read_batches(path: str | Path) -> Iterator[tuple[int, list[Event] | Rejection]]:
    """A `.jsonl`/`.json` or `.csv` file in file order: (first line, events on consecutive lines) or (line, rejection).

    Raises OSError if the file cannot be opened.
    """
    path = Path(path)
    if path.suffix.lower() == ".csv":
        return _batched(_csv(path, str(path)))
    return _jsonl(path, str(path))


class EventFile:
    """The (line, Event | Rejection) items of one file, in file order; read again on each iteration.

    It stays a file, not only an iterator of items, so that a consumer may read it
    another way: `ingest.pipeline.ingest_events` reads it in a worker process.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __iter__(self) -> Iterator[tuple[int, Event | Rejection]]:
        for first, batch in read_batches(self.path):
            if isinstance(batch, Rejection):
                yield first, batch
            else:
                yield from enumerate(batch, first)


def read_events(path: str | Path) -> EventFile:
    """Events of a `.jsonl`/`.json` or `.csv` file, in file order. Iterating raises OSError if it cannot be
    opened."""
    return EventFile(path)
