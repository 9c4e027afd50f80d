"""Hypothesis generators for the property tests: contract text that is valid by construction, and usage.

A generated contract is a `ContractModel`: the rules as data, rendered to text by
`.text`, and able to say (from the spec's rules, not from the compiler) which
minimums, caps, disabled categories and active window each site has. Its scopes
are valid by construction: the categories are split into "atoms"; every minimum
scope lies inside one atom and every cap scope is a union of atoms, so no minimum
can straddle a cap whichever block (defaults or site) each comes from; minimums
of one block are disjoint, and so are caps.

Events are `GenEvent`s at local times in the contract's time zone, over several
months, at known and unknown sites and categories.
"""

from __future__ import annotations

import datetime as dt
import json
import dataclasses
from dataclasses import dataclass
from decimal import Decimal
from zoneinfo import ZoneInfo

from hypothesis import strategies as st

from dsl.parse import KEYWORDS

CURRENCY_PLACES = {"GBP": 2, "JPY": 0, "KWD": 3}
TIMEZONES = (None, "UTC", "Europe/London", "America/New_York")
UNKNOWN_SITE = "zz-unknown-site"
UNKNOWN_CATEGORY = "zz_unknown_category"
CUSTOMER_ID = "gen-contract"
OTHER_CUSTOMER = "someone-else"

# The spec's keywords, plus `included`, which the compiler reserves (dsl/parse.py KEYWORDS).
RESERVED = frozenset(KEYWORDS) | {"included"}


# --- decimals -------------------------------------------------------------------


def decimals(max_int: int, max_places: int) -> st.SearchStrategy[Decimal]:
    """Non-negative exact decimals with up to `max_places` places (trailing zeros kept as drawn)."""
    return st.builds(
        lambda places, units: Decimal(units).scaleb(-places),
        st.integers(0, max_places),
        st.integers(0, max_int),
    )


@st.composite
def written_decimal(draw, value: Decimal) -> str:
    """A decimal as a contract may write it: with or without `_` digit separators."""
    text = f"{value:f}"
    if not draw(st.booleans()):
        return text
    whole, _, fraction = text.partition(".")
    groups = []
    while len(whole) > 3:
        groups.insert(0, whole[-3:])
        whole = whole[:-3]
    groups.insert(0, whole)
    whole = "_".join(groups)
    return f"{whole}.{fraction}" if fraction else whole


# --- the contract model ---------------------------------------------------------


@dataclass(frozen=True)
class Price:
    mode: str                                  # rate | graduated | volume
    rate: Decimal | None = None
    tiers: tuple[tuple[Decimal, Decimal], ...] = ()   # (bound, price), bounds strictly increasing
    above: Decimal | None = None
    written: tuple[str, ...] = ()              # the decimals as written, in order of appearance

    def render(self) -> str:
        words = iter(self.written)
        if self.mode == "rate":
            return f"rate {next(words)}"
        rows = [f"up to {next(words)} at {next(words)}" for _ in self.tiers]
        rows.append(f"above at {next(words)}")
        return f"{self.mode} {{ " + "  ".join(rows) + " }"

    def render_body(self) -> str:
        """The price as it follows `rate ID` in a block."""
        text = self.render()
        return text[len("rate "):] if self.mode == "rate" else text


@dataclass(frozen=True)
class Rule:
    kind: str                  # spend_minimum | unit_minimum | cap | no_minimum | no_cap | rate | disable | enable | active_from | active_until
    amount: Decimal | None = None
    amount_text: str = ""
    scope: tuple[str, ...] = ()            # categories as written, or ("all",)
    categories: frozenset[str] = frozenset()  # what the scope covers
    price: Price | None = None
    day: dt.date | None = None

    @property
    def rule_kind(self) -> str:
        if self.kind in ("spend_minimum", "unit_minimum", "no_minimum"):
            return "minimum"
        if self.kind in ("cap", "no_cap"):
            return "cap"
        return self.kind

    def render(self) -> str:
        scope = ", ".join(self.scope)
        if self.kind == "spend_minimum":
            return f"minimum {self.amount_text} monthly on {scope}"
        if self.kind == "unit_minimum":
            return f"minimum {self.amount_text} units monthly on {scope}"
        if self.kind == "cap":
            return f"cap {self.amount_text} yearly on {scope}"
        if self.kind == "no_minimum":
            return "no minimum"
        if self.kind == "no_cap":
            return "no cap"
        if self.kind == "rate":
            return f"rate {self.scope[0]} {self.price.render_body()}"
        if self.kind in ("disable", "enable"):
            return f"{self.kind} {scope}"
        if self.kind == "active_from":
            return f"active from {self.day.isoformat()}"
        if self.kind == "active_until":
            return f"active until {self.day.isoformat()}"
        raise AssertionError(self.kind)


