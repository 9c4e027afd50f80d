"""The legal invoice in the database (interfaces §4): a draft names the seller and the buyer and is taxed at
today's rate; issuing dates it (issue date = tax point, due date by the payment terms) and taxes it at the
tax point's rate; a profile change makes the draft stale; a USD invoice with UK VAT is not issued before finance
records the GBP rate of its tax point."""

from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

import pytest
from conftest import TEST_SELLER

from engine.refusal import Refused
from ledger.invoices import Selector
from ledger.profiles import save_profile
from lifecycle.transitions import approve, close, issue

from .support import TINY, event, write_lines
from .test_lifecycle import MAY, THRESHOLD, WHO, customers, snapshot  # noqa: F401  (fixtures)

ISSUED_AT = dt.datetime(2026, 7, 3, 23, 30, tzinfo=dt.timezone.utc)   # 4 July in London: the tax point


def _profile(sessions, customer="tiny", **changes):
    fields = {"name": "Tiny Ltd", "address": ["1 High St", "London EC1A 1AA"], "tax_treatment": "uk_standard",
              "purchase_order": "PO-7781", **changes}
    with sessions.begin() as session:
        save_profile(session, customer, WHO, fields)


def test_a_draft_names_both_parties_and_issuing_dates_and_taxes_it(customers, sessions):
    _profile(sessions, terms_days=14)
    with sessions.begin() as session:
        draft, _ = close(session, "tiny", MAY, seller=TEST_SELLER, now=ISSUED_AT)
        document = draft.document
    assert document["seller"]["name"] == TEST_SELLER["name"] and document["buyer"]["purchase_order"] == "PO-7781"
    assert (document["issue_date"], document["due_date"], document["payment_terms"]) == (None, None, "net 14")
    totals = document["totals"]
    assert (totals["credits"], totals["net"], totals["tax"], totals["due"]) == ("0.00", "134.00", "26.80", "160.80")
    with sessions.begin() as session:
        approve(session, Selector("tiny", MAY), WHO, threshold=THRESHOLD, seller=TEST_SELLER, now=ISSUED_AT)
    with sessions.begin() as session:
        issued = issue(session, Selector("tiny", MAY), WHO, threshold=THRESHOLD, prefix="TEST", seller=TEST_SELLER,
                       now=ISSUED_AT).invoice.document
    assert (issued["issue_date"], issued["tax_point"], issued["due_date"]) == ("2026-07-04", "2026-07-04",
                                                                               "2026-07-18")
    assert issued["tax"] == {"treatment": "uk_standard", "rate": "0.20", "net": "134.00", "amount": "26.80",
                             "amount_gbp": "26.80", "fx_rate": None, "note": None}


def test_a_profile_change_makes_the_draft_stale(customers, sessions):
    _profile(sessions)
    with sessions.begin() as session:
        close(session, "tiny", MAY, seller=TEST_SELLER)
    _profile(sessions, purchase_order="PO-9999")
    with sessions.begin() as session, pytest.raises(Refused) as refused:
        approve(session, Selector("tiny", MAY), WHO, threshold=THRESHOLD, seller=TEST_SELLER)
    assert refused.value.refusal.code == "draft-outdated"


def test_reverse_charge_carries_the_wording_and_no_vat(customers, sessions, cli):
    _profile(sessions, tax_treatment="reverse_charge", tax_id="DE811907980")
    assert cli("close", "--period", "2026-05", "--customer", "tiny")[0] == 0
    status, out, _ = cli("invoice", "--customer", "tiny", "--period", "2026-05", "--format", "json")
    document = json.loads(out)
    assert status == 0 and document["tax"]["note"].startswith("Outside the scope of UK VAT: reverse charge")
    assert document["totals"]["tax"] == "0.00" and document["totals"]["due"] == document["totals"]["net"]


