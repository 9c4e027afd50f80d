"""The PDF and CSV invoices say what the JSON says: read back, added up, and compared."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import json
import re
import subprocess
from decimal import Decimal
from pathlib import Path

import pypdf
import pytest
from babel.numbers import format_decimal

from dsl.compile import compile_source
from engine.evaluate import Timeline, bill
from engine.periods import Period
from engine.usage import Usage
from invoicing.csv_view import render_csv
from invoicing.invoice import build_invoice
from invoicing.pdf import DRAFT_MARKER, InconsistentInvoice, render_html, render_pdf

ROOT = Path(__file__).resolve().parents[1]
CONTRACTS = ROOT / "contracts"


def _amount(text: str, locale: str = "en_GB") -> str:
    """A JSON amount ("9083.33") as the PDF writes it ("9,083.33")."""
    return format_decimal(Decimal(text), format="#,##0.00", locale=locale)


def _pdf_pages(data: bytes) -> list[str]:
    return [page.extract_text() for page in pypdf.PdfReader(io.BytesIO(data)).pages]


def _file_invoice(billing_exe, folder: Path, name: str, period: str, fmt: str) -> Path:
    """`billing invoice` in file mode for one of contracts/, written to `folder` in `fmt`."""
    out = folder / f"{name}-{period}.{fmt}"
    done = subprocess.run([billing_exe, "invoice", "--contract", CONTRACTS / f"{name}.pricing", "--events",
                           CONTRACTS / f"{name}.events.jsonl", "--period", period, "--format", fmt, "--output", out],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode in (0, 1), done.stderr  # 1: the example events include rejected lines on purpose
    assert "Traceback" not in done.stderr
    return out


@pytest.fixture(scope="module")
def acme_june(billing_exe, tmp_path_factory):
    """The acme-health invoice of June 2026: its JSON, and the text of its PDF's pages."""
    folder = tmp_path_factory.mktemp("acme")
    document = json.loads(_file_invoice(billing_exe, folder, "acme-health", "2026-06", "json").read_text())
    return document, _pdf_pages(_file_invoice(billing_exe, folder, "acme-health", "2026-06", "pdf").read_bytes())


def _many_sites_invoice(sites: int = 60):
    """A generated contract of `sites` sites and ten categories (flat and graduated), with minimums and caps."""
    categories = [f'    category c{i} "Category {i}" rate {Decimal("0.85") + Decimal(i) / 10}' for i in range(8)]
    categories += ['    category c8 "Category 8" graduated { up to 1_000 at 2.00 up to 5_000 at 1.50 above at 1.10 }',
                   '    category c9 "Category 9" graduated { up to 500 at 3.00 above at 2.50 }']
    site_blocks = [f'    site "s-{n:03d}" "Site {n}" {{ {"no cap" if n % 9 == 4 else ""} }}' for n in range(sites)]
    text = "\n".join([
        'contract "many-sites" {', '    customer "Many Sites plc"', "    currency GBP", "    starts 2026-01-01",
        '    timezone "Europe/London"', "    rounding half_up", *categories,
        "    defaults {", "        minimum 2_500.00 monthly on c0, c1", "        cap 6_000.00 yearly on c2, c3", "    }",
        *site_blocks, "}",
    ]) + "\n"
    compiled = compile_source(text.encode(), "many-sites.pricing")
    assert compiled.ok, compiled.diagnostics
    usage = Usage()
    for month in (4, 5):
        for n in range(sites):
            for i in range(10):
                quantity = Decimal((n * 37 + i * 101 + month * 13) % 6_000) + Decimal("0.25") * (i % 3)
                usage.add(dt.date(2026, month, 10), f"s-{n:03d}", f"c{i}", quantity)
    plan = compiled.plan
    return build_invoice(bill(Timeline(((Period(2026, 1), plan),)), usage, Period(2026, 5)))


@pytest.fixture(scope="module")
def many_sites():
    return _many_sites_invoice()


