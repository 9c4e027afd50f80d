"""A stored invoice document read back (invoicing/stored.py) renders as the invoice it was made from: the
portal previews and re-renders stored invoices this way, so the figures cannot drift from what was stored."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from dsl.compile import compile_file
from engine.evaluate import Timeline, bill
from engine.periods import Period
from invoicing.csv_view import render_csv
from invoicing.invoice import build_invoice, invoice_json
from invoicing.pdf import render_html
from invoicing.stored import invoice_from_document
from invoicing.text import render_text
from metering.aggregate import meter

CONTRACTS = Path(__file__).resolve().parents[1] / "contracts"


def _invoice(name: str, period: Period):
    plan = compile_file(str(CONTRACTS / f"{name}.pricing")).plan
    terms = plan.terms
    metered = meter([str(CONTRACTS / f"{name}.events.jsonl")], terms.contract_id, ZoneInfo(terms.timezone),
                    lambda rejection: None, until=period)
    timeline = Timeline(((Period.of(terms.starts), plan),))
    return build_invoice(bill(timeline, metered.usage, period), metered.unbilled.period(period))


@pytest.mark.parametrize("name, period", [("acme-health", Period(2026, 5)), ("acme-health", Period(2026, 6)),
                                          ("northwind-cap", Period(2026, 3))])
def test_a_document_read_back_renders_as_the_invoice(name, period):
    invoice = _invoice(name, period)
    document = invoice_json(invoice)
    again = invoice_from_document(document, timezone=invoice.timezone)
    assert invoice_json(again) == document
    assert render_csv(again) == render_csv(invoice)
    assert render_text(again) == render_text(invoice)
    issued = {"number": "UK-2026-000007", "status": "issued", "issued_on": period.last_day}
    assert render_html(again, **issued) == render_html(invoice, **issued)
    assert any(line.kind != "usage" for site in invoice.sites for line in site.lines) or name == "northwind-cap"
