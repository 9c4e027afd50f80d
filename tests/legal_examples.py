"""Legal invoices built without a database, for tests and for the pictures in docs/images/.

The file mode's charges of contracts/ (as `billing invoice --contract … --events …` computes them), with the
legal fields `invoicing.legal.with_legal` adds in database mode, read back as the portal and the lifecycle read a
stored document (`invoicing.stored.invoice_from_document`).

    .venv/bin/python tests/legal_examples.py /tmp/legal     # writes the example PDFs there
"""

from __future__ import annotations

import datetime as dt
import sys
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from dsl.compile import compile_file
from engine.evaluate import Timeline, bill
from engine.periods import Period
from invoicing.invoice import build_invoice, invoice_json
from invoicing.legal import Legal, with_legal
from invoicing.stored import invoice_from_document
from metering.aggregate import meter

CONTRACTS = Path(__file__).resolve().parents[1] / "contracts"
UK_SELLER = {
    "name": "Meridian Billing Services Ltd", "company_number": "09876543",
    "address": ["5 Finsbury Avenue", "London", "EC2M 2PA", "United Kingdom"], "tax_id": "GB123456789",
    "bank": ["Bank: Barclays Bank UK PLC", "Account name: Meridian Billing Services Ltd", "Sort code: 20-00-00",
             "Account number: 43218765", "IBAN: GB33BUKB20000043218765", "BIC: BUKBGB22"],
}
TEST_SELLER = {**UK_SELLER, "name": "Example Billing Ltd (test)", "tax_id": "GB999999973"}
UK_BUYER = {"name": "Acme Health Ltd", "address": ["2 Harbour Exchange Square", "London", "E14 9GE"],
            "tax_id": "GB987654321", "purchase_order": "PO-7781"}
EU_BUYER = {"name": "Acme Health GmbH", "address": ["Friedrichstraße 68", "10117 Berlin", "Germany"],
            "tax_id": "DE811907980"}
US_BUYER = {"name": "Northwind Traders Inc.", "address": ["1 Market Street", "San Francisco, CA 94105"],
            "tax_id": "EIN 12-3456789", "purchase_order": "NW-2026-118"}
ISSUED = dt.date(2026, 7, 3)


def charges(name: str, period: Period):
    """The file mode's invoice of one of contracts/ for `period`."""
    plan = compile_file(str(CONTRACTS / f"{name}.pricing")).plan
    terms = plan.terms
    metered = meter([str(CONTRACTS / f"{name}.events.jsonl")], terms.contract_id, ZoneInfo(terms.timezone),
                    lambda rejection: None, until=period)
    timeline = Timeline(((Period.of(terms.starts), plan),))
    return build_invoice(bill(timeline, metered.usage, period), metered.unbilled.period(period))


def legal_document(name: str, period: Period, legal: Legal, *, issue_date: dt.date | None = ISSUED) -> dict:
    """The stored document of the database mode: the charges' JSON with the legal fields."""
    return with_legal(invoice_json(charges(name, period)), legal, issue_date=issue_date, as_of=ISSUED)


def read_back(document: dict):
    return invoice_from_document(document, timezone="Europe/London")


def uk_vat(issue_date: dt.date | None = ISSUED, seller: dict = UK_SELLER) -> dict:
    """acme-health, June 2026 (two sites): UK VAT at 20% in GBP, a credit of 500.00 drawn."""
    credit = ({"grant": "G-000004", "amount": "-500.00", "remaining": "0.00"},)
    return legal_document("acme-health", Period(2026, 6),
                          Legal(seller=seller, buyer=UK_BUYER, treatment="uk_standard", credits=credit),
                          issue_date=issue_date)


def reverse_charge() -> dict:
    """acme-health, June 2026, billed to a German business: the reverse charge."""
    return legal_document("acme-health", Period(2026, 6),
                          Legal(seller=UK_SELLER, buyer=EU_BUYER, treatment="reverse_charge", terms_days=45))


def usd_with_uk_vat(fx_rate: Decimal | None = Decimal("0.7912")) -> dict:
    """northwind-cap, April 2026, in USD with UK VAT: its VAT stated in GBP at the tax point's rate."""
    return legal_document("northwind-cap", Period(2026, 4),
                          Legal(seller=UK_SELLER, buyer=US_BUYER, treatment="uk_standard", fx_rate=fx_rate))


def exempt() -> dict:
    return legal_document("northwind-cap", Period(2026, 4),
                          Legal(seller=UK_SELLER, buyer=US_BUYER, treatment="exempt",
                                exempt_reason="resale certificate CA-88412"))


EXAMPLES = {"invoice-uk-vat": uk_vat, "invoice-reverse-charge": reverse_charge, "invoice-usd-uk-vat": usd_with_uk_vat}


def main(folder: str) -> None:
    from invoicing.render import render_document

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    for name, build in EXAMPLES.items():
        (out / f"{name}.pdf").write_bytes(render_document(read_back(build()), "pdf", number="UK-2026-000042",
                                                          status="issued", issued_on=ISSUED))
    (out / "invoice-two-sites.pdf").write_bytes(render_document(charges("acme-health", Period(2026, 6)), "pdf"))


if __name__ == "__main__":
    main(sys.argv[1])
