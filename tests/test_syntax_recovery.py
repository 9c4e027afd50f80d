"""Syntax errors are each reported, with line and column (dsl/parse.py recovers from each with Lark's
`on_error`, in panic mode), and recovery never changes or invents the first one."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from lark.exceptions import UnexpectedInput

from dsl.compile import compile_source
from dsl.parse import parse, parser, syntax_diagnostic

CONTRACTS = Path(__file__).resolve().parents[1] / "contracts"
EXAMPLES = {path.stem: path.read_text(encoding="utf-8") for path in sorted(CONTRACTS.glob("*.pricing"))}
ACME = EXAMPLES["acme-health"]


def positions(text: str) -> list[tuple[int, int, str]]:
    return [(d.span.line, d.span.column, d.code) for d in compile_source(text.encode(), "t").diagnostics]


def line_of(text: str, fragment: str) -> int:
    return text[: text.index(fragment)].count("\n") + 1


def test_two_slips_far_apart_are_both_reported():
    text = ACME.replace("currency GBP", "currency GBP $").replace(
        "minimum 5_000.00 monthly on standard", "minimum 5_000.00 monthy on standard")
    found = positions(text)
    assert found == [(line_of(text, "currency GBP $"), text.split("\n")[line_of(text, "GBP $") - 1].index("$") + 1,
                      "syntax"),
                     (line_of(text, "monthy"), text.split("\n")[line_of(text, "monthy") - 1].index("monthy") + 1,
                      "syntax")]


def test_a_missing_brace_is_one_error_and_what_follows_is_still_read():
    missing = ACME.replace("minimum 5_000.00 monthly on standard, expedited\n    }",
                           "minimum 5_000.00 monthly on standard, expedited\n")
    assert positions(missing) == [(line_of(missing, 'site "lds-02"'), 5, "syntax")]
    # a slip after the missing brace is reported too: the parser took the site line up again
    both = missing.replace("rate expedited 1.25", "rate expedited")
    assert [p[0] for p in positions(both)] == [line_of(both, 'site "lds-02"'), line_of(both, "disable review")]


def test_an_extra_brace_is_one_error():
    extra = ACME.replace("minimum 5_000.00 monthly on standard, expedited\n    }",
                         "minimum 5_000.00 monthly on standard, expedited\n    }\n    }")
    assert positions(extra) == [(line_of(extra, 'site "lds-02"'), 5, "syntax")]


def test_an_unterminated_string_does_not_hide_a_later_slip():
    text = ACME.replace('"Acme Health Ltd"', '"Acme Health Ltd').replace("cap 60_000.00 yearly", "cap yearly")
    assert [(line, code) for line, _, code in positions(text)] == [(line_of(text, "customer"), "syntax"),
                                                                   (line_of(text, "cap yearly"), "syntax")]


def test_a_contract_with_syntax_errors_has_no_tree_and_a_correct_one_none_of_them():
    tree, diagnostics = parse(ACME.replace("rate 0.85", "rate"))
    assert tree is None and len(diagnostics) == 1
    for text in EXAMPLES.values():
        tree, diagnostics = parse(text)
        assert tree is not None and diagnostics == []


def mutations(seed: int, count: int):
    """Single slips in the example contracts: a word deleted, repeated or replaced by another of the file."""
    rng = random.Random(seed)
    for _ in range(count):
        text = rng.choice(list(EXAMPLES.values()))
        words = list(re.finditer(r'"[^"\n]*"|\S+', text))
        word, other = rng.choice(words), rng.choice(words)
        yield rng.choice((
            text[: word.start()] + text[word.end():],
            text[: word.start()] + word.group() + " " + text[word.start():],
            text[: word.start()] + other.group() + text[word.end():],
        ))


def first_error_without_recovery(text: str):
    try:
        parser().parse(text)
    except UnexpectedInput as exc:
        return syntax_diagnostic(exc, text)
    return None


@pytest.mark.parametrize("seed", range(4))
def test_recovery_keeps_the_first_error_and_one_slip_is_mostly_one_error(seed):
    reported = []
    for text in mutations(seed, 150):
        first = first_error_without_recovery(text)
        tree, diagnostics = parse(text)
        if first is None:
            assert diagnostics == [] and tree is not None
            continue
        assert diagnostics[0] == first              # the error a parser without recovery reports, unchanged
        assert all(d.code == "syntax" for d in diagnostics) and tree is None
        assert [d.span for d in diagnostics] == sorted(d.span for d in diagnostics)   # in text order
        reported.append(len(diagnostics))
    # One slip, one error: a cascade of errors from one slip is the exception (a brace swapped for a word
    # can leave the braces truly unbalanced: then the end of the file is a second, true, error).
    assert reported and sum(1 for n in reported if n > 1) <= len(reported) // 10
    assert max(reported) <= 3
