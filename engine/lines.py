"""Invoice lines: what the phases write, and the registry of their kinds. Totals are sums of lines, nothing else.

Each kind of line is declared once, as a `LineKind`, with everything the
renderers and the ledger need to know of it: its JSON fields both ways, its
titles, the row the text, CSV and PDF print, the `totals` entry it sums into,
how a late-usage difference treats it and what the reconciliation checks of it.
The three kinds every plan can write (usage, minimum, cap) are declared below;
a primitive with a line of its own declares its kind beside it and registers it
(`register_kind`). Asking for a kind nobody registered raises `UnknownLineKind`:
no renderer falls back on another kind's layout.

    kind = kind_of(line)
    {"kind": kind.name, **kind.to_json(line, money)}        # interfaces §3
    kind.row(line, money).title                             # "Minimum true-up on standard, expedited"
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable, Iterable

from engine.money import Money, format_quantity
from engine.periods import Period
from engine.plan import Source

ZERO = Decimal(0)


@dataclass(frozen=True)
class TierShare:
    """One tier's part of a usage line (amount rounded for display only)."""

    quantity: Decimal
    unit_price: Decimal
    amount: Decimal
    note: str = ""


@dataclass(frozen=True)
class UsageLine:
    category: str
    label: str
    quantity: Decimal
    events: int
    amount: Decimal
    billed: bool
    tiers: tuple[TierShare, ...]
    source: Source | None                 # the price that made the amount
    disabled_by: Source | None = None     # the toggle that set it to 0, when not billed
    kind = "usage"


@dataclass(frozen=True)
class MinimumLine:
    categories: tuple[str, ...]   # scope as written
    scope: frozenset[str]         # the categories it covers
    commitment: Decimal           # spend (prorated) or unit count
    unit: str                     # "spend" or "units"
    basis: Decimal                # what was measured against the commitment
    amount: Decimal
    explanation: str
    source: Source | None
    kind = "minimum"


@dataclass(frozen=True)
class CapLine:
    categories: tuple[str, ...]
    limit: Decimal
    counted_before: Decimal
    in_scope: Decimal             # this period's in-scope amount before the cap
    amount: Decimal               # negative
    explanation: str
    source: Source | None
    kind = "cap"


# --- what a kind declares -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """A line as the text, CSV and PDF print it. Figures stay Decimals: each renderer formats them its way."""

    title: str                          # the line's heading in text and PDF: "Minimum true-up on standard"
    description: str                    # its short name in the CSV: "Minimum true-up"
    amount: Decimal
    categories: tuple[str, ...]         # the categories it concerns, as written
    source: Source | None               # the contract line behind it
    quantity: Decimal | None = None     # the units it bills, when it bills units
    events: int | None = None
    unit_price: Decimal | None = None   # when a single price makes the amount
    details: tuple[TierShare, ...] = () # how the amount is made up (tiers), never added again
    explanation: str = ""               # why the line is there, in a sentence
    billed: bool = True
    disabled_by: Source | None = None   # the rule that stopped it being billed
    figures: dict[str, str] = field(default_factory=dict)   # further exact figures, each in its CSV column


@dataclass(frozen=True)
class Broken:
    """An invariant a line breaks: what should hold, the figure it should be and the figure it is."""

    rule: str             # "no negative true-up"
    expected: Decimal
    found: Decimal
    detail: str = ""


def no_invariants(line) -> Iterable[Broken]:
    return ()


@dataclass(frozen=True)
class LineKind:
    name: str                                        # the lines' `kind`, in the JSON and the CSV
    line: type                                       # their dataclass (with a class attribute `kind = name`)
    title: str                                       # one line: "Minimum true-up"
    plural: str                                      # its section and total: "Minimum true-ups"
    to_json: Callable[[Any, Money], dict]            # the line's JSON fields after "kind" (interfaces §3)
    from_json: Callable[[dict], Any]                 # the line again from its JSON (a stored invoice)
    row: Callable[[Any, Money], Row]                 # what the text, CSV and PDF print of it
    match_key: Callable[[Any], Any]                  # which line of the kind it is, to match two computations
    # The lines that take `old` to `new` (either may be None) for the late usage of `period`; none when equal.
    difference: Callable[[Any, Any, Period, Money], list]
    invariants: Callable[[Any], Iterable[Broken]] = no_invariants   # what the reconciliation checks of a line
    totals_key: str = ""                             # its entry in the invoice's `totals`; its name by default

    def __post_init__(self):
        if not self.totals_key:
            object.__setattr__(self, "totals_key", self.name)