@pytest.fixture(scope="module")
def many_sites_pages(many_sites):
    """The pages of the sixty-site invoice, issued (a draft's marker is checked on the acme-health invoice)."""
    return _pdf_pages(render_pdf(many_sites, number="UK-2026-000042", status="issued", issued_on=dt.date(2026, 6, 3)))


def test_pdf_total_site_totals_and_draft_marker_agree_with_json(acme_june):
    document, pages = acme_june
    text = "\n".join(pages)
    assert f"Total due £{_amount(document['totals']['total'])}" in text
    for kind, title in (("usage", "Usage"), ("minimum", "Minimum true-ups"), ("cap", "Cap reductions")):
        assert f"{title} {_amount(document['totals'][kind])}" in pages[0]
    for site in document["sites"]:
        by_kind = [sum((Decimal(line["amount"]) for line in site["lines"] if line["kind"] == kind), Decimal("0.00"))
                   for kind in ("usage", "minimum", "cap")]
        row = " ".join([site["site"], site["name"], *(_amount(str(v)) for v in by_kind), _amount(site["total"])])
        assert row in pages[0]
        assert f"Site total {site['site']} {_amount(site['total'])}" in text
    assert all(DRAFT_MARKER in page for page in pages)
    assert document["contract_version"] in pages[0]


def test_pdf_lines_show_tiers_and_plain_language_explanations(acme_june, billing_exe, tmp_path):
    text = "\n".join(acme_june[1])
    assert "Manual review 1,500 2,750.00" in text
    assert "tier 2 500 1.50 750.00" in text
    assert "Monthly minimum 1,333.33 (prorated: 16 of 30 days of 2,500.00) on standard, expedited" in text
    # what the rule says, never a contract line number the customer cannot look up
    assert "true-up 160.00." in text and not re.search(r"[Cc]ontract line \d", text)
    assert "Priced for this site: the contract sets this site's own price." in text
    assert "Disabled for this site (the contract says “disable review”): not billed." in text
    cap = "\n".join(_pdf_pages(_file_invoice(billing_exe, tmp_path, "northwind-cap", "2026-05", "pdf").read_bytes()))
    assert re.search(r"Annual cap [\d,]+\.\d\d on .*; [\d,]+\.\d\d counted before this period", cap)


def test_pdf_lists_what_was_not_billed(billing_exe, tmp_path):
    document = json.loads(_file_invoice(billing_exe, tmp_path, "acme-health", "2026-05", "json").read_text())
    text = "\n".join(_pdf_pages(_file_invoice(billing_exe, tmp_path, "acme-health", "2026-05", "pdf").read_bytes()))
    assert document["unbilled"]
    assert "Usage not billed" in text
    for group in document["unbilled"]:
        assert f"{group['reason']} {group['site']} {group['category']} {group['events']}" in text


def test_issued_invoice_shows_its_number_on_every_page(many_sites_pages):
    assert all("Invoice UK-2026-000042" in page for page in many_sites_pages)
    assert "Issue date 3 June 2026" in many_sites_pages[0]
    assert not any(DRAFT_MARKER in page for page in many_sites_pages)


def test_number_only_once_issued(many_sites):
    with pytest.raises(ValueError):
        render_html(many_sites, number="UK-2026-000042")
    with pytest.raises(ValueError):
        render_html(many_sites, status="issued", issued_on=dt.date(2026, 6, 3))


def test_every_page_of_a_sixty_site_invoice_says_page_x_of_y(many_sites, many_sites_pages):
    count = len(many_sites_pages)
    assert len(many_sites.sites) == 60 and count > 10
    for number, page in enumerate(many_sites_pages, start=1):
        assert f"Page {number} of {count}" in page


def test_column_headings_repeat_on_every_breakdown_page(many_sites_pages):
    breakdown = [page for page in many_sites_pages if "Site total s-" in page]
    assert len(breakdown) > 5
    assert all("DESCRIPTION QUANTITY UNIT PRICE AMOUNT (GBP)" in page for page in breakdown)