@dataclass(frozen=True)
class SiteModel:
    id: str
    name: str | None
    rules: tuple[Rule, ...]

    def window(self) -> tuple[dt.date | None, dt.date | None]:
        start = next((r.day for r in self.rules if r.kind == "active_from"), None)
        end = next((r.day for r in self.rules if r.kind == "active_until"), None)
        return start, end


@dataclass(frozen=True)
class SiteView:
    """What is in force at a site, from the spec's rules (§4.3), not from dsl/resolve.py."""

    minimums: tuple[Rule, ...]
    caps: tuple[Rule, ...]
    disabled: frozenset[str]
    prices: dict[str, Price]
    active_from: dt.date | None
    active_until: dt.date | None


@dataclass(frozen=True)
class ContractModel:
    id: str
    customer: str
    currency: str
    starts: dt.date
    ends: dt.date | None
    timezone: str | None
    rounding: str | None
    header_order: tuple[int, ...]
    categories: tuple[tuple[str, str, Price], ...]
    defaults: tuple[Rule, ...] | None
    sites: tuple[SiteModel, ...]
    comments: bool = False
    account: tuple[str, ...] | None = None   # the `account` block's rules as written, when it has one

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone or "UTC")

    @property
    def places(self) -> int:
        return CURRENCY_PLACES[self.currency]

    @property
    def category_ids(self) -> tuple[str, ...]:
        return tuple(c[0] for c in self.categories)

    @property
    def site_ids(self) -> tuple[str, ...]:
        return tuple(s.id for s in self.sites)

    def site(self, site_id: str) -> SiteModel:
        return next(s for s in self.sites if s.id == site_id)

    def view(self, site_id: str) -> SiteView:
        site = self.site(site_id)
        defaults = self.defaults or ()
        own = site.rules

        def of_kind(rules, kind):
            return tuple(r for r in rules if r.rule_kind == kind)

        def inherited(kind):
            mine = of_kind(own, kind)
            chosen = mine if mine else of_kind(defaults, kind)
            return tuple(r for r in chosen if not r.kind.startswith("no_"))

        toggles: dict[str, bool] = {}
        for rules in (defaults, own):
            for rule in rules:
                if rule.kind in ("disable", "enable"):
                    for category in rule.categories:
                        toggles[category] = rule.kind == "enable"
        prices = {cid: price for cid, _, price in self.categories}
        for rules in (defaults, own):
            for rule in rules:
                if rule.kind == "rate":
                    prices[rule.scope[0]] = rule.price
        start, end = site.window()
        return SiteView(
            minimums=inherited("minimum"),
            caps=inherited("cap"),
            disabled=frozenset(c for c, enabled in toggles.items() if not enabled),
            prices=prices,
            active_from=start,
            active_until=end,
        )

    def billed_days(self, site_id: str, first: dt.date, last: dt.date) -> int:
        """Days of [first, last] on which the site is billed (its window and the contract's dates)."""
        view = self.view(site_id)
        lo = max(d for d in (first, self.starts, view.active_from) if d is not None)
        hi = min(d for d in (last, self.ends, view.active_until) if d is not None)
        return max(0, (hi - lo).days + 1)

    @property
    def text(self) -> str:
        lines = [f'contract "{escape(self.id)}" {{']
        headers = [
            f'customer "{escape(self.customer)}"',
            f"currency {self.currency}",
            f"starts {self.starts.isoformat()}",
        ]
        if self.ends:
            headers.append(f"ends {self.ends.isoformat()}")
        if self.timezone:
            headers.append(f'timezone "{self.timezone}"')
        if self.rounding:
            headers.append(f"rounding {self.rounding}")
        order = [i for i in self.header_order if i < len(headers)]
        lines += ["    " + headers[i] for i in order]
        for cid, label, price in self.categories:
            lines.append(f'    category {cid} "{escape(label)}" {price.render()}')
        if self.defaults is not None:
            lines.append("    defaults {")
            lines += ["        " + r.render() for r in self.defaults]
            lines.append("    }")
        for site in self.sites:
            name = f' "{escape(site.name)}"' if site.name is not None else ""
            lines.append(f'    site "{escape(site.id)}"{name} {{')
            lines += ["        " + r.render() for r in site.rules]
            lines.append("    }")
        if self.account is not None:
            lines.append("    account {")
            lines += ["        " + rule for rule in self.account]
            lines.append("    }")
        lines.append("}")
        if self.comments:
            lines = [f"{line}  # {i}: \"note\" {{ }}" for i, line in enumerate(lines)]
            lines.insert(0, "# generated contract")
        return "\n".join(lines) + "\n"


def escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


# --- generators -----------------------------------------------------------------

one_line_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=12
)
category_ids = st.from_regex(r"[a-z_][a-z0-9_]{0,7}", fullmatch=True).filter(
    lambda s: s not in RESERVED and s != UNKNOWN_CATEGORY
)
# Non-empty: an event must name its site (interfaces §1), so an empty site id could never be billed.
site_ids = st.one_of(
    st.from_regex(r"[a-z]{3}-[0-9]{2}", fullmatch=True),
    one_line_text.filter(lambda s: s and s != UNKNOWN_SITE),
)


@st.composite
def prices(draw) -> Price:
    mode = draw(st.sampled_from(("rate", "graduated", "volume")))
    unit_price = decimals(500, 4)
    if mode == "rate":
        rate = draw(unit_price)
        return Price("rate", rate=rate, written=(draw(written_decimal(rate)),))
    count = draw(st.integers(1, 3))
    bounds = draw(st.lists(decimals(3000, 2), min_size=count, max_size=count, unique=True))
    bounds = sorted(bounds)
    # unique Decimals compare by value, so equal values with other exponents are gone: strictly increasing.
    tiers = tuple((b, draw(unit_price)) for b in bounds)
    above = draw(unit_price)
    written = []
    for bound, price in tiers:
        written += [draw(written_decimal(bound)), draw(written_decimal(price))]
    written.append(draw(written_decimal(above)))
    return Price(mode, tiers=tiers, above=above, written=tuple(written))


@st.composite
def money_amount(draw, places: int, max_int: int) -> tuple[Decimal, str]:
    """An amount for a minimum or cap, with no more places than the currency has (more is an error)."""
    value = draw(decimals(max_int, places))
    return value, draw(written_decimal(value))


def _scope_words(draw, categories: frozenset[str], all_ids: tuple[str, ...], may_say_all: bool) -> tuple[str, ...]:
    if may_say_all and categories == frozenset(all_ids) and draw(st.booleans()):
        return ("all",)
    return tuple(draw(st.permutations(sorted(categories))))


@st.composite
def minimum_rules(draw, ids: tuple[str, ...], atoms: dict[str, int], places: int) -> list[Rule]:
    """Disjoint minimums, each inside one atom."""
    slots: dict[tuple[int, int], list[str]] = {}
    for cid in ids:
        slot = draw(st.sampled_from((None, None, 0, 1)))
        if slot is not None:
            slots.setdefault((atoms[cid], slot), []).append(cid)
    one_atom = len(set(atoms.values())) == 1
    rules = []
    for members in slots.values():
        covered = frozenset(members)
        if len(members) == 1 and draw(st.booleans()):
            units = draw(decimals(2000, 1))
            rules.append(Rule("unit_minimum", units, draw(written_decimal(units)), tuple(members), covered))
        else:
            amount, text = draw(money_amount(places, 3000))
            words = _scope_words(draw, covered, ids, one_atom)
            rules.append(Rule("spend_minimum", amount, text, words, covered))
    return rules


@st.composite
def cap_rules(draw, ids: tuple[str, ...], atoms: dict[str, int], places: int) -> list[Rule]:
    """Disjoint caps, each a union of atoms."""
    slots: dict[int, set[str]] = {}
    for atom in sorted(set(atoms.values())):
        slot = draw(st.sampled_from((None, 0, 0, 1, 2)))
        if slot is not None:
            slots.setdefault(slot, set()).update(c for c in ids if atoms[c] == atom)
    rules = []
    for members in slots.values():
        amount, text = draw(money_amount(places, 20000))
        covered = frozenset(members)
        rules.append(Rule("cap", amount, text, _scope_words(draw, covered, ids, True), covered))
    return rules


