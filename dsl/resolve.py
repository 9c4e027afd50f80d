"""How defaults and a site's own rules combine (spec §4.3).

A site that states a rule of a kind replaces every default of that kind
(`minimum`, `cap`); rules that act per category (`rate`, and primitives that
declare `inherit="category"`: `disable`/`enable`, `included`) replace the
default only for the categories they name. `no minimum` / `no cap` remove a
kind. A rule's kind and the categories it names are what its primitive
declares (rules/primitive.py); nothing here names a primitive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dsl.syntax import Contract, NoRule, RateOverride, Site, Unresolved
from rules.registry import primitive


@dataclass(frozen=True)
class Effective:
    node: Any
    kind: str
    categories: tuple[str, ...]  # the categories it governs here, for per-category rules
    block: str                   # where it was written


def kind_of(node) -> str:
    if isinstance(node, (NoRule, Unresolved)):
        return node.kind
    if isinstance(node, RateOverride):
        return "rate"
    return primitive(node.primitive).kind


def per_category(node) -> bool:
    if isinstance(node, Unresolved):
        return node.per_category
    if isinstance(node, (NoRule,)):
        return False
    if isinstance(node, RateOverride):
        return True
    return primitive(node.primitive).inherit == "category"


def categories_of(node) -> tuple[str, ...]:
    if isinstance(node, RateOverride):
        return (node.category.name,)
    if isinstance(node, NoRule):
        return ()
    if isinstance(node, Unresolved):
        return node.categories
    return primitive(node.primitive).governs(node)


def effective_rules(contract: Contract, site: Site | None) -> list[Effective]:
    """The rules in force at a site (or, for None, the defaults on their own)."""
    defaults = contract.defaults.rules if contract.defaults else ()
    if site is None:
        return [Effective(r, kind_of(r), categories_of(r), "defaults") for r in defaults if not isinstance(r, NoRule)]
    own = site.block.rules
    own_kinds = {kind_of(r) for r in own}
    own_categories = {(kind_of(r), c) for r in own if per_category(r) for c in categories_of(r)}
    result = []
    for rule in defaults:
        if isinstance(rule, NoRule):
            continue
        kind = kind_of(rule)
        if per_category(rule):
            kept = tuple(c for c in categories_of(rule) if (kind, c) not in own_categories)
            if kept:
                result.append(Effective(rule, kind, kept, "defaults"))
        elif kind not in own_kinds:
            result.append(Effective(rule, kind, categories_of(rule), "defaults"))
    result.extend(
        Effective(r, kind_of(r), categories_of(r), site.block.name) for r in own if not isinstance(r, NoRule)
    )
    return result