def test_sixty_site_pdf_agrees_with_the_invoice(many_sites, many_sites_pages):
    text = "\n".join(many_sites_pages)
    totals = many_sites.totals
    assert f"Total due £{_amount(str(totals['total']))}" in text
    for site in many_sites.sites:
        assert f"Site total {site.site} {_amount(str(site.total))}" in text
    assert "Verification of totals" in many_sites_pages[-1] or "Verification of totals" in many_sites_pages[-2]
    assert totals["cap"] < 0 and totals["minimum"] > 0


def test_fonts_are_embedded():
    reader = pypdf.PdfReader(io.BytesIO(render_pdf(_many_sites_invoice(3))))
    fonts = [font.get_object() for page in reader.pages for font in page["/Resources"]["/Font"].values()]
    descriptors = [f["/DescendantFonts"][0].get_object()["/FontDescriptor"] for f in fonts]
    assert descriptors and all("/FontFile2" in d for d in descriptors)
    assert all("DejaVu" in d["/FontName"] for d in descriptors)


def test_amounts_follow_the_locale():
    invoice = _many_sites_invoice(2)
    html = render_html(invoice, locale="de_DE")
    assert _amount(str(invoice.totals["total"]), "de_DE") in html
    assert "Mai 2026" in html


def test_verification_refuses_an_inconsistent_invoice(many_sites):
    site = many_sites.sites[0]
    wrong = dataclasses.replace(many_sites, sites=(dataclasses.replace(site, total=site.total + Decimal("0.01")),
                                                   *many_sites.sites[1:]))
    with pytest.raises(InconsistentInvoice, match=f"site {site.site}"):
        render_pdf(wrong)


def _csv_rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.mark.parametrize("name, period", [("acme-health", "2026-05"), ("acme-health", "2026-06"),
                                          ("northwind-cap", "2026-05")])
def test_csv_rows_add_up_to_the_json_totals(billing_exe, tmp_path, name, period):
    document = json.loads(_file_invoice(billing_exe, tmp_path, name, period, "json").read_text())
    rows = _csv_rows(_file_invoice(billing_exe, tmp_path, name, period, "csv").read_text())
    lines = [row for row in rows if row["kind"] in ("usage", "minimum", "cap")]
    assert len(lines) == sum(len(site["lines"]) for site in document["sites"])
    amount = f"amount ({document['currency']})"
    invoice_totals = {row["description"]: row[amount] for row in rows if row["kind"] == "invoice total"}
    assert invoice_totals == document["totals"]
    for kind in ("usage", "minimum", "cap"):
        assert sum(Decimal(r[amount]) for r in lines if r["kind"] == kind) == Decimal(document["totals"][kind])
    for site in document["sites"]:
        mine = [r for r in rows if r["site"] == site["site"]]
        total = [r[amount] for r in mine if r["kind"] == "site total"]
        assert total == [site["total"]]
        assert sum(Decimal(r[amount]) for r in mine if r["kind"] in ("usage", "minimum", "cap")) == Decimal(total[0])
    assert len([r for r in rows if r["kind"] == "not billed"]) == len(document["unbilled"])
    assert all(r["invoice"] == "DRAFT" for r in rows)


def test_csv_amounts_keep_the_currency_places(many_sites):
    rows = _csv_rows(render_csv(many_sites, number="UK-2026-000042"))
    assert all(re.fullmatch(r"-?\d+\.\d\d", r["amount (GBP)"]) for r in rows if r["kind"] != "not billed")
    assert {r["invoice"] for r in rows} == {"UK-2026-000042"}
    total = next(r["amount (GBP)"] for r in rows if r["kind"] == "invoice total" and r["description"] == "total")
    assert sum(Decimal(r["amount (GBP)"]) for r in rows if r["kind"] == "site total") == Decimal(total)


def test_pdf_to_a_path_that_cannot_be_written_is_refused(run_billing, tmp_path):
    done = run_billing("invoice", "--contract", CONTRACTS / "acme-health.pricing", "--events",
                       CONTRACTS / "acme-health.events.jsonl", "--period", "2026-06", "--format", "pdf",
                       "--output", tmp_path / "missing" / "invoice.pdf")
    assert done.returncode == 2
    assert "cannot write the output" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "missing").exists()
