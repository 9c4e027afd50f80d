"""The registry of rule primitives: the one place the compiler finds them.

Adding a primitive touches grammar.lark, a new module in rules/, the tuple
below and its tests: see docs/adding-a-primitive.md. The evaluator does not
look here: each compiled step carries its primitive's runner.
"""

from __future__ import annotations

from rules import (
    account_cap,
    account_minimum,
    activity_window,
    cap,
    category_toggle,
    commitment,
    flat_rate,
    graduated,
    included_units,
    spend_minimum,
    unit_minimum,
    volume,
)
from rules.primitive import Primitive

MODULES = (
    flat_rate,
    graduated,
    volume,
    spend_minimum,
    unit_minimum,
    cap,
    category_toggle,
    activity_window,
    included_units,
    account_minimum,
    account_cap,
    commitment,
)

_REGISTRY: dict[str, Primitive] = {p.name: p for module in MODULES for p in module.PRIMITIVES}


def registry() -> dict[str, Primitive]:
    return _REGISTRY


def register(new: Primitive) -> None:
    """Add a primitive from outside this package (a plug-in, a test); a name is registered once."""
    if new.name in _REGISTRY:
        raise ValueError(f"a primitive named {new.name!r} is registered already")
    _REGISTRY[new.name] = new


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def primitive(name: str) -> Primitive:
    return _REGISTRY[name]