def test_a_usd_invoice_with_uk_vat_waits_for_the_gbp_rate_of_its_tax_point(cli, sessions, tmp_path):
    assert cli("db", "upgrade")[0] == 0
    path = tmp_path / "usd.pricing"
    path.write_text(TINY.replace("currency GBP", "currency USD"), encoding="utf-8")
    assert cli("contract", "save", path)[0] == 0
    events = [event(f"u{n}", f"2026-05-{1 + n:02d}T10:00:00Z", "10", customer="tiny") for n in range(10)]
    assert cli("ingest", write_lines(tmp_path / "events.jsonl", events))[0] == 0
    _profile(sessions)
    assert cli("close", "--period", "2026-05")[0] == 0
    assert cli("approve", "--customer", "tiny", "--period", "2026-05")[0] == 0
    before = snapshot(sessions)
    status, _, err = cli("issue", "--customer", "tiny", "--period", "2026-05")
    assert status == 1 and "no GBP rate for USD" in err and snapshot(sessions) == before
    status, _, err = cli("fx", "set", "--date", "2026-07-03", "--currency", "GBP", "--gbp", "1")
    assert status == 1 and "other than GBP" in err
    status, _, err = cli("fx", "set", "--date", "2026-07-03", "--currency", "USD", "--gbp", "-1")
    assert status == 1 and "positive" in err
    tax_point = dt.datetime.now(ZoneInfo(TEST_SELLER["timezone"])).date()
    assert cli("fx", "set", "--date", tax_point.isoformat(), "--currency", "USD", "--gbp", "0.7931")[0] == 0
    status, _, err = cli("issue", "--customer", "tiny", "--period", "2026-05")
    assert status == 0, err
    status, out, _ = cli("invoice", "--customer", "tiny", "--period", "2026-05", "--format", "json")
    tax = json.loads(out)["tax"]
    assert tax["fx_rate"] == "0.7931" and tax["amount_gbp"] is not None


def test_where_the_seller_charges_vat_an_issued_invoice_is_credited_never_voided(customers, sessions):
    from lifecycle.transitions import void

    _profile(sessions)
    with sessions.begin() as session:
        close(session, "tiny", MAY, seller=TEST_SELLER)
    with sessions.begin() as session:
        approve(session, Selector("tiny", MAY), WHO, threshold=THRESHOLD, seller=TEST_SELLER)
    with sessions.begin() as session:
        number = issue(session, Selector("tiny", MAY), WHO, threshold=THRESHOLD, prefix="TEST",
                       seller=TEST_SELLER).invoice.number
    before = snapshot(sessions)
    with sessions.begin() as session, pytest.raises(Refused) as refused:
        void(session, Selector(number=number), WHO, "wrong sites", charges_vat=True)
    assert refused.value.refusal.code == "vat-invoice-not-voided" and refused.value.refusal.action == "credit"
    assert snapshot(sessions) == before


def test_the_issued_pdf_and_the_command_line_show_the_legal_invoice(customers, sessions, cli):
    """The PDF frozen at issue carries the seller, the buyer, the dates, the VAT and the amount due; `billing
    invoice --customer` renders the stored invoice in every format, numbered once issued."""
    import io

    from pypdf import PdfReader

    from ledger.invoices import find
    from ledger.models import InvoicePdf

    _profile(sessions)
    assert cli("close", "--period", "2026-05", "--customer", "tiny")[0] == 0
    status, draft_text, _ = cli("invoice", "--customer", "tiny", "--period", "2026-05", "--format", "text")
    assert status == 0 and "Not a VAT invoice" in draft_text and "Tiny Ltd" in draft_text
    assert cli("approve", "--customer", "tiny", "--period", "2026-05")[0] == 0
    assert cli("issue", "--customer", "tiny", "--period", "2026-05")[0] == 0
    with sessions() as session:
        row = find(session, Selector("tiny", MAY))
        number, document = row.number, row.document
        pdf = session.query(InvoicePdf).filter_by(invoice_id=row.id).one().pdf
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    flat = " ".join(text.split())
    for expected in (number, TEST_SELLER["name"], TEST_SELLER["tax_id"], "Tiny Ltd", "PO-7781", "20%"):
        assert expected in flat, expected
    assert document["totals"]["due"] in flat.replace(",", "")
    status, issued_text, _ = cli("invoice", "--customer", "tiny", "--period", "2026-05", "--format", "text")
    assert status == 0 and number in issued_text and document["due_date"] is not None
    status, csv_text, _ = cli("invoice", "--customer", "tiny", "--period", "2026-05", "--format", "csv")
    assert status == 0 and number in csv_text and "PO-7781" in csv_text
