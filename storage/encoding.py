"""Values as each database's driver takes them in bulk: the one encoding the ingest batcher, the bulk writer
(metering/bulk.py) and the column types (storage/types.py) write.

    value                      SQLite (its text, or an integer)      PostgreSQL (`COPY` text)
    Decimal("1E+1")            "10"                                   "10"              quantity_text
    2026-05-03T11:15+01:00     "2026-05-03 10:15:00.000000"           "2026-05-03T10:15:00Z"   instant_text
    date(2026, 5, 3)           "2026-05-03"                           "2026-05-03"      day.isoformat()
    True / False               1 / 0                                  "t" / "f"         FLAG
    "a\\tb"                    "a\\tb"                                "a\\\\tb" (escaped)  copy_text
    ["a", "b"]                 (a row each)                           '{"a","b"}'       array_text

A quantity keeps its digits and scale (1.50 stays 1.50: what NUMERIC keeps, and
`ExactDecimal` on SQLite), never an exponent. An instant is written in UTC;
SQLite's text is what `UTCDateTime` writes and reads back. tests/db/test_encoding.py
writes every kind through the bulk writer and reads it back through the ORM.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from itertools import compress, repeat
from operator import attrgetter, gt, is_not
from typing import Sequence

import msgspec

from engine.money import decimal_text

UTC = dt.timezone.utc
FLAG = {"sqlite": (0, 1), "postgresql": ("f", "t")}   # a boolean, False then True, as each driver takes it here

_encode = msgspec.json.encode
_ZONE_OF = attrgetter("tzinfo")


def quantity_text(quantity: Decimal) -> str:
    """A decimal's digits and scale, without an exponent (`engine.money.decimal_text`; `str` where that is the
    same, which it nearly always is)."""
    text = str(quantity)
    return text if "E" not in text and text[0] != "-" else decimal_text(quantity)


def quantity_texts(quantities: list[Decimal]) -> list[str]:
    """`quantity_text` of each, in one pass where none has an exponent or a sign (the common case)."""
    texts = list(map(str, quantities))
    joined = "".join(texts)
    if "E" in joined or "-" in joined:
        return list(map(quantity_text, quantities))
    return texts


def sqlite_time(time: dt.datetime) -> str:
    """An instant as SQLite keeps it: UTC text with microseconds, no offset. A naive time is refused."""
    if time.tzinfo is not UTC:
        if time.tzinfo is None:
            raise ValueError(f"a timestamp must carry its offset: {time.isoformat()}")
        time = time.astimezone(UTC)
    return time.isoformat(" ", "microseconds")[:-6]   # without "+00:00"


def postgresql_time(time: dt.datetime) -> str:
    """An instant in UTC as PostgreSQL parses it, written as `utc_texts` writes it."""
    return _encode(time.astimezone(UTC))[1:-1].decode()


TIME_TEXT = {"sqlite": sqlite_time, "postgresql": postgresql_time}


def instant_text(backend: str, time: dt.datetime) -> str:
    return TIME_TEXT[backend](time)


def utc_texts(backend: str, times: list[dt.datetime]) -> list[str]:
    """The instants as the database takes them, all at once: msgspec writes a list of UTC datetimes as RFC 3339
    text ("2026-05-03T10:15:00Z", or "…:00.250000Z") in one call, a few per cent of what `isoformat` costs, and
    SQLite's form ("2026-05-03 10:15:00.000000", as `sqlite_time`) is a few replacements of that text.

    A time with another offset is moved to UTC first (msgspec would write its offset, or drop one of seconds)."""
    if not times:
        return []
    zones = list(map(_ZONE_OF, times))
    if zones.count(UTC) < len(times):
        times = list(times)
        for position in compress(range(len(times)), map(is_not, zones, repeat(UTC))):
            times[position] = times[position].astimezone(UTC)
    body = _encode(times)[2:-2].decode()   # without '["' and '"]'
    if backend != "sqlite":
        return body.split('","')
    fractions = body.count(".")
    if fractions == len(times):
        return body.replace("Z", "").replace("T", " ").split('","')
    texts = body.replace("Z", ".000000").replace("T", " ").split('","')
    if fractions:   # those with a fraction of a second now have two: the first is theirs
        for position in compress(range(len(texts)), map(gt, map(len, texts), repeat(26))):
            texts[position] = texts[position][:26]
    return texts


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})
COPY_SPECIAL = "\t\r\\"   # what a value must not hold to go into COPY text as it is (newlines: see `copy_text`)


def copy_text(columns: Sequence[Sequence]) -> str:
    """Rows, given column by column, as PostgreSQL's `COPY … FROM STDIN` text: tab-separated values, a line
    each. The values are texts already (this module's), or integers; a column is escaped only when one of its
    values holds a tab, a newline, a carriage return or a backslash (each column is one pass that loops in C)."""
    texts = []
    for values in columns:
        try:
            joined = "".join(values)
        except TypeError:   # integers
            values = list(map(str, values))
            joined = "".join(values)
        if "\n" in joined or any(c in joined for c in COPY_SPECIAL):
            values = [value.translate(_COPY_ESCAPES) for value in values]
        texts.append(values)
    if not texts or not texts[0]:
        return ""
    return "\n".join(map("\t".join, zip(*texts))) + "\n"


_ARRAY_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"'})


def array_text(values: Sequence) -> str:
    """Values (texts of this module's, or integers) as one PostgreSQL array literal, every element quoted: a
    column passed as a single parameter (`CAST(%s AS DATE[])`) where the driver would write each element."""
    try:
        joined = '","'.join(values)
    except TypeError:   # integers
        return "{" + ",".join(map(str, values)) + "}"
    if "\\" in joined or joined.count('"') != 2 * (len(values) - 1):
        joined = '","'.join(value.translate(_ARRAY_ESCAPES) for value in values)
    return '{"' + joined + '"}' if values else "{}"
