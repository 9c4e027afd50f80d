"""The compiler's checks (pricing-language §5), by example.

Every file in tests/fixtures/errors/ is one small contract that starts with
comment lines saying what the compiler must report:

    # expect: LINE:COL SEVERITY CODE [WORD]

WORD, when given, must appear in that diagnostic's message (it names what is
wrong). A new case is a new file; no code changes here.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from dsl.compile import compile_source
from rules.diagnostics import Severity

FIXTURES = Path(__file__).parent / "fixtures" / "errors"
EXPECT = re.compile(r"^#\s*expect:\s*(\d+):(\d+)\s+(error|warning)\s+([a-z0-9-]+)(?:\s+(\S+))?\s*$")


def expectations(path: Path) -> list[tuple[int, int, str, str, str | None]]:
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        match = EXPECT.match(line)
        if match:
            found.append((int(match[1]), int(match[2]), match[3], match[4], match[5]))
    return found


def compile_fixture(path: Path):
    return compile_source(path.read_bytes(), path.name)


def diagnostics_as_tuples(result) -> list[tuple[int, int, str, str]]:
    return [(d.span.line, d.span.column, d.severity.value, d.code) for d in result.diagnostics]


FIXTURE_FILES = sorted(FIXTURES.glob("*.pricing"))


def test_there_are_fixtures_and_each_states_what_it_expects():
    assert len(FIXTURE_FILES) >= 40
    for path in FIXTURE_FILES:
        assert expectations(path), f"{path.name} has no '# expect:' line"


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: p.stem)
def test_fixture_reports_exactly_the_expected_diagnostics(path):
    want = Counter((line, col, severity, code) for line, col, severity, code, _ in expectations(path))
    got = Counter(diagnostics_as_tuples(compile_fixture(path)))
    # a Counter, not a set: a diagnostic said twice (a default seen through two sites) is a failure too
    assert got == want


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: p.stem)
def test_fixture_messages_name_what_is_wrong(path):
    result = compile_fixture(path)
    by_place = {(d.span.line, d.span.column, d.code): d.message for d in result.diagnostics}
    for line, col, _, code, word in expectations(path):
        message = by_place.get((line, col, code))
        assert message is not None
        if word:
            assert word.lower() in message.lower(), f"{word!r} not in {message!r}"


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: p.stem)
def test_every_message_is_a_full_sentence(path):
    for diagnostic in compile_fixture(path).diagnostics:
        message = diagnostic.message
        assert message == message.strip() and "\n" not in message
        assert len(message.split()) >= 5, message
        assert not message.endswith((":", ",", ";")), message
        for leak in ("Token(", "Tree(", "None", "Traceback", "frozenset", "Decimal("):
            assert leak not in message, message


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: p.stem)
def test_errors_stop_compilation_and_warnings_do_not(path):
    result = compile_fixture(path)
    has_error = any(severity == "error" for _, _, severity, _, _ in expectations(path))
    assert result.ok is (not has_error)
    assert (result.plan is None) is has_error


# --- targeted ---------------------------------------------------------------------

MANY_ERRORS = """\
contract "t" {
    customer "T"
    currency GBP
    starts 2026-01-15
    category a "A" rate -1.00
    category a "A again" rate 1.00
    defaults {
        cap 100.00 yearly on bogus
    }
    site "s1" { }
    site "s1" { }
}
"""


def test_all_errors_of_a_file_are_reported_in_one_run():
    result = compile_source(MANY_ERRORS.encode())
    got = {(d.span.line, d.code) for d in result.diagnostics if d.severity is Severity.ERROR}
    assert got == {
        (4, "starts-not-first"),
        (5, "negative-amount"),
        (6, "repeated-category"),
        (8, "undeclared-category"),
        (11, "repeated-site"),
    }
    assert not result.ok and result.plan is None


def test_diagnostics_come_in_text_order():
    result = compile_source(MANY_ERRORS.encode())
    places = [(d.span.line, d.span.column) for d in result.diagnostics]
    assert places == sorted(places)


WARNINGS_ONLY = """\
contract "t" {
    customer "T"
    currency GBP
    starts 2026-01-01
    category a "A" rate 1.00
    category b "B" rate 1.00
    defaults {
        disable b
    }
    site "s1" {
        minimum 1000.00 monthly on a
        cap 5000.00 yearly on a
    }
}
"""


def test_warnings_alone_leave_the_contract_ok_with_a_plan():
    result = compile_source(WARNINGS_ONLY.encode())
    codes = sorted(d.code for d in result.diagnostics)
    assert codes == ["cap-below-minimums", "category-never-billed"]
    assert all(d.severity is Severity.WARNING for d in result.diagnostics)
    assert result.ok
    assert result.plan is not None and [s.site for s in result.plan.sites] == ["s1"]


DEFAULT_CLASHES_WITH_SITE = """\
contract "t" {
    customer "T"
    currency GBP
    starts 2026-01-01
    category a "A" rate 1.00
    category b "B" rate 1.00
    defaults {
        cap 50000.00 yearly on a
    }
    site "s1" { }
    site "s2" {
        minimum 100.00 monthly on a, b
    }
}
"""


def test_a_default_rule_clashing_with_a_site_rule_is_reported_at_the_site_line():
    result = compile_source(DEFAULT_CLASHES_WITH_SITE.encode())
    errors = [d for d in result.diagnostics if d.severity is Severity.ERROR]
    assert [(d.span.line, d.span.column, d.code) for d in errors] == [(12, 9, "minimum-straddles-cap")]
    assert "line 8" in errors[0].message and "line 12" in errors[0].message


SITE_REPLACES_DEFAULT = """\
contract "t" {
    customer "T"
    currency GBP
    starts 2026-01-01
    category a "A" rate 1.00
    category b "B" rate 1.00
    defaults {
        minimum 100.00 monthly on a, b
        cap 50000.00 yearly on all
        disable b
    }
    site "s1" {
        minimum 50.00 monthly on a
        cap 10000.00 yearly on a
        enable b
        rate b 2.00
    }
}
"""


def test_site_rules_that_replace_defaults_do_not_clash_with_them():
    # the site's minimum replaces the default minimum, its cap the default cap, its enable the disable
    result = compile_source(SITE_REPLACES_DEFAULT.encode())
    assert result.diagnostics == ()
    assert result.ok


def test_the_spec_example_contract_compiles_without_diagnostics():
    text = (Path(__file__).resolve().parent / "fixtures" / "examples" / "acme-health" / "contract.pricing").read_bytes()
    result = compile_source(text)
    assert result.diagnostics == ()
    assert result.plan is not None


def test_a_file_that_is_not_utf8_is_one_error_not_a_crash():
    data = b'contract "t" {\n    customer "Caf\xe9"\n}\n'
    result = compile_source(data)
    assert [(d.span.line, d.severity.value, d.code) for d in result.diagnostics] == [(2, "error", "not-utf8")]
    assert "UTF-8" in result.diagnostics[0].message


UNIT_MINIMUM_ON_DISABLED = """\
contract "t" {
    customer "T"
    currency GBP
    starts 2026-01-01
    category a "A" rate 1.00
    site "s1" {
        minimum 100 units monthly on a
        disable a
    }
    site "s2" { }
}
"""


def test_warning_for_a_unit_minimum_on_a_disabled_category_does_not_claim_it_is_billed():
    # spec §4.4: a unit minimum on a disabled category is 0, so the warning must not say it is billed in full
    result = compile_source(UNIT_MINIMUM_ON_DISABLED.encode())
    warnings = [d for d in result.diagnostics if d.code == "minimum-on-disabled"]
    assert [(d.span.line, d.span.column) for d in warnings] == [(6, 10)]
    assert "billed in full" not in warnings[0].message
