"""Text to syntax tree. The transformer only builds nodes; checks come later.

Syntax errors become diagnostics with the position of the offending token and
a message in the contract's own words ("expected a date (YYYY-MM-DD)").

The parser recovers from a syntax error (Lark's `on_error`, panic mode) so that
each mistake in a contract is reported, with its line and column:

  - the error is reported, and the offending token skipped;
  - tokens are skipped until one that starts a line of the language (`site`,
    `category`, `minimum`, `cap`, a header, `}`…); the parser then drops the
    part-read construct (pops its states) to where that token fits, and goes on;
  - an error at the token right after a skipped one is part of the same mistake,
    not reported again (no cascade of errors from one slip).

A contract with syntax errors has no syntax tree, so the checks of §5 are not run
until the syntax is right: they are reported at the next compile.
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
    elif token.type in ("CUSTOMER", "CURRENCY", "STARTS", "ENDS", "TIMEZONE", "ROUNDING", "CATEGORY", "DEFAULTS") \
            and set(exc.expected) & set(SYNCHRONIZING.values()):   # between two lines, not inside one
        message += (" (a contract lists its header lines first, then categories, then defaults, then sites, "
                    "then its account block)")
    return error("syntax", Span(line, column, token.end_line or line, token.end_column or column + 1), message)


# Words that start a construct of the language: where the parser takes up again after a syntax error.
SYNCHRONIZING = {word: word.upper() for word in (
    "customer", "currency", "starts", "ends", "timezone", "rounding", "category", "defaults", "site", "account",
    "minimum", "cap", "no", "rate", "disable", "enable", "included", "active", "commit")} | {"}": "RBRACE"}
MAX_SYNTAX_ERRORS = 50
_BETWEEN_TOKENS = re.compile(r"(?:\s|#[^\n]*)*")
_TEXT_TOKEN = re.compile(r'"(?:\\.|[^"\\\n])*"|#[^\n]*|[A-Za-z_][A-Za-z0-9_]*|[^\s]')


class _Recovery:
    """Lark's `on_error` handler (panic mode): records each syntax error once, then puts the parser back on
    its feet at the next word that starts a construct, dropping what it had half read of the current block."""

    def __init__(self, text: str):
        self.text = text
        self.diagnostics: list[Diagnostic] = []
        self.skipped_to: int | None = None   # where the text skipped after the last error ends

    def __call__(self, exc: UnexpectedInput) -> bool:
        start, end = _extent(exc, self.text)
        if not self._same_mistake(start):
            self.diagnostics.append(syntax_diagnostic(exc, self.text))
        if end is None or len(self.diagnostics) >= MAX_SYNTAX_ERRORS:   # the end of the file: nothing to resume
            return False
        interactive = exc.interactive_parser
        nested = 0
        if isinstance(exc, UnexpectedToken):
            if _repair(interactive, exc.token, self._first_on_line(start)):
                self.skipped_to = end   # an error at the very next token is still part of this one
                return True
            if exc.token.type == "LBRACE":      # a block where none belongs: skipped whole
                nested = 1
        self.skipped_to = self._skip(interactive, max(end, interactive.lexer_thread.state.line_ctr.char_pos), nested)
        return True

    def _skip(self, interactive, position: int, nested: int) -> int:
        """Skip the text from `position` to the next word that starts a construct the current block can take
        (a `}` closing it included; blocks opened in the skipped text are skipped whole). Returns where."""
        lexer = interactive.lexer_thread.state.line_ctr
        for word in _TEXT_TOKEN.finditer(self.text, position):
            text = word.group()
            if text == "{":
                nested += 1
                continue
            if nested and text == "}":
                nested -= 1
                continue
            terminal = SYNCHRONIZING.get(text)
            if nested or terminal is None:
                continue
            if _take_up(interactive, terminal) or (
                    terminal != "RBRACE" and self._first_on_line(word.start()) and _close_missing(interactive, terminal)):
                lexer.feed(self.text[lexer.char_pos:word.start()])
                return word.start()
            if terminal == "RBRACE":    # it closes the block being read, whatever was half read in it
                _close_block(interactive)
        lexer.feed(self.text[lexer.char_pos:])   # nothing to take up again: the rest of the file is skipped
        return len(self.text)

    def _first_on_line(self, start: int) -> bool:
        return not self.text[self.text.rfind("\n", 0, start) + 1:start].strip()

    def _same_mistake(self, start: int) -> bool:
        """Whether an error follows right after the text skipped for the last one (so is part of it)."""
        if self.skipped_to is None or start < self.skipped_to:
            return False
        return _BETWEEN_TOKENS.fullmatch(self.text, self.skipped_to, start) is not None


def _extent(exc: UnexpectedInput, text: str) -> tuple[int, int | None]:
    """Where the offending input starts and ends in the text (end None: the end of the file)."""
    if isinstance(exc, UnexpectedCharacters):
        return exc.pos_in_stream, exc.pos_in_stream + 1
    token = getattr(exc, "token", None)
    if isinstance(exc, UnexpectedEOF) or token is None or token.type == "$END":
        return len(text), None
    return token.start_pos, token.end_pos


def _repair(interactive, token: Token, first_on_line: bool) -> bool:
    """Take the offending token as it is, where that is likely what was meant: after a missing `{`
    (`site "x"` then a rule), as a word that starts a construct of the block being read (the half-read
    construct before it dropped), or, first on its line, after a missing `}` (a `site` line inside the
    previous site)."""
    if "LBRACE" in interactive.choices() and _feeds(interactive, len(interactive.parser_state.state_stack),
                                                    "LBRACE", token.type):
        interactive.feed_token(Token("LBRACE", "{"))
    elif token.type not in SYNCHRONIZING.values():
        return False
    elif not _take_up(interactive, token.type) and not (
            first_on_line and token.type != "RBRACE" and _close_missing(interactive, token.type)):
        return False
    interactive.feed_token(token)
    return True


def _close_missing(interactive, terminal: str) -> bool:
    """A missing `}`: when `terminal` fits once the block being read is closed, close it (what was half read
    in it dropped); False, and the parser unchanged, otherwise."""
    state = interactive.parser_state
    for depth in range(len(state.state_stack), _open_block(state) - 1, -1):
        if "RBRACE" in state.parse_conf.parse_table.states[state.state_stack[depth - 1]] and \
                _feeds(interactive, depth, "RBRACE", terminal):
            _pop_to(state, depth)
            interactive.feed_token(Token("RBRACE", "}"))
            return True
    return False


def _open_block(state) -> int:
    """How many parser states to keep to stay inside the innermost open block: those up to its `{`."""
    closed = 0
    for i in range(len(state.value_stack) - 1, -1, -1):
        value = state.value_stack[i]
        if isinstance(value, Token) and value.type == "RBRACE":
            closed += 1
        elif isinstance(value, Token) and value.type == "LBRACE":
            if not closed:
                return i + 2
            closed -= 1
    return 1


def _take_up(interactive, terminal: str) -> bool:
    """Drop the constructs half read in the current block (pop the parser's states, never past the block's
    `{`) until `terminal` fits; False, and the parser unchanged, when it does not fit in this block."""
    state = interactive.parser_state
    table = state.parse_conf.parse_table.states
    for depth in range(len(state.state_stack), _open_block(state) - 1, -1):
        if terminal in table[state.state_stack[depth - 1]] and _feeds(interactive, depth, terminal):
            _pop_to(state, depth)
            return True
    return False


def _close_block(interactive) -> None:
    """Drop the block being read, its `{` and what came before it in the construct that opened it."""
    state = interactive.parser_state
    _pop_to(state, max(_open_block(state) - 2, 1))


def _pop_to(state, depth: int) -> None:
    del state.state_stack[depth:]
    del state.value_stack[depth - 1:]


def _feeds(interactive, depth: int, *terminals: str) -> bool:
    """Whether, `depth` states kept, the parser would shift these terminals (LALR may reduce, then refuse)."""
    probe = interactive.copy(deepcopy_values=False)
    _pop_to(probe.parser_state, depth)
    try:
        for terminal in terminals:
            probe.feed_token(Token(terminal, ""))
    except UnexpectedInput:
        return False
    return True


def parse(text: str) -> tuple[Contract | None, list[Diagnostic]]:
    """The syntax tree of a contract, or None and every syntax error (the parser recovers from each)."""
    recovery = _Recovery(text)
    try:
        tree = parser().parse(text, on_error=recovery)
    except UnexpectedInput as exc:
        if not recovery.diagnostics:   # not one the handler saw (it always records the first)
            recovery.diagnostics.append(syntax_diagnostic(exc, text))
    if recovery.diagnostics:
        return None, recovery.diagnostics
    try:
        return _Build().transform(tree), []
    except VisitError as exc:  # a number too large for Decimal's context, and the like
        meta = getattr(exc.obj, "meta", None) or exc.obj
        span = Span(getattr(meta, "line", 1), getattr(meta, "column", 1), getattr(meta, "line", 1), getattr(meta, "column", 1))
        return None, [error("syntax", span, f"syntax error: {exc.orig_exc}")]
