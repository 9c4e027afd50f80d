"""A deterministic benchmark workload: a contract with many sites and a month of usage events.

    python bench/gen_workload.py contract --sites 60 > bench/out/bench.pricing
    python bench/gen_workload.py events --events 1000000 --output bench/out/events.jsonl

The contract mixes flat, graduated and volume prices, spend and unit minimums,
caps, site overrides, disabled categories and mid-month activity windows. The
events fall in May 2026 (local time, Europe/Berlin), in the order a feed writes
them (time order, give or take five minutes; `--order random` shuffles them over
the month), from four sources interleaved, with a sprinkling of what a real feed
carries: exact repeats (some with the time written at another offset or the
quantity with another exponent), conflicting repeats, unknown categories and
sites, other customers' events and a few events just outside the month. The same
arguments always give the same bytes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
from pathlib import Path

CONTRACT_ID = "bench-co"
PERIOD = "2026-05"
CATEGORIES = 10
FLAT_RATES = ("0.85", "1.40", "0.0125", "3.00")
SOURCES = ("platform/eu-west", "platform/eu-central", "platform/us-east", "edge/batch")
# May 2026 in Europe/Berlin (UTC+2 all month): local midnights as UTC instants.
MONTH_START = dt.datetime(2026, 4, 30, 22, 0, tzinfo=dt.timezone.utc)
MONTH_SECONDS = 31 * 86400


def category_id(index: int) -> str:
    return f"c{index:02d}"


def site_id(index: int) -> str:
    return f"site-{index:03d}"


def _price(index: int) -> str:
    if index < len(FLAT_RATES):
        return f"rate {FLAT_RATES[index]}"
    mode = "graduated" if index < 7 else "volume"
    step = index - 3
    return (
        f"{mode} {{\n"
        f"        up to {step * 1_000:_} at 2.{index:02d}\n"
        f"        up to {step * 10_000:_} at 1.{index:02d}5\n"
        f"        above at 0.9{index}\n"
        f"    }}"
    )


def _site_rules(index: int) -> list[str]:
    rules = []
    if index % 6 == 1:
        rules.append("minimum 5_000.00 monthly on c00, c01, c02")
    elif index % 6 == 2:
        rules.append("no minimum")
    if index % 5 == 3:
        rules.append("rate c01 1.25")
    elif index % 5 == 4:
        rules.append("rate c05 volume { up to 100 at 3.00 above at 2.50 }")
    if index % 7 == 5:
        rules.append("disable c09")
    if index % 8 == 6:
        rules.append("no cap")
    elif index % 8 == 7:
        rules.append("cap 80_000.00 yearly on c00, c01, c02")
    if index % 10 == 9:
        rules.append("active from 2026-05-11")
    elif index % 20 == 18:
        rules.append("active until 2026-05-20")
    return rules


def contract_text(sites: int) -> str:
    """A contract with `sites` sites and ten categories; it compiles without errors."""
    lines = [
        f"# Benchmark contract: {sites} sites x {CATEGORIES} categories (bench/gen_workload.py)",
        f'contract "{CONTRACT_ID}" {{',
        '    customer "Bench Co GmbH"',
        "    currency EUR",
        "    starts   2026-01-01",
        '    timezone "Europe/Berlin"',
        "    rounding half_even",
        "",
    ]
    for index in range(CATEGORIES):
        lines.append(f'    category {category_id(index)} "Category {index}" {_price(index)}')
    lines += [
        "",
        "    defaults {",
        "        minimum 2_500.00 monthly on c00, c01",
        "        minimum 200 units monthly on c04",
        "        cap 900_000.00 yearly on all",
        "    }",
        "",
    ]
    for index in range(sites):
        rules = _site_rules(index)
        lines.append(f'    site "{site_id(index)}" "Site {index}" {{')
        lines += [f"        {rule}" for rule in rules]
        lines.append("    }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _time(seconds: int, style: int) -> str:
    instant = MONTH_START + dt.timedelta(seconds=seconds)
    if style == 0:
        return instant.isoformat()[:19] + "Z"
    if style == 1:  # the same instant at the local offset
        return (instant + dt.timedelta(hours=2)).isoformat()[:19] + "+02:00"
    return instant.isoformat()[:19] + ".250Z"


def _quantity(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.70:
        return str(rng.randint(1, 50))
    if roll < 0.85:
        return f'"{rng.randint(0, 400) / 4}"'      # a decimal string: "12.25", "3.0"
    return f"{rng.randint(1, 999)}.{rng.randint(0, 99):02d}"  # a JSON number with decimals


def _line(event_id: str, source: str, time: str, customer: str, site: str, category: str, quantity: str) -> str:
    data = f'"customer": "{customer}", "site": "{site}", "category": "{category}"'
    if quantity:
        data += f', "quantity": {quantity}'
    return (
        f'{{"specversion": "1.0", "id": "{event_id}", "source": "{source}", "type": "unit.processed", '
        f'"time": "{time}", "data": {{{data}}}}}\n'
    )


def events(count: int, sites: int, seed: int = 7, order: str = "time"):
    """`count` JSON Lines, one event each (repeats included in the count)."""
    rng = random.Random(seed)
    recent: list[tuple] = []
    for number in range(count):
        roll = rng.random()
        if recent and roll < 0.006:
            event_id, source, seconds, customer, site, category, quantity = rng.choice(recent)
            if roll < 0.001:       # a conflict: same identity, other quantity
                quantity = str(rng.randint(51, 99))
            elif quantity.isdigit():  # an exact repeat, quantity written with another exponent
                quantity = f'"{quantity}.0"'
            yield _line(event_id, source, _time(seconds, 1 - (number % 2)), customer, site, category, quantity)
            continue
        event_id = f"evt-{number:08d}"
        source = SOURCES[number % len(SOURCES)]
        if order == "time":
            seconds = min(max(number * MONTH_SECONDS // count + rng.randint(-300, 300), 0), MONTH_SECONDS - 1)
        else:
            seconds = rng.randrange(MONTH_SECONDS)
        if roll > 0.9995:          # a few events just before or after the month
            seconds += rng.choice((-1, 1)) * (MONTH_SECONDS // 2 + 3600)
        customer = "other-co" if roll > 0.99 and roll <= 0.9995 else CONTRACT_ID
        site = site_id(rng.randrange(sites)) if rng.random() > 0.0005 else "site-999"
        category = category_id(rng.randrange(CATEGORIES)) if rng.random() > 0.001 else "ocr"
        quantity = _quantity(rng) if rng.random() > 0.05 else ""
        if len(recent) < 5_000:
            recent.append((event_id, source, seconds, customer, site, category, quantity))
        else:
            recent[rng.randrange(5_000)] = (event_id, source, seconds, customer, site, category, quantity)
        style = 1 if number % 20 == 7 else 2 if number % 50 == 3 else 0
        yield _line(event_id, source, _time(seconds, style), customer, site, category, quantity)


def write_events(path: Path, count: int, sites: int, seed: int = 7, order: str = "time") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as out:
        batch = []
        for line in events(count, sites, seed, order):
            batch.append(line)
            if len(batch) == 10_000:
                out.write("".join(batch))
                batch.clear()
        out.write("".join(batch))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    contract = sub.add_parser("contract", help="print the contract")
    contract.add_argument("--sites", type=int, default=60)
    ev = sub.add_parser("events", help="write N events as JSON Lines")
    ev.add_argument("--events", type=int, default=1_000_000)
    ev.add_argument("--sites", type=int, default=60)
    ev.add_argument("--seed", type=int, default=7)
    ev.add_argument("--order", choices=("time", "random"), default="time")
    ev.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.what == "contract":
        sys.stdout.write(contract_text(args.sites))
    else:
        write_events(args.output, args.events, args.sites, args.seed, args.order)
    return 0


if __name__ == "__main__":
    sys.exit(main())
