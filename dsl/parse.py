"""Text to syntax tree. The transformer only builds nodes; checks come later.

Syntax errors become diagnostics with the position of the offending token and
a message in the contract's own words ("expected a date (YYYY-MM-DD)").
"""

from __future__ import annotations

import os
import re
import sys
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from lark import Lark, Token, Transformer, v_args
from lark import __version__ as LARK_VERSION
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from dsl.syntax import Block, Category, Contract, Header, NoRule, RateOverride, Site
from rules.diagnostics import Diagnostic, Span, error
from rules.pricing import Tier
from rules.registry import registry
from rules.written import Amount, DateLiteral, Ref, Scope

GRAMMAR = Path(__file__).with_name("grammar.lark")

READABLE = {
    "LBRACE": "'{'",
    "RBRACE": "'}'",
    "COMMA": "','",
    "STRING": 'a quoted string ("…")',
    "DECIMAL": "a number",
    "DATE": "a date (YYYY-MM-DD)",
    "ID": "a category id",
    "CODE": "a currency code",
    "ALL": "'all'",
    "ROUNDING_MODE": "half_up or half_even",
    "TIER_MODE": "graduated or volume",
    "COMMIT_BILLING": "prepaid or in arrears",
    "$END": "the end of the file",
}


@lru_cache(maxsize=1)
def parser() -> Lark:
    """The LALR parser of the grammar, loaded from the user's cache when it was built before (a few
    milliseconds instead of some 30 for building it: every `billing` command that reads a contract pays it).

    Lark keys the cache on a hash of the grammar and the options, so a changed grammar is built again."""
    return Lark(GRAMMAR.read_text(encoding="utf-8"), parser="lalr", propagate_positions=True,
                cache=_cache_file() or False)


