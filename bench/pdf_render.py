"""How fast the invoice PDF renders: a 60-site, 10-category invoice (about 600 lines) against a bare table.

    .venv/bin/python bench/pdf_render.py [--sites 60] [--repeat 3] [--output bench/out/invoice-60.pdf]

The contract is bench/gen_workload.py's; the usage is made here, straight into
`engine.usage.Usage` (April and May 2026, so caps have something counted
before May). In the same run, the same rows the breakdown prints (lines, tier
rows, explanations) are rendered by WeasyPrint as one bare HTML table with no
styling: the document's target is at most 1.5 times that table's time, and
under 10 s. Each render runs in a fresh interpreter that has built the same
invoice, as `billing invoice --format pdf` does, and the two alternate, so that
neither inherits the other's heap or the machine's passing load.
"""

from __future__ import annotations

import argparse
import datetime as dt
import html
import io
import json
import random
import statistics
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pypdf
import weasyprint
from gen_workload import CATEGORIES, PERIOD, category_id, contract_text, site_id

from dsl.compile import compile_source
from engine.evaluate import Timeline, bill
from engine.periods import Period
from engine.usage import Usage
from invoicing.invoice import Invoice, build_invoice
from invoicing.pdf import render_pdf

TARGET_RATIO = 1.5
TARGET_SECONDS = 10


def _quantity(rng: random.Random) -> Decimal:
    roll = rng.random()
    if roll < 0.5:
        return Decimal(rng.randint(1, 3_000))
    if roll < 0.8:
        return Decimal(rng.randint(3_000, 30_000))
    return Decimal(rng.randint(0, 400_000)) / 4


def invoice(sites: int, seed: int = 7) -> Invoice:
    """The May 2026 invoice of gen_workload's contract, every site using every category in April and May."""
    compiled = compile_source(contract_text(sites).encode(), "bench.pricing")
    plan = compiled.plan
    rng = random.Random(seed)
    usage = Usage()
    for day in (dt.date(2026, 4, 15), dt.date(2026, 5, 15)):
        for site in range(sites):
            for category in range(CATEGORIES):
                usage.add(day, site_id(site), category_id(category), _quantity(rng), rng.randint(1, 40))
    timeline = Timeline(((Period.of(plan.terms.starts), plan),))
    return build_invoice(bill(timeline, usage, Period.parse(PERIOD)))


def bare_table(doc: Invoice) -> tuple[str, int]:
    """The breakdown's rows (site, line, tier, explanation and site total rows) as one unstyled HTML table."""
    rows = []
    for site in doc.sites:
        rows.append((f"{site.site} {site.name}", "", "", ""))
        for line in site.lines:
            if line.kind == "usage":
                price = f"{line.tiers[0].unit_price:f}" if len(line.tiers) == 1 else ""
                rows.append((line.label, f"{line.quantity:f}", price, f"{line.amount:f}"))
                rows += [("tier", f"{t.quantity:f}", f"{t.unit_price:f}", f"{t.amount:f}")
                         for t in line.tiers if len(line.tiers) > 1]
            else:
                rows.append((line.kind, "", "", f"{line.amount:f}"))
                rows.append((line.explanation, "", "", ""))
        rows.append(("site total", "", "", f"{site.total:f}"))
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<!DOCTYPE html><html><body><table>{body}</table></body></html>", len(rows)


def child(what: str, sites: int, output: Path | None) -> None:
    """One timed render in this fresh interpreter: print wall and CPU seconds and the page count."""
    doc = invoice(sites)
    bare_html, _ = bare_table(doc)
    render = (lambda: render_pdf(doc)) if what == "pdf" else (lambda: weasyprint.HTML(string=bare_html).write_pdf())
    wall, cpu = time.perf_counter(), time.process_time()
    pdf = render()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    if output:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_bytes(pdf)
    print(json.dumps({"wall": wall, "cpu": cpu, "pages": len(pypdf.PdfReader(io.BytesIO(pdf)).pages)}))


def timed(what: str, sites: int, output: Path | None = None) -> dict:
    done = subprocess.run([sys.executable, __file__, "--sites", str(sites), "--child", what,
                           *(["--output", str(output)] if output else [])],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--output", type=Path, help="also write the invoice PDF here")
    parser.add_argument("--child", choices=("pdf", "bare"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.sites, args.output)
        return 0

    doc = invoice(args.sites)
    lines = sum(len(site.lines) for site in doc.sites)
    runs = {"bare": [], "pdf": []}
    for round_ in range(args.repeat):
        for what in runs:
            output = args.output if what == "pdf" and round_ == args.repeat - 1 else None
            runs[what].append(timed(what, args.sites, output))
    (bare_wall, bare_cpu, bare_pages), (pdf_wall, pdf_cpu, pages) = (
        (statistics.median(r["wall"] for r in rs), statistics.median(r["cpu"] for r in rs), rs[0]["pages"])
        for rs in runs.values()
    )
    _, bare_rows = bare_table(doc)

    print(f"invoice: {len(doc.sites)} sites, {lines} lines, total {doc.money.format(doc.totals['total'])} "
          f"{doc.money.currency}; median of {args.repeat} renders, each in a fresh interpreter; wall clock (CPU)")
    print(f"  invoice PDF  {pdf_wall:6.2f} s ({pdf_cpu:.2f})  {pages:3d} pages  {pages / pdf_wall:5.1f} pages/s"
          f"  (HTML, checked sums, layout, PDF)")
    print(f"  bare table   {bare_wall:6.2f} s ({bare_cpu:.2f})  {bare_pages:3d} pages  "
          f"{bare_pages / bare_wall:5.1f} pages/s  ({bare_rows} rows, no styling)")
    ratio = pdf_wall / bare_wall
    met = ratio <= TARGET_RATIO and pdf_wall < TARGET_SECONDS
    print(f"  ratio {ratio:.2f}, CPU {pdf_cpu / bare_cpu:.2f} (target: at most {TARGET_RATIO}, "
          f"and under {TARGET_SECONDS} s): {'met' if met else 'NOT met'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
