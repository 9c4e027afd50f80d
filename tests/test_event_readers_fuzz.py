"""Hypothesis over the JSON Lines and CSV readers (metering/events.py): whatever the lines, no traceback; every
line that is not blank gives exactly one item at its own line number, a good line its event and a bad one a
rejection with a reason and a detail. Fixed seed (derandomize) and bounded examples: deterministic and quick."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metering.events import CSV_HEADER, Event, Rejection, read_events

FUZZ = settings(derandomize=True, max_examples=150, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
NAMES = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r\x00,\""), min_size=1,
                max_size=12).filter(lambda name: name.strip() == name)
TIMES = st.datetimes(dt.datetime(2000, 1, 1), dt.datetime(2100, 1, 1), timezones=st.just(dt.timezone.utc))
QUANTITIES = st.decimals(0, 10**6, places=3, allow_nan=False, allow_infinity=False)


@st.composite
def good_events(draw) -> dict:
    return {"specversion": "1.0", "id": draw(NAMES), "source": draw(NAMES), "type": "unit",
            "time": draw(TIMES).isoformat().replace("+00:00", "Z"),
            "data": {"customer": draw(NAMES), "site": draw(NAMES), "category": draw(NAMES),
                     "quantity": str(draw(QUANTITIES))}}


def _mangled(event: dict, draw) -> dict:
    """The event with one field made wrong, or dropped."""
    event = json.loads(json.dumps(event))
    where = draw(st.sampled_from(["id", "source", "time", "specversion", "customer", "site", "category", "quantity"]))
    holder = event["data"] if where in ("customer", "site", "category", "quantity") else event
    value = draw(st.one_of(st.none(), st.integers(), st.text(max_size=8), st.just(""), st.just("x\x00y"),
                           st.just(" 5 "), st.just("1_000"), st.just("NaN"), st.just("z" * 300), st.lists(
                               st.integers(), max_size=2)))
    if value is None and draw(st.booleans()):
        del holder[where]
    else:
        holder[where] = value
    return event


JUNK = st.text(st.characters(blacklist_characters="\n"), max_size=40)


@st.composite
def jsonl_lines(draw) -> list[tuple[str, dict | None]]:
    """(line text, the event it must give or None if it must be rejected or is blank)."""
    lines = []
    for _ in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(["good", "good", "mangled", "junk"]))
        event = draw(good_events())
        if kind == "good":
            lines.append((json.dumps(event, ensure_ascii=draw(st.booleans())), event))
        elif kind == "mangled":
            lines.append((json.dumps(_mangled(event, draw)), None))
        else:
            lines.append((draw(JUNK), None))
    return lines


def _expected_event(event: dict) -> tuple:
    data = event["data"]
    return (event["id"], event["source"], dt.datetime.fromisoformat(event["time"].replace("Z", "+00:00")),
            data["customer"], data["site"], data["category"], Decimal(data["quantity"]))


def _as_tuple(event: Event) -> tuple:
    data = event.data
    return event.id, event.source, event.time, data.customer, data.site, data.category, data.quantity


def _check(path, lines: list[tuple[str, dict | None]], first_line: int) -> None:
    items = dict(read_events(path))   # line → Event | Rejection; reading raises nothing
    for number, (text, event) in enumerate(lines, first_line):
        if not text.encode("utf-8", "surrogatepass").strip():
            assert number not in items
            continue
        item = items.pop(number)
        if event is not None:
            assert isinstance(item, Event), (text, item)
            assert _as_tuple(item) == _expected_event(event)
        elif isinstance(item, Rejection):
            assert item.line == number and item.reason and item.detail and str(path) in str(item)
    assert not items, items   # no item at a line that is not in the file


@FUZZ
@given(lines=jsonl_lines())
def test_the_json_lines_reader_names_every_bad_line_and_keeps_the_good(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("jsonl") / "events.jsonl"
    path.write_bytes("".join(text + "\n" for text, _ in lines).encode("utf-8", "surrogatepass"))
    _check(path, lines, 1)


def _csv_row(event: dict) -> str:
    data = event["data"]
    return ",".join([event["id"], event["source"], event["type"], event["time"], data["customer"], data["site"],
                     data["category"], data["quantity"]])


@st.composite
def csv_lines(draw) -> list[tuple[str, dict | None]]:
    lines = []
    for _ in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(["good", "good", "mangled", "junk"]))
        event = draw(good_events())
        if kind == "good":
            lines.append((_csv_row(event), event))
        elif kind == "mangled":
            cells = _csv_row(event).split(",")
            cells[draw(st.integers(0, len(cells) - 1))] = draw(st.sampled_from(
                ["", "x\x00y", " 5 ", "1_000", "NaN", "z" * 300, "2026-01-01T00:00:00", "a\rb", '"']))
            lines.append((",".join(cells), None))
        else:
            lines.append((draw(JUNK), None))
    return lines


@FUZZ
@given(lines=csv_lines())
def test_the_csv_reader_names_every_bad_line_and_keeps_the_good(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("csv") / "events.csv"
    path.write_bytes((",".join(CSV_HEADER) + "\n" + "".join(text + "\n" for text, _ in lines))
                     .encode("utf-8", "surrogatepass"))
    _check(path, lines, 2)
