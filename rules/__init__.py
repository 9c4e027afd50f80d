"""Rule primitives: one module per kind of rule, from what the contract says to the lines it writes.

    primitive.py    what a primitive declares (Primitive) and what it may know (Context)
    registry.py     the primitives, found by name: the compiler's one place to look
    written.py      what rules are written with: amounts, dates, category mentions, scopes
    diagnostics.py  spans and diagnostics: what is wrong, and where
    pricing.py      what the three price primitives share: amounts, tiers, the rate step
    scoped.py       what primitives whose rule names a scope (`on all`, `on a, b`) share
    account_amounts.py  what the `account` block's rules share: the checks of their amounts

and one module per primitive, listed in registry.MODULES.

Builds on the engine's plan and lines; knows nothing of the parser (dsl/) or of storage.
"""