@st.composite
def toggle_rules(draw, ids: tuple[str, ...], allow_enable: bool) -> list[Rule]:
    choices = (None, None, "disable", "enable") if allow_enable else (None, None, "disable")
    chosen: dict[str, list[str]] = {}
    for cid in ids:
        toggle = draw(st.sampled_from(choices))
        if toggle:
            chosen.setdefault(toggle, []).append(cid)
    rules = []
    for toggle, members in chosen.items():
        if len(members) > 1 and draw(st.booleans()):
            cut = draw(st.integers(1, len(members) - 1))
            groups = [members[:cut], members[cut:]]
        else:
            groups = [members]
        for group in groups:
            rules.append(Rule(toggle, scope=tuple(group), categories=frozenset(group)))
    return rules


@st.composite
def rate_rules(draw, ids: tuple[str, ...]) -> list[Rule]:
    rules = []
    for cid in ids:
        if draw(st.integers(0, 3)) == 3:
            rules.append(Rule("rate", scope=(cid,), categories=frozenset((cid,)), price=draw(prices())))
    return rules


def _day(draw, lo: dt.date, hi: dt.date) -> dt.date:
    return lo + dt.timedelta(days=draw(st.integers(0, (hi - lo).days)))


@st.composite
def block_rules(draw, ids, atoms, places, *, site: bool, starts: dt.date) -> tuple[Rule, ...]:
    rules: list[Rule] = []
    for kind, generate in (("minimum", minimum_rules), ("cap", cap_rules)):
        mode = draw(st.sampled_from(("inherit", "own", "own", "none") if site else ("inherit", "own", "own")))
        if mode == "own":
            rules += draw(generate(ids, atoms, places))
        elif mode == "none":
            rules.append(Rule(f"no_{kind}"))
    rules += draw(toggle_rules(ids, allow_enable=True))
    rules += draw(rate_rules(ids))
    if site:
        lo, hi = starts - dt.timedelta(days=45), starts + dt.timedelta(days=430)
        start = _day(draw, lo, hi) if draw(st.integers(0, 2)) == 2 else None
        end = _day(draw, start or lo, hi) if draw(st.integers(0, 2)) == 2 else None
        if start:
            rules.append(Rule("active_from", day=start))
        if end:
            rules.append(Rule("active_until", day=end))
    return tuple(draw(st.permutations(rules)))


@st.composite
def contracts(draw, max_categories: int = 4, max_sites: int = 3) -> ContractModel:
    currency = draw(st.sampled_from(tuple(CURRENCY_PLACES)))
    places = CURRENCY_PLACES[currency]
    starts = dt.date(draw(st.integers(2024, 2027)), draw(st.integers(1, 12)), 1)
    ends = None
    if draw(st.booleans()):
        ends = starts + dt.timedelta(days=draw(st.integers(0, 540)))
    ids = tuple(draw(st.lists(category_ids, min_size=1, max_size=max_categories, unique=True)))
    atom_of = draw(st.lists(st.integers(0, len(ids) - 1), min_size=len(ids), max_size=len(ids)))
    atoms = dict(zip(ids, atom_of))
    categories = tuple((cid, draw(one_line_text), draw(prices())) for cid in ids)
    defaults = None
    if draw(st.booleans()):
        defaults = draw(block_rules(ids, atoms, places, site=False, starts=starts))
    site_list = draw(st.lists(site_ids, min_size=1, max_size=max_sites, unique=True))
    sites = tuple(
        SiteModel(
            sid,
            draw(st.one_of(st.none(), one_line_text)),
            draw(block_rules(ids, atoms, places, site=True, starts=starts)),
        )
        for sid in site_list
    )
    return ContractModel(
        id=CUSTOMER_ID,
        customer=draw(one_line_text),
        currency=currency,
        starts=starts,
        ends=ends,
        timezone=draw(st.sampled_from(TIMEZONES)),
        rounding=draw(st.sampled_from((None, "half_up", "half_even"))),
        header_order=tuple(draw(st.permutations(range(6)))),
        categories=categories,
        defaults=defaults,
        sites=sites,
        comments=draw(st.booleans()),
    )


