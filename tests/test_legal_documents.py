"""The legal invoice on the documents (issue 16): what a UK VAT invoice must show, on the PDF, the text and the
CSV; the verification page's charges + credits = net and net + tax = due; "Not a VAT invoice" on drafts and test
documents; a file-mode document without legal fields unchanged; and the layout of issue 14 item 11."""

from __future__ import annotations

import copy
import csv
import io
import re
from decimal import Decimal

import legal_examples as examples
import pypdf
import pytest
from babel.numbers import format_decimal

from engine.money import display
from engine.periods import Period
from invoicing.legal_view import NOT_VAT, InconsistentInvoice
from invoicing.render import render_document
from invoicing.tax import REVERSE_CHARGE_NOTE

ISSUED = {"number": "UK-2026-000042", "status": "issued", "issued_on": examples.ISSUED}


def _amount(text: str) -> str:
    return format_decimal(Decimal(text), format="#,##0.00", locale="en_GB")


def _pages(document: dict, **marks) -> list[str]:
    data = render_document(examples.read_back(document), "pdf", **marks)
    return [" ".join(page.extract_text().split()) for page in pypdf.PdfReader(io.BytesIO(data)).pages]


def _rows(document: dict, **marks) -> list[dict]:
    text = render_document(examples.read_back(document), "csv", number=marks.get("number"))
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture(scope="module")
def uk():
    return examples.uk_vat()


@pytest.fixture(scope="module")
def uk_pages(uk):
    return _pages(uk, **ISSUED)


def test_the_pdf_shows_what_a_uk_vat_invoice_must(uk, uk_pages):
    text = " ".join(uk_pages)
    first = uk_pages[0]
    seller, buyer = uk["seller"], uk["buyer"]
    assert "UK-2026-000042" in first and "Issue date 3 July 2026" in first and "Tax point 3 July 2026" in first
    assert seller["name"] in first and " ".join(seller["address"]) in first
    assert f"Company number {seller['company_number']}" in first and f"VAT number {seller['tax_id']}" in first
    assert buyer["name"] in first and " ".join(buyer["address"]) in first
    assert f"VAT number {buyer['tax_id']}" in first and f"Purchase order {buyer['purchase_order']}" in first
    totals = uk["totals"]
    assert f"Total charges {_amount(totals['total'])}" in first
    assert f"Credits {_amount(totals['credits'])}" in first
    assert f"Total excluding VAT {_amount(totals['net'])}" in first
    assert f"VAT at 20% {_amount(totals['tax'])}" in first
    assert f"Amount due {display(Decimal(totals['due']), 'GBP')}" in first
    [credit] = uk["credits"]
    assert f"{credit['grant']} {_amount(credit['amount'])}" in first
    assert "Due date 2 August 2026" in first and "Net 30: payable within 30 days" in first
    assert all(line in first for line in seller["bank"])
    assert NOT_VAT not in text
    assert "Standard processing 5,200 0.85 4,420.00" in text     # description, quantity, unit price per line


def test_the_verification_page_proves_charges_credits_net_tax_and_due(uk, uk_pages):
    text = " ".join(uk_pages)
    totals = {key: _amount(value) for key, value in uk["totals"].items()}
    assert f"Credits drawn (1 grant) {totals['credits']} Credits {totals['credits']} agrees" in text
    assert f"Total charges + credits {totals['net']} Total excluding VAT {totals['net']} agrees" in text
    assert f"rounded down {totals['tax']} VAT at 20% {totals['tax']} agrees" in text
    assert f"Total excluding VAT + VAT at 20% {totals['due']} Amount due {totals['due']} agrees" in text
    assert Decimal(uk["totals"]["net"]) + Decimal(uk["totals"]["tax"]) == Decimal(uk["totals"]["due"])


