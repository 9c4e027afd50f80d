"""The compiler's checks (spec §5), one small function each, run in the order of CHECKS.

Each check reads the syntax tree and yields diagnostics; none stops the others.
A problem between two lines (a repeat, a conflict) is reported at the later one.
Rules are checked in their own block and again as each site sees them after
the defaults are applied (dsl/resolve.py), so a default that clashes with a
site's rule is caught at the site's line.

An error caused by another is not reported as its own: the checks that compare
rules (from check_block_rules on) see a rule naming an undeclared category as
`Unresolved` (its kind kept, its scope not reasoned about), so a typo such as
`on standrd, expedited` is reported once, as the undeclared category, never also
as a minimum straddling a cap or two overlapping scopes it only seems to make.
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass, replace
from decimal import Decimal
from typing import Iterable, Iterator
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dsl.parse import KEYWORDS
from dsl.resolve import Effective, categories_of, effective_rules, kind_of, per_category
from dsl.syntax import Block, Contract, NoRule, RateOverride, Unresolved
from engine.money import is_currency
from rules.diagnostics import Diagnostic, Span, error, later, warning
from rules.primitive import Context, Primitive
from rules.registry import primitive
from rules.written import Amount, DateLiteral, Ref, Scope

REQUIRED_HEADERS = ("customer", "currency", "starts")


def primitive_of(node) -> Primitive | None:
    """The primitive behind a node (None for the contract's own nodes: headers, `rate`, `no …`)."""
    name = getattr(node, "primitive", None)
    return primitive(name) if isinstance(name, str) else None


# --- the contract as a whole -------------------------------------------------


def check_headers(contract: Contract, ctx: Context) -> Iterator[Diagnostic]:
    seen = {}
    for header in contract.headers:
        if header.key in seen:
            yield error(
                "repeated-header",
                header.span,
                f"repeated header '{header.key}' (a duplicate of line {seen[header.key].span.line}); "
                f"a contract states each header line once",
            )
        else:
            seen[header.key] = header
    for key in REQUIRED_HEADERS:
        if key not in seen:
            yield error(
                "missing-header",
                contract.id_span,
                f"missing header: the contract has no '{key}' line; add it before the categories",
            )
    if not contract.categories:
        yield error("missing-category", contract.id_span, "the contract declares no category; declare at least one")


def check_header_values(contract: Contract, ctx: Context) -> Iterator[Diagnostic]:
    currency = contract.header("currency")
    if currency and not is_currency(currency.value):
        yield error(
            "unknown-currency",
            currency.value_span,
            f"unknown currency code '{currency.value}'; use an ISO 4217 code such as GBP, USD, EUR or JPY",
        )
    timezone = contract.header("timezone")
    if timezone:
        try:
            ZoneInfo(timezone.value)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # "Europe" is a folder of zones, not a zone
            yield error(
                "unknown-timezone",
                timezone.value_span,
                f"unknown timezone '{timezone.value}'; use an IANA name such as \"Europe/London\" or \"UTC\"",
            )
    starts, ends = contract.header("starts"), contract.header("ends")
    if starts and starts.value.value and starts.value.value.day != 1:
        yield error(
            "starts-not-first",
            starts.value_span,
            f"starts {starts.value.text} is not the first day of a month; the contract year starts on a "
            f"month's first day, such as {starts.value.value.replace(day=1).isoformat()}",
        )
    if starts and ends and starts.value.value and ends.value.value and ends.value.value < starts.value.value:
        yield error(
            "ends-before-starts",
            max(starts.value_span, ends.value_span),
            f"ends {ends.value.text} is before starts {starts.value.text}; the contract would bill nothing",
        )


FIRST_YEAR, LAST_YEAR = 1900, 2999
LARGEST_AMOUNT = Decimal(10) ** 18


def check_dates(contract: Contract, ctx: Context) -> Iterator[Diagnostic]:
    for node in _walk(contract):
        if not isinstance(node, DateLiteral):
            continue
        if node.value is None:
            yield error("impossible-date", node.span, f"{node.text} is not a real calendar date (impossible date)")
        elif not FIRST_YEAR <= node.value.year <= LAST_YEAR:
            yield error(
                "date-out-of-range",
                node.span,
                f"the date {node.text} is outside the years {FIRST_YEAR}–{LAST_YEAR} that contracts can bill",
            )


def check_magnitudes(contract: Contract, ctx: Context) -> Iterator[Diagnostic]:
    for node in _walk(contract):
        if isinstance(node, Amount) and abs(node.value) >= LARGEST_AMOUNT:
            yield error(
                "amount-too-large",
                node.span,
                f"the number {node.value} is too large; amounts and quantities in a contract stay below 10^18",
            )


def check_ids(contract: Contract, ctx: Context) -> Iterator[Diagnostic]:
    categories = {}
    for category in contract.categories:
        if category.id in KEYWORDS:
            yield error(
                "keyword-as-id",
                category.id_span,
                f"'{category.id}' is a keyword of the language and cannot be a category id; choose another name",
            )
        if category.id in categories:
            yield error(
                "repeated-category",
                category.id_span,
                f"repeated category '{category.id}' (a duplicate of line {categories[category.id].span.line}); "
                f"each category is declared once",
            )
        categories.setdefault(category.id, category)
    sites = {}
    for site in contract.sites:
        if site.id in sites:
            yield error(
                "repeated-site",
                site.id_span,
                f"repeated site \"{site.id}\" (a duplicate of line {sites[site.id].span.line}); "
                f"put all of a site's rules in one block",
            )
        sites.setdefault(site.id, site)


def check_references(contract: Contract, ctx: Context) -> Iterator[Diagnostic]:
    declared = set(contract.category_ids)
    for block in _blocks(contract):
        for node in _walk(block):
            if isinstance(node, Ref) and node.name not in declared:
                yield error(
                    "undeclared-category",
                    node.span,
                    f"undeclared category '{node.name}': it is unknown to this contract; declare it with `category {node.name} \"…\" rate …` "
                    f"or use one of: {', '.join(dict.fromkeys(contract.category_ids)) or 'none declared'}",
                )


def check_scope_repeats(contract: Contract, ctx: Context) -> Iterator[Diagnostic]:
    """A category named twice in one scope (`on a, a`), in any rule's scope (§5): a slip, reported at the repeat."""
    for node in _walk(contract):
        if isinstance(node, Scope):
            first: dict[str, Ref] = {}
            for ref in node.refs:
                if ref.name in first:
                    earlier = first[ref.name].span
                    yield error(
                        "repeated-in-scope",
                        ref.span,
                        f"category '{ref.name}' is named twice in this scope (first at line {earlier.line}, "
                        f"column {earlier.column}); name each category once",
                    )
                first.setdefault(ref.name, ref)


def check_primitives(contract: Contract, ctx: Context) -> Iterator[Diagnostic]:
    """Each rule and price on its own: its primitive's checks."""
    for node in _walk(contract):
        rule = primitive_of(node)
        if rule is not None:
            yield from rule.check(node, ctx)


# --- each block on its own -----------------------------------------------------


def check_block_rules(contract: Contract, ctx: Context) -> Iterator[Diagnostic]:
    for block in _blocks(contract):
        yield from _primitives_together(block)
        yield from _two_rates(block)
        yield from _no_rule_beside_rule(block)
        if block.name == "defaults":
            for rule in block.rules:
                if isinstance(rule, NoRule):
                    yield error(
                        f"no-{rule.kind}-in-defaults",
                        rule.span,
                        f"`no {rule.kind}` belongs in a site; to have no default {rule.kind}, leave it out of defaults",
                    )


def _primitives_together(block: Block) -> Iterator[Diagnostic]:
    """Each primitive's checks of the block's rules of its kind taken together (`Primitive.check_block`)."""
    together: dict = {}
    for rule in block.rules:
        declaration = primitive_of(rule)
        if declaration is not None:
            together.setdefault(declaration.check_block, []).append(rule)
    for check, rules in together.items():
        yield from check(rules)


def _two_rates(block: Block) -> Iterator[Diagnostic]:
    rated = {}
    for rule in block.rules:
        if isinstance(rule, RateOverride):
            name = rule.category.name
            if name in rated:
                yield error(
                    "two-rates",
                    rule.span,
                    f"category '{name}' is given two rates in this block (the other on line {rated[name].line}); "
                    f"keep one",
                )
            rated.setdefault(name, rule.span)


def _no_rule_beside_rule(block: Block) -> Iterator[Diagnostic]:
    for kind in dict.fromkeys(r.kind for r in block.rules if isinstance(r, NoRule)):
        nos = [r for r in block.rules if isinstance(r, NoRule) and r.kind == kind]
        rules = [r for r in block.rules if kind_of(r) == kind and not isinstance(r, NoRule)]
        for no in nos:
            for rule in rules:
                yield error(
                    f"no-{kind}-beside-{kind}",
                    later(no, rule),
                    f"`no {kind}` stands beside a {kind} in the same block (lines {min(no.span.line, rule.span.line)} "
                    f"and {max(no.span.line, rule.span.line)}); keep one of them",
                )
        for first, second in zip(nos, nos[1:]):
            yield error(f"repeated-no-{kind}", second.span, f"`no {kind}` is repeated; say it once")


# --- rules as each site sees them ---------------------------------------------


def check_scopes(contract: Contract, ctx: Context) -> Iterator[Diagnostic]:
    """Rules whose kind needs disjoint scopes (minimums, caps), and no rule a cap counts straddling a cap."""
    declared = contract.category_ids
    views = [effective_rules(contract, None)] + [effective_rules(contract, site) for site in contract.sites]
    for view in views:
        overlapping: dict[tuple[str, str], list] = {}
        for e in view:
            if _declares(e, "overlap_code"):
                overlapping.setdefault((e.kind, primitive_of(e.node).overlap_code), []).append(e.node)
        for (kind, code), rules in overlapping.items():
            yield from _disjoint(rules, declared, code, f"{kind}s")
        caps = [e for e in view if _declares(e, "cap_limit")]
        for inside in (e for e in view if _declares(e, "inside_caps")):
            scope = inside.node.scope.categories(declared)
            for cap in caps:
                covered = cap.node.scope.categories(declared)
                if scope & covered and not scope <= covered:
                    yield error(
                        f"{inside.kind}-straddles-{cap.kind}",
                        later(inside.node, cap.node),
                        f"the {inside.kind} on {_scope_text(inside.node.scope)} (line {inside.node.span.line}) "
                        f"straddles the {cap.kind} on {_scope_text(cap.node.scope)} (line {cap.node.span.line}): "
                        f"it is partly inside the {cap.kind}'s scope and partly outside; make the {inside.kind}'s "
                        f"categories all inside or all outside the {cap.kind}",
                    )


def _declares(rule: Effective, attribute: str) -> bool:
    """Whether the rule's primitive declares `attribute` (rules/primitive.py): a flag, a code or a function."""
    declaration = primitive_of(rule.node)
    return declaration is not None and bool(getattr(declaration, attribute))


def _disjoint(rules, declared, code: str, what: str) -> Iterator[Diagnostic]:
    for i, second in enumerate(rules):
        for first in rules[:i]:
            shared = first.scope.categories(declared) & second.scope.categories(declared)
            if shared:
                a, b = sorted((first, second), key=lambda r: r.span)
                yield error(
                    code,
                    b.span,
                    f"{', '.join(sorted(shared))} is in two {what} of one site (lines {a.span.line} and "
                    f"{b.span.line}); {what} of a site need disjoint scopes (overlapping {what})",
                )


def _scope_text(scope: Scope) -> str:
    return ", ".join(scope.written)


# --- the account block ---------------------------------------------------------


def check_account(contract: Contract, ctx: Context) -> Iterator[Diagnostic]:
    """In `account`: each rule kind once, and no cap below the commitment (it could never be met)."""
    if contract.account is None:
        return
    seen = {}
    for rule in contract.account.rules:
        kind = kind_of(rule)
        if kind in seen:
            yield error(
                "repeated-account-rule",
                rule.span,
                f"the account block gives its {kind.replace('_', ' ')} twice (the other on line "
                f"{seen[kind].span.line}); keep one",
            )
        seen.setdefault(kind, rule)
    cap, commitment = _account_rule(seen, "cap_limit"), _account_rule(seen, "yearly_commitment")
    if cap is not None and commitment is not None:
        limit = primitive_of(cap).cap_limit(cap)
        committed = primitive_of(commitment).yearly_commitment(commitment)
        if limit < committed:
            yield error(
                "account-cap-below-commit",
                later(cap, commitment),
                f"the account cap {limit} (line {cap.span.line}) is below the commitment {committed} "
                f"(line {commitment.span.line}): the commitment could never be met; raise the cap or lower the "
                f"commitment",
            )


def _account_rule(rules: dict, attribute: str):
    """The account block's rule whose primitive declares `attribute`, if any."""
    return next((rule for rule in rules.values() if getattr(primitive_of(rule), attribute, None)), None)


# --- warnings ------------------------------------------------------------------


def warn_cap_below_minimums(contract: Contract, ctx: Context) -> Iterator[Diagnostic]:
    declared = contract.category_ids
    for site in contract.sites:
        view = effective_rules(contract, site)
        for cap in (e.node for e in view if _declares(e, "cap_limit")):
            covered = cap.scope.categories(declared)
            limit = primitive_of(cap).cap_limit(cap)
            monthly = sum(
                (
                    primitive_of(e.node).monthly_spend(e.node)
                    for e in view
                    if _declares(e, "monthly_spend") and e.node.scope.categories(declared) <= covered
                ),
                Decimal(0),
            )
            if monthly and limit < 12 * monthly:
                yield warning(
                    "cap-below-minimums",
                    site.id_span,
                    f"site \"{site.id}\": the yearly cap {limit} on {_scope_text(cap.scope)} is below twelve "
                    f"times its monthly minimums (12 × {monthly} = {12 * monthly}); the cap will cancel minimums "
                    f"late in the year",
                )


def warn_account_cap_below_minimum(contract: Contract, ctx: Context) -> Iterator[Diagnostic]:
    if contract.account is None:
        return
    rules = {kind_of(rule): rule for rule in reversed(contract.account.rules)}
    cap, minimum = _account_rule(rules, "cap_limit"), _account_rule(rules, "monthly_spend")
    if cap is None or minimum is None:
        return
    limit, monthly = primitive_of(cap).cap_limit(cap), primitive_of(minimum).monthly_spend(minimum)
    if limit < 12 * monthly:
        yield warning(
            "account-cap-below-minimums",
            cap.span,
            f"the account's yearly cap {limit} is below twelve times its monthly minimum (12 × {monthly} = "
            f"{12 * monthly}); the cap will cancel the account minimum late in the year",
        )


def warn_minimum_all_disabled(contract: Contract, ctx: Context) -> Iterator[Diagnostic]:
    declared = contract.category_ids
    for site in contract.sites:
        view = effective_rules(contract, site)
        disabled = _disabled(view)
        for rule in (e for e in view if _declares(e, "when_disabled")):
            covered = rule.node.scope.categories(declared)
            if covered and covered <= disabled:
                yield warning(
                    "minimum-on-disabled",
                    site.id_span,
                    f"site \"{site.id}\": every category of the {rule.kind} on {_scope_text(rule.node.scope)} "
                    f"(line {rule.node.span.line}) is disabled here; {primitive_of(rule.node).when_disabled}",
                )


def _disabled(view: list[Effective]) -> set[str]:
    """The categories a site does not bill: those of the rules in force there that stop billing."""
    return {c for e in view if _declares(e, "stops_billing") for c in e.categories}


def warn_unbilled_categories(contract: Contract, ctx: Context) -> Iterator[Diagnostic]:
    billed = set()
    for site in contract.sites:
        billed |= set(contract.category_ids) - _disabled(effective_rules(contract, site))
    for category in contract.categories:
        if category.id not in billed:
            yield warning(
                "category-never-billed",
                category.id_span,
                f"category '{category.id}' is declared but no site bills it",
            )


# --- the list, in order ----------------------------------------------------------

CHECKS = (
    check_headers,
    check_header_values,
    check_dates,
    check_magnitudes,
    check_ids,
    check_references,
    check_scope_repeats,
    check_primitives,
    check_block_rules,
    check_scopes,
    check_account,
    warn_cap_below_minimums,
    warn_account_cap_below_minimum,
    warn_minimum_all_disabled,
    warn_unbilled_categories,
)

# The checks from here on compare rules with each other: they run on the contract as resolved.
RELATIONAL = CHECKS.index(check_block_rules)


def run_checks(contract: Contract, ctx: Context) -> list[Diagnostic]:
    resolved = _resolved(contract)
    return [diagnostic for i, check in enumerate(CHECKS)
            for diagnostic in check(resolved if i >= RELATIONAL else contract, ctx)]


def _resolved(contract: Contract) -> Contract:
    """The contract with each rule that names an undeclared category replaced by an `Unresolved` one."""
    declared = set(contract.category_ids)

    def unresolved(rule) -> bool:
        return any(isinstance(node, Ref) and node.name not in declared for node in _walk(rule))

    def block(b: Block | None) -> Block | None:
        if b is None or not any(unresolved(rule) for rule in b.rules):
            return b
        return replace(b, rules=tuple(
            Unresolved(kind_of(rule), per_category(rule), tuple(c for c in categories_of(rule) if c in declared),
                       rule.span) if unresolved(rule) else rule
            for rule in b.rules))

    return replace(contract, defaults=block(contract.defaults), account=block(contract.account),
                   sites=tuple(replace(site, block=block(site.block)) for site in contract.sites))


# --- walking the tree ----------------------------------------------------------


def _blocks(contract: Contract) -> Iterable[Block]:
    if contract.defaults:
        yield contract.defaults
    for site in contract.sites:
        yield site.block


def _walk(node) -> Iterator:
    yield node
    if isinstance(node, (tuple, list)):
        for item in node:
            yield from _walk(item)
    elif is_dataclass(node) and not isinstance(node, (Span, Ref, DateLiteral)):
        for field in fields(node):
            value = getattr(node, field.name)
            if is_dataclass(value) or isinstance(value, (tuple, list)):
                yield from _walk(value)