class UnknownLineKind(LookupError):
    """A line of a kind nobody registered: rendering it would have to guess."""

    def __init__(self, kind):
        known = ", ".join(_KINDS) or "none"
        super().__init__(f"no line kind {kind!r} is registered (registered: {known}); "
                         f"a primitive that writes such lines must register its kind (engine.lines.register_kind)")
        self.kind = kind


_KINDS: dict[str, LineKind] = {}


def register_kind(kind: LineKind) -> LineKind:
    """Declare a kind of line; a name is registered once."""
    if kind.name in _KINDS:
        raise ValueError(f"a line kind named {kind.name!r} is registered already")
    if kind.totals_key == "total":
        raise ValueError("`total` is the invoice's total, not the entry of a kind")
    if getattr(kind.line, "kind", None) != kind.name:
        raise ValueError(f"{kind.line.__name__}.kind must be {kind.name!r}, the name it is registered under")
    _KINDS[kind.name] = kind
    return kind


def unregister_kind(name: str) -> None:
    _KINDS.pop(name, None)


def line_kind(name: str) -> LineKind:
    try:
        return _KINDS[name]
    except KeyError:
        raise UnknownLineKind(name) from None


def kind_of(line) -> LineKind:
    return line_kind(getattr(line, "kind", type(line).__name__))


def line_kinds() -> tuple[LineKind, ...]:
    """Every registered kind, in the order they were registered."""
    return tuple(_KINDS.values())


def totals_titles() -> dict[str, str]:
    """The invoice's `totals` entries of lines, in order, each with its title ("Minimum true-ups")."""
    titles: dict[str, str] = {}
    for kind in _KINDS.values():
        titles.setdefault(kind.totals_key, kind.plural)
    return titles


def source_from_json(data: dict | None) -> Source | None:
    return Source(data["line"], data["column"], data["text"], data["block"]) if data else None


def source_json(source: Source | None) -> dict | None:
    return source.as_dict() if source else None


# --- usage ----------------------------------------------------------------------------------------------------


def _usage_json(line: UsageLine, money: Money) -> dict:
    return {
        "category": line.category,
        "label": line.label,
        "quantity": format_quantity(line.quantity),
        "amount": money.format(line.amount),
        "billed": line.billed,
        "tiers": [
            {
                "quantity": format_quantity(t.quantity),
                "unit_price": f"{t.unit_price:f}",
                "amount": money.format(t.amount),
                **({"note": t.note} if t.note else {}),
            }
            for t in line.tiers
        ],
        "events": line.events,
        "source": source_json(line.source),
        **({"disabled_by": line.disabled_by.as_dict()} if line.disabled_by else {}),
    }


def _usage_from_json(data: dict) -> UsageLine:
    tiers = tuple(TierShare(Decimal(t["quantity"]), Decimal(t["unit_price"]), Decimal(t["amount"]),
                            t.get("note", "")) for t in data["tiers"])
    return UsageLine(data["category"], data["label"], Decimal(data["quantity"]), data["events"],
                     Decimal(data["amount"]), data["billed"], tiers, source_from_json(data["source"]),
                     source_from_json(data.get("disabled_by")))


def _usage_row(line: UsageLine, money: Money) -> Row:
    return Row(line.label, line.label, line.amount, (line.category,), line.source, quantity=line.quantity,
               events=line.events, unit_price=line.tiers[0].unit_price if len(line.tiers) == 1 else None,
               details=line.tiers, billed=line.billed, disabled_by=line.disabled_by)


def _usage_difference(old: UsageLine | None, new: UsageLine | None, period: Period, money: Money) -> list:
    line = new or old
    amount = (new.amount if new else ZERO) - (old.amount if old else ZERO)
    quantity = (new.quantity if new else ZERO) - (old.quantity if old else ZERO)
    events = (new.events if new else 0) - (old.events if old else 0)
    if not (amount or quantity or events):
        return []
    return [UsageLine(line.category, f"{line.label}, late usage for {period}", quantity, events, amount,
                      line.billed, _tier_differences(old, new), line.source)]


def _tier_differences(old: UsageLine | None, new: UsageLine | None) -> tuple[TierShare, ...]:
    shares: dict[tuple[Decimal, str], list[Decimal]] = {}
    for sign, line in ((-1, old), (1, new)):
        for tier in line.tiers if line else ():
            share = shares.setdefault((tier.unit_price, tier.note), [ZERO, ZERO])
            share[0] += sign * tier.quantity
            share[1] += sign * tier.amount
    return tuple(TierShare(q, price, amount, note) for (price, note), (q, amount) in shares.items() if q or amount)


USAGE = register_kind(LineKind(
    name="usage", line=UsageLine, title="Usage", plural="Usage",
    to_json=_usage_json, from_json=_usage_from_json, row=_usage_row,
    match_key=lambda line: line.category, difference=_usage_difference,
))


# --- minimum --------------------------------------------------------------------------------------------------