@pytest.mark.parametrize("break_it", [
    lambda d: d["totals"].__setitem__("net", "8583.34"),
    lambda d: d["totals"].__setitem__("due", "10300.00"),
    lambda d: d["credits"][0].__setitem__("amount", "-400.00"),
    lambda d: (d["totals"].__setitem__("tax", "1716.67"), d["tax"].__setitem__("amount", "1716.67"),
               d["totals"].__setitem__("due", "10300.00")),
])
@pytest.mark.parametrize("fmt", ["pdf", "text", "csv"])
def test_figures_that_do_not_add_up_are_refused_by_every_rendering(uk, break_it, fmt):
    wrong = copy.deepcopy(uk)
    break_it(wrong)
    with pytest.raises(InconsistentInvoice, match="does not add up"):
        render_document(examples.read_back(wrong), fmt, **(ISSUED if fmt == "pdf" else {"number": "UK-2026-000042"}))


def test_reverse_charge_wording_and_no_vat():
    document = examples.reverse_charge()
    text = " ".join(_pages(document, **ISSUED))
    assert " ".join(REVERSE_CHARGE_NOTE.split()) in text
    assert "VAT: reverse charge (0%) 0.00" in text and f"VAT number {document['buyer']['tax_id']}" in text
    assert "Due date 17 August 2026" in text and "Net 45" in text
    plain = render_document(examples.read_back(document), "text", number="UK-2026-000042")
    assert REVERSE_CHARGE_NOTE in " ".join(plain.split())


def test_usd_invoice_states_its_vat_in_gbp_with_the_rate():
    document = examples.usd_with_uk_vat()
    tax = document["tax"]
    text = " ".join(_pages(document, **ISSUED))
    assert f"VAT in GBP: {display(Decimal(tax['amount_gbp']), 'GBP')}, at 0.7912 GBP per USD" in text
    assert f"VAT at 20% × 0.7912 GBP per USD, rounded down {_amount(tax['amount_gbp'])} VAT in GBP" in text
    [row] = [r for r in _rows(document, number="UK-2026-000042") if r["kind"] == "tax"]
    assert (row["rate"], row["tax (GBP)"], row["fx_rate"], row["amount (USD)"]) == \
        (tax["rate"], tax["amount_gbp"], "0.7912", document["totals"]["tax"])
    draft = " ".join(_pages(examples.usd_with_uk_vat(fx_rate=None)))
    assert "VAT in GBP: stated when the invoice is issued" in draft


def test_exemption_wording():
    document = examples.exempt()
    text = " ".join(_pages(document, **ISSUED))
    assert "Exempt from tax: resale certificate CA-88412" in text and "Tax: exempt (0%)" in text
    assert "Net total" in text and "Tax id EIN 12-3456789" in text


def test_a_draft_and_a_test_document_say_not_a_vat_invoice():
    draft = examples.uk_vat(issue_date=None)
    pages = _pages(draft)
    assert all(f"{NOT_VAT}: a draft" in page for page in pages)
    assert "Tax point Not issued" in pages[0] and "Due date Not issued" in pages[0]
    assert f"{NOT_VAT}: a draft" in render_document(examples.read_back(draft), "text")
    assert any(r["description"] == "notice" and r["explanation"].startswith(NOT_VAT) for r in _rows(draft))
    test_env = examples.uk_vat(seller=examples.TEST_SELLER)
    pages = _pages(test_env, **ISSUED)
    assert all(f"{NOT_VAT}: made in the test environment" in page for page in pages)
    assert NOT_VAT in render_document(examples.read_back(test_env), "text", number="UK-2026-000042")


def test_text_writes_the_legal_money_for_people(uk):
    text = render_document(examples.read_back(uk), "text", number="UK-2026-000042")
    for key, title in (("credits", "Credits"), ("net", "Total excluding VAT"), ("tax", "VAT at 20%"),
                       ("due", "Amount due")):
        line = next(line for line in text.splitlines() if line.startswith(title + "  "))
        assert line.endswith(display(Decimal(uk["totals"][key]), "GBP"))
    assert "Invoice UK-2026-000042" in text and uk["seller"]["tax_id"] in text and "PO-7781" in text
    assert "Credit grant G-000004" in text and "[line 23]" in text    # the text is staff's: line numbers kept