# --- usage ----------------------------------------------------------------------


@dataclass(frozen=True)
class GenEvent:
    id: str
    site: str
    category: str
    local: dt.datetime          # aware, in the contract's zone
    quantity: Decimal
    customer: str = CUSTOMER_ID

    @property
    def day(self) -> dt.date:
        return self.local.date()

    def as_json(self) -> str:
        instant = self.local.astimezone(dt.timezone.utc)
        return json.dumps({
            "specversion": "1.0",
            "id": self.id,
            "source": "platform/test",
            "type": "unit.processed",
            "time": instant.isoformat().replace("+00:00", "Z"),
            "data": {"customer": self.customer, "site": self.site, "category": self.category,
                     "quantity": f"{self.quantity:f}"},
        })


quantities = st.one_of(decimals(600, 2), st.just(Decimal(0)), decimals(5000, 0))


@st.composite
def local_times(draw, zone: ZoneInfo, day: dt.date) -> dt.datetime:
    clock = draw(st.sampled_from((dt.time(0, 0), dt.time(23, 59, 59), None)))
    if clock is None:
        clock = dt.time(draw(st.integers(0, 23)), draw(st.integers(0, 59)), draw(st.integers(0, 59)))
    local = dt.datetime.combine(day, clock, tzinfo=zone)
    # A time inside a DST gap is read as the instant it names; keep the day we meant.
    local = local.astimezone(dt.timezone.utc).astimezone(zone)
    return local if local.date() == day else dt.datetime.combine(day, dt.time(12), tzinfo=zone)


@st.composite
def events(draw, model: ContractModel, first: dt.date, last: dt.date, max_size: int = 30,
           other_customers: bool = False) -> list[GenEvent]:
    """Events with unique ids on local days in [first, last], at known and unknown sites and categories.

    Most events go to a few (site, category) pairs, so that quantities add up across
    events and reach tiers, minimums and caps.
    """
    sites = (*model.site_ids, UNKNOWN_SITE)
    categories = (*model.category_ids, UNKNOWN_CATEGORY)
    pair = st.tuples(st.sampled_from(sites), st.sampled_from(categories))
    hot = draw(st.lists(pair, min_size=1, max_size=3))
    hot_days = draw(st.lists(st.builds(lambda n: first + dt.timedelta(days=n), st.integers(0, (last - first).days)),
                             min_size=1, max_size=4))
    count = draw(st.sampled_from((0, 2, max_size // 2, max_size, max_size)))
    out = []
    for i in range(count):
        day = draw(st.one_of(st.sampled_from(hot_days), st.builds(lambda n: first + dt.timedelta(days=n),
                                                                  st.integers(0, (last - first).days))))
        customer = CUSTOMER_ID
        if other_customers and draw(st.integers(0, 9)) == 9:
            customer = OTHER_CUSTOMER
        site, category = draw(st.one_of(st.sampled_from(hot), pair))
        out.append(GenEvent(
            id=f"evt-{i:04d}",
            site=site,
            category=category,
            local=draw(local_times(model.zone, day)),
            quantity=draw(quantities),
            customer=customer,
        ))
    return out


# --- the account block (spec §4.9) ---------------------------------------------


@st.composite
def account_rules(draw, places: int) -> tuple[str, ...]:
    """An `account` block's rules, each kind at most once, in any order, and no cap below the commitment."""
    rules = []
    if draw(st.booleans()):
        rules.append(f"minimum {draw(decimals(4000, places)):f} monthly")
    commit = draw(st.one_of(st.none(), decimals(20000, places)))
    if draw(st.booleans()):
        cap = draw(decimals(60000, places))
        rules.append(f"cap {max(cap, commit or 0):f} yearly")
    if commit is not None:
        rules.append(f"commit {commit:f} yearly {draw(st.sampled_from(('prepaid', 'in arrears')))}")
    return tuple(draw(st.permutations(rules)))


@st.composite
def account_contracts(draw) -> ContractModel:
    """A contract with an `account` block."""
    model = draw(contracts(max_categories=3, max_sites=3))
    return dataclasses.replace(model, account=draw(account_rules(model.places)))