UNMEASURED = ZERO   # a minimum's basis read back from JSON: not part of the document, and no rendering prints it


def _minimum_json(line: MinimumLine, money: Money) -> dict:
    return {
        "categories": list(line.categories),
        "commitment": money.format(line.commitment) if line.unit == "spend" else format_quantity(line.commitment),
        "commitment_unit": line.unit,
        "amount": money.format(line.amount),
        "explanation": line.explanation,
        "source": source_json(line.source),
    }


def _minimum_from_json(data: dict) -> MinimumLine:
    categories = tuple(data["categories"])
    return MinimumLine(categories, frozenset(categories), Decimal(data["commitment"]), data["commitment_unit"],
                       UNMEASURED, Decimal(data["amount"]), data["explanation"], source_from_json(data["source"]))


def _minimum_row(line: MinimumLine, money: Money) -> Row:
    commitment = _minimum_json(line, money)["commitment"]
    return Row(f"Minimum true-up on {', '.join(line.categories)}", "Minimum true-up", line.amount, line.categories,
               line.source, explanation=line.explanation,
               figures={"commitment": commitment, "commitment_unit": line.unit})


def _late_explanation(old, new, period: Period, money: Money, what: str) -> str:
    was, now = money.format(old.amount if old else ZERO), money.format(new.amount if new else ZERO)
    return f"late usage for {period}: {what} {now} instead of {was}"


def _minimum_difference(old: MinimumLine | None, new: MinimumLine | None, period: Period, money: Money) -> list:
    line = new or old
    amount = (new.amount if new else ZERO) - (old.amount if old else ZERO)
    if not amount:
        return []
    return [MinimumLine(line.categories, line.scope, line.commitment, line.unit, line.basis, amount,
                        _late_explanation(old, new, period, money, "true-up"), line.source)]


def _minimum_invariants(line: MinimumLine) -> Iterable[Broken]:
    if line.amount < 0:
        yield Broken("no negative true-up", ZERO, line.amount, line.explanation)


MINIMUM = register_kind(LineKind(
    name="minimum", line=MinimumLine, title="Minimum true-up", plural="Minimum true-ups",
    to_json=_minimum_json, from_json=_minimum_from_json, row=_minimum_row,
    match_key=lambda line: line.categories, difference=_minimum_difference,
    invariants=_minimum_invariants,
))


# --- cap ------------------------------------------------------------------------------------------------------


def _cap_json(line: CapLine, money: Money) -> dict:
    return {
        "categories": list(line.categories),
        "limit": money.format(line.limit),
        "counted_before": money.format(line.counted_before),
        "in_scope": money.format(line.in_scope),
        "amount": money.format(line.amount),
        "explanation": line.explanation,
        "source": source_json(line.source),
    }


def _cap_from_json(data: dict) -> CapLine:
    return CapLine(tuple(data["categories"]), Decimal(data["limit"]), Decimal(data["counted_before"]),
                   Decimal(data["in_scope"]), Decimal(data["amount"]), data["explanation"],
                   source_from_json(data["source"]))


def _cap_row(line: CapLine, money: Money) -> Row:
    figures = {key: money.format(getattr(line, key)) for key in ("limit", "counted_before", "in_scope")}
    return Row(f"Cap reduction on {', '.join(line.categories)}", "Cap reduction", line.amount, line.categories,
               line.source, explanation=line.explanation, figures=figures)


def _cap_difference(old: CapLine | None, new: CapLine | None, period: Period, money: Money) -> list:
    line = new or old
    amount = (new.amount if new else ZERO) - (old.amount if old else ZERO)
    if not amount:
        return []
    return [CapLine(line.categories, line.limit, line.counted_before,
                    (new.in_scope if new else ZERO) - (old.in_scope if old else ZERO), amount,
                    _late_explanation(old, new, period, money, "cap reduction"), line.source)]


def _cap_invariants(line: CapLine) -> Iterable[Broken]:
    amount, in_scope, limit, before = line.amount, line.in_scope, line.limit, line.counted_before
    if amount > 0:
        yield Broken("a cap only reduces", ZERO, amount, line.explanation)
    elif -amount > in_scope:
        yield Broken("a cap reduces no more than its scope", in_scope, -amount, line.explanation)
    elif before + in_scope + amount > limit and -amount != in_scope:
        yield Broken("a cap keeps the year within its limit", limit, before + in_scope + amount, line.explanation)


CAP = register_kind(LineKind(
    name="cap", line=CapLine, title="Cap reduction", plural="Cap reductions",
    to_json=_cap_json, from_json=_cap_from_json, row=_cap_row,
    match_key=lambda line: line.categories, difference=_cap_difference,
    invariants=_cap_invariants,
))