def _cache_file() -> str | None:
    """Where the built parser is kept: $XDG_CACHE_HOME/billing (~/.cache/billing), if it can be written."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    directory = Path(base) / "billing"
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    if not os.access(directory, os.W_OK):
        return None
    return str(directory / f"pricing-grammar-lark{LARK_VERSION}-py{sys.version_info[0]}{sys.version_info[1]}.cache")


def _keywords() -> frozenset[str]:
    """Every lower-case word the grammar spells out: `rate`, `all`, `half_up`, …"""
    words = set()
    for terminal in parser().terminals:
        pattern = terminal.pattern
        if pattern.type == "str" and pattern.value.isidentifier():
            words.add(pattern.value)
        elif terminal.name in ("ALL", "ROUNDING_MODE", "TIER_MODE", "COMMIT_BILLING"):
            words.update(re.findall(r"[a-z_]{2,}", pattern.value))
    return frozenset(words)


KEYWORDS = _keywords()


def _span(token: Token) -> Span:
    return Span(token.line, token.column, token.end_line, token.end_column)


def _unquote(text: str) -> str:
    return text[1:-1].replace('\\"', '"').replace("\\\\", "\\")


@v_args(meta=True)
class _Build(Transformer):
    """Builds nodes: core ones here, rule primitives through the registry."""

    def __init__(self):
        super().__init__(visit_tokens=True)
        self.primitives = registry()

    # terminals
    def STRING(self, token):
        return token.update(value=_unquote(str(token)))

    def DECIMAL(self, token):
        return Amount(Decimal(str(token).replace("_", "")), _span(token))

    def DATE(self, token):
        return DateLiteral(str(token), _span(token))

    def ID(self, token):
        return Ref(str(token), _span(token))

    # structure
    def start(self, meta, children):
        return children[0]

    def contract(self, meta, children):
        name, *items = children
        return Contract(
            id=str(name),
            id_span=_span(name),
            headers=tuple(i for i in items if isinstance(i, Header)),
            categories=tuple(i for i in items if isinstance(i, Category)),
            defaults=next((i for i in items if isinstance(i, Block) and i.name == "defaults"), None),
            sites=tuple(i for i in items if isinstance(i, Site)),
            span=Span.of(meta),
            account=next((i for i in items if isinstance(i, Block) and i.name == "account"), None),
        )

    def _header(key):
        def build(self, meta, children):
            value = children[0]
            value_span = value.span if hasattr(value, "span") else _span(value)
            return Header(key, value if isinstance(value, DateLiteral) else str(value), value_span, Span.of(meta))

        return build

    customer = _header("customer")
    currency = _header("currency")
    starts = _header("starts")
    ends = _header("ends")
    timezone = _header("timezone")
    rounding = _header("rounding")

    def category(self, meta, children):
        ref, label, price = children
        return Category(ref.name, ref.span, str(label), price, Span.of(meta))

    def tiered(self, meta, children):
        mode, *tiers = children
        return self.primitives[str(mode)].build(tiers, Span.of(meta))

    def tier(self, meta, children):
        return Tier(children[0], children[1], Span.of(meta))

    def last_tier(self, meta, children):
        return Tier(None, children[0], Span.of(meta))

    def defaults(self, meta, children):
        return Block("defaults", tuple(children), Span.of(meta))

    def account(self, meta, children):
        return Block("account", tuple(children), Span.of(meta))

    def site(self, meta, children):
        site_id = children[0]
        has_name = len(children) > 1 and isinstance(children[1], Token)
        name = str(children[1]) if has_name else str(site_id)
        rules = tuple(children[2:] if has_name else children[1:])
        return Site(str(site_id), _span(site_id), name, Block(f"site {site_id}", rules, Span.of(meta)), Span.of(meta))

    def rate_override(self, meta, children):
        ref, price = children
        if isinstance(price, Amount):
            price = self.primitives["flat_rate"].build([price], price.span)
        return RateOverride(ref, price, Span.of(meta))

    def no_minimum(self, meta, children):
        return NoRule("minimum", Span.of(meta))

    def no_cap(self, meta, children):
        return NoRule("cap", Span.of(meta))

    def scope(self, meta, children):
        is_all = len(children) == 1 and isinstance(children[0], Token) and children[0].type == "ALL"
        return Scope(is_all, () if is_all else tuple(children), Span.of(meta))

    def __default__(self, data, children, meta):
        return self.primitives[str(data)].build(children, Span.of(meta))


def _expected(names) -> str:
    words = []
    for name in sorted(names):
        if name in READABLE:
            words.append(READABLE[name])
        elif name.lower() in KEYWORDS:
            words.append(f"'{name.lower()}'")
        else:
            words.append(name.lower())
    return ", ".join(dict.fromkeys(words))


def syntax_diagnostic(exc: UnexpectedInput, text: str) -> Diagnostic:
    line, column = max(exc.line, 1), max(exc.column, 1)
    if isinstance(exc, UnexpectedCharacters):
        char = text[exc.pos_in_stream] if exc.pos_in_stream < len(text) else ""
        hint = " (strings are one line in double quotes; only \\\" and \\\\ are escapes)" if char == '"' else ""
        return error("syntax", Span(line, column, line, column + 1), f"syntax error: unexpected character {char!r}{hint}")
    if isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken) and exc.token.type == "$END"):
        expected = _expected(exc.expected)
        last = text.rstrip().splitlines() or [""]
        line, column = len(last), len(last[-1]) + 1
        return error("syntax", Span(line, column, line, column), f"syntax error: the file ends too early; expected {expected}")
    token = exc.token
    found = str(token)
    message = f"syntax error: unexpected {found!r}; expected {_expected(exc.expected)}"
    if found in KEYWORDS and "ID" in exc.expected:
        message += f" ('{found}' is a keyword and cannot be used as a category id)"
    elif token.type in ("CUSTOMER", "CURRENCY", "STARTS", "ENDS", "TIMEZONE", "ROUNDING", "CATEGORY", "DEFAULTS"):
        message += (" (a contract lists its header lines first, then categories, then defaults, then sites, "
                    "then its account block)")
    return error("syntax", Span(line, column, token.end_line or line, token.end_column or column + 1), message)


def parse(text: str) -> tuple[Contract | None, list[Diagnostic]]:
    """The syntax tree of a contract, or None and the syntax error."""
    try:
        tree = parser().parse(text)
    except UnexpectedInput as exc:
        return None, [syntax_diagnostic(exc, text)]
    try:
        return _Build().transform(tree), []
    except VisitError as exc:  # a number too large for Decimal's context, and the like
        meta = getattr(exc.obj, "meta", None) or exc.obj
        span = Span(getattr(meta, "line", 1), getattr(meta, "column", 1), getattr(meta, "line", 1), getattr(meta, "column", 1))
        return None, [error("syntax", span, f"syntax error: {exc.orig_exc}")]