def test_csv_carries_the_legal_fields_and_totals_that_add_up(uk):
    rows = _rows(uk, number="UK-2026-000042")
    details = {r["description"]: r["explanation"] for r in rows if r["kind"] == "invoice detail"}
    assert details["seller VAT number"] == uk["seller"]["tax_id"] and details["buyer purchase order"] == "PO-7781"
    assert (details["issue date"], details["tax point"], details["due date"]) == \
        (uk["issue_date"], uk["tax_point"], uk["due_date"])
    totals = {r["description"]: r["amount (GBP)"] for r in rows if r["kind"] == "invoice total"}
    assert totals == uk["totals"]
    credits = [Decimal(r["amount (GBP)"]) for r in rows if r["kind"] == "credit"]
    assert Decimal(totals["total"]) + sum(credits) == Decimal(totals["net"])
    assert Decimal(totals["net"]) + Decimal(totals["tax"]) == Decimal(totals["due"])


def test_csv_money_headers_name_the_currency():
    rows = list(csv.reader(io.StringIO(render_document(examples.charges("northwind-cap", Period(2026, 4)), "csv"))))
    assert "amount (USD)" in rows[0] and "unit_price (USD)" in rows[0] and "amount" not in rows[0]
    amounts = [row[rows[0].index("amount (USD)")] for row in rows[1:]]
    assert amounts and all(re.fullmatch(r"-?\d+\.\d\d", cell) for cell in amounts if cell)


def test_a_file_mode_document_has_no_legal_fields_and_renders_as_before():
    invoice = examples.charges("acme-health", Period(2026, 6))
    assert invoice.legal is None
    text = " ".join(" ".join(p.extract_text().split()) for p in pypdf.PdfReader(io.BytesIO(
        render_document(invoice, "pdf"))).pages)
    assert "Total due £9,083.33" in text and "From" not in text and NOT_VAT not in text and "Tax point" not in text
    assert "Amount due" not in render_document(invoice, "text")
    assert not [r for r in csv.DictReader(io.StringIO(render_document(invoice, "csv"))) if r["kind"] == "invoice detail"]


def test_two_sites_flow_onto_fewer_pages_with_no_site_named_in_a_running_header():
    pages = _pages(examples.legal_document("acme-health", Period(2026, 6), examples.Legal(
        seller=examples.UK_SELLER, buyer=examples.UK_BUYER, treatment="uk_standard")), **ISSUED)
    charges_only = [" ".join(p.extract_text().split()) for p in pypdf.PdfReader(io.BytesIO(
        render_document(examples.charges("acme-health", Period(2026, 6)), "pdf"))).pages]
    assert len(charges_only) == 2        # was 3: sites table, then a page per section
    assert len(pages) <= 3
    assert "Site total lon-01" in charges_only[0] and "Verification of totals" in charges_only[-1]
    # no running header naming a site ("lon-01 · London Bridge" on a page that also holds lds-02)
    assert not any(f"{site} · {name}" in p for p in charges_only + pages
                   for site, name in (("lon-01", "London Bridge"), ("lds-02", "Leeds")))


def test_the_tier_note_only_when_there_are_tier_rows():
    with_tiers = render_document(examples.charges("acme-health", Period(2026, 6)), "pdf")
    without = render_document(examples.charges("northwind-cap", Period(2026, 4)), "pdf")

    def text(data):
        return " ".join(" ".join(p.extract_text().split()) for p in pypdf.PdfReader(io.BytesIO(data)).pages)

    assert "tier 2" in text(with_tiers) and "Tier rows show" in text(with_tiers)
    assert "tier 1" not in text(without) and "Tier rows show" not in text(without)
