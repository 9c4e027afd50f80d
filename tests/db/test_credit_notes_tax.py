"""Credit notes that carry tax and credit account lines (lifecycle/credit_notes.py, interfaces §4 Corrections):
the invoice's treatment, rate and tax point; a partial credit's tax rounded down once; the credit notes of an
invoice never credit more than its net (what grants paid is not credited) nor its tax, and crediting all of its
net credits exactly its tax, in its currency and in GBP; the account lines that charge can be credited, those
that reduce cannot; a credit note changes nothing later periods count; a void gives the grants back."""

from __future__ import annotations

import datetime as dt
import io
import json
from decimal import ROUND_DOWN, Decimal

import pypdf
import pytest
from conftest import TEST_SELLER
from sqlalchemy import select

from audit.log import AuditEntry
from engine.money import display
from engine.periods import Period
from engine.refusal import Refused
from ledger.invoices import Selector, find
from ledger.models import Invoice
from ledger.profiles import save_profile
from lifecycle.credit_notes import credit, remaining
from lifecycle.models import CreditNote
from lifecycle.transitions import approve, close, issue, void

from .conftest import EXAMPLES
from .support import TINY, event, write_lines
from .test_lifecycle import MAY, THRESHOLD, WHO, customers, snapshot  # noqa: F401, F811  (fixtures)

ISSUED_AT = dt.datetime(2026, 7, 3, 23, 30, tzinfo=dt.UTC)   # 4 July in London: the tax point
TAX_POINT = "2026-07-04"
GLOBEX = EXAMPLES.with_name("examples-account") / "globex-account"
CENT = Decimal("0.01")


def _profile(sessions, customer="tiny", **changes):
    fields = {"name": "Tiny Ltd", "address": ["1 High St", "London EC1A 1AA"], "tax_treatment": "uk_standard",
              **changes}
    with sessions.begin() as session:
        save_profile(session, customer, WHO, fields)


def _issue(sessions, customer="tiny", period=MAY) -> Invoice:
    with sessions.begin() as session:
        close(session, customer, period, seller=TEST_SELLER, now=ISSUED_AT)
    with sessions.begin() as session:
        approve(session, Selector(customer, period), WHO, threshold=THRESHOLD, seller=TEST_SELLER, now=ISSUED_AT)
    with sessions.begin() as session:
        return issue(session, Selector(customer, period), WHO, threshold=THRESHOLD, prefix="TEST",
                     seller=TEST_SELLER, now=ISSUED_AT).invoice


def _credit_note(cli, number: str) -> dict:
    status, out, err = cli("credit-note", number, "--format", "json")
    assert status == 0, err
    return json.loads(out)


def _credit(cli, invoice: Invoice, *stated: str, reason="correction") -> dict:
    status, out, err = cli("credit", "--number", invoice.number, *stated, "--reason", reason, "--format", "json")
    assert status == 0, err
    return json.loads(out)


def _refused(cli, invoice: Invoice, *stated: str) -> str:
    status, out, err = cli("credit", "--number", invoice.number, *stated, "--reason", "r")
    assert (status, out) == (1, ""), err
    return err


def _down(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, rounding=ROUND_DOWN)


def _sum(notes: list[dict], figure: str) -> Decimal:
    return sum((Decimal(note["totals"][figure]) for note in notes), Decimal(0))


def test_partial_credits_carry_the_rounded_down_tax_and_the_last_carries_the_rest(customers, cli, sessions):
    _profile(sessions)
    invoice = _issue(sessions)
    totals, tax = invoice.document["totals"], invoice.document["tax"]
    rate, net = Decimal(tax["rate"]), Decimal(totals["net"])
    assert (tax["treatment"], invoice.document["tax_point"]) == ("uk_standard", TAX_POINT)
    # 0.07 at 20% is 0.014: 0.01; 0.04 is 0.008: nothing. The rest's own tax would be short of the invoice's
    # by the pennies the partial credits rounded away; the last credit note carries them.
    first = _credit(cli, invoice, "--site", "s1", "--amount", "0.07")
    second = _credit(cli, invoice, "--site", "s2", "--amount", "0.04")
    assert (first["tax"]["amount"], second["tax"]["amount"]) == (f"{_down(Decimal('0.07') * rate)}",
                                                                 f"{_down(Decimal('0.04') * rate)}")
    assert first["tax"]["tax_point"] == TAX_POINT and first["tax"]["rate"] == tax["rate"]
    assert first["invoice"] == {"number": invoice.number, "period": "2026-05", "issue_date": TAX_POINT}
    last = _credit(cli, invoice)
    notes = [first, second, last]
    rest = net - Decimal("0.11")
    assert Decimal(last["totals"]["net"]) == rest
    assert Decimal(last["tax"]["amount"]) == Decimal(tax["amount"]) - Decimal("0.01") > _down(rest * rate)
    assert _sum(notes, "net") == net and _sum(notes, "tax") == Decimal(tax["amount"])
    assert _sum(notes, "total") == Decimal(totals["due"])
    for note in notes:
        assert Decimal(note["totals"]["net"]) + Decimal(note["totals"]["tax"]) == Decimal(note["totals"]["total"])
        assert sum(Decimal(line["amount"]) for line in note["lines"]) == Decimal(note["totals"]["net"])
    assert "nothing remains to credit" in _refused(cli, invoice)
    with sessions() as session:
        rows = session.scalars(select(CreditNote).order_by(CreditNote.id)).all()
        left = remaining(session, session.get(Invoice, invoice.id)).left
        audit = session.scalars(select(AuditEntry).where(AuditEntry.action == "credit_note.issue")
                                .order_by(AuditEntry.sequence)).all()
    assert (left.net, left.tax) == (0, 0)
    assert [row.total for row in rows] == [Decimal(note["totals"]["total"]) for note in notes]
    assert [entry.details["tax"] for entry in audit] == [note["totals"]["tax"] for note in notes]


def test_the_text_and_the_pdf_show_net_tax_and_total_as_money_is_written(customers, cli, sessions):
    _profile(sessions)
    invoice = _issue(sessions)
    note = _credit(cli, invoice, "--site", "s1", "--amount", "50.00")
    net, tax, total = (Decimal(note["totals"][name]) for name in ("net", "tax", "total"))
    assert (net, tax, total) == (Decimal("50.00"), Decimal("10.00"), Decimal("60.00"))
    status, text, err = cli("credit-note", note["number"], "--format", "text")
    assert status == 0, err
    for label, amount in (("Net credited", net), ("VAT credited at 20%", tax), ("Total credited", total)):
        [line] = [line for line in text.splitlines() if label in line]
        assert line.rstrip().endswith(display(amount, "GBP", "en_GB")), line
    assert invoice.number in text and "4 July 2026" in text
    with sessions() as session:   # each read of a credit note is recorded, as the portal's are
        reads = session.scalars(select(AuditEntry).where(AuditEntry.action == "invoice.view")).all()
    assert [(entry.details["credit_note"], entry.resource == f"invoice:tiny/2026-05#{invoice.id}") for entry in reads] == [
        (note["number"], True)]
    with sessions() as session:
        pdf = session.scalars(select(CreditNote)).one().pdf
    pages = "".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf)).pages)
    for words in ("Net credited", "VAT credited at 20%", "Total credited", display(total, "GBP", "en_GB"),
                  display(tax, "GBP", "en_GB"), "Invoice tax point", TEST_SELLER["name"]):
        assert words in pages, words


@pytest.mark.parametrize("treatment, profile, note", [
    ("reverse_charge", {"tax_id": "DE811907980"}, "Outside the scope of UK VAT: reverse charge"),
    ("exempt", {"exempt_reason": "certificate EX-1"}, "Exempt from tax: certificate EX-1"),
])
def test_reverse_charge_and_exempt_wording_is_carried_over(treatment, profile, note, customers, cli, sessions):
    _profile(sessions, tax_treatment=treatment, **profile)
    invoice = _issue(sessions)
    credited = _credit(cli, invoice, "--site", "s1", "--amount", "10.00")
    assert credited["tax"]["treatment"] == treatment and credited["tax"]["note"].startswith(note)
    assert (credited["totals"]["tax"], credited["totals"]["total"]) == ("0.00", "10.00")
    status, text, _ = cli("credit-note", credited["number"])
    assert status == 0 and note in text


def test_without_a_tax_section_a_credit_note_credits_no_tax(customers, cli, sessions):
    invoice = _issue(sessions)   # no profile: the test environment's treatment is none
    assert "tax" not in invoice.document
    credited = _credit(cli, invoice)
    assert credited["tax"] is None and credited["totals"]["tax"] == "0.00"
    assert credited["totals"]["total"] == credited["totals"]["net"] == invoice.document["totals"]["net"]


def test_a_usd_invoice_credits_its_vat_in_gbp_at_its_own_rate(cli, sessions, tmp_path):
    assert cli("db", "upgrade")[0] == 0
    path = tmp_path / "usd.pricing"
    path.write_text(TINY.replace("currency GBP", "currency USD"), encoding="utf-8")
    assert cli("contract", "save", path)[0] == 0
    events = [event(f"u{n}", f"2026-05-{1 + n:02d}T10:00:00Z", "17", customer="tiny") for n in range(10)]
    assert cli("ingest", write_lines(tmp_path / "events.jsonl", events))[0] == 0
    _profile(sessions)
    assert cli("fx", "set", "--date", TAX_POINT, "--currency", "USD", "--gbp", "0.7931")[0] == 0
    invoice = _issue(sessions)
    tax = invoice.document["tax"]
    assert tax["fx_rate"] == "0.7931"
    # A later rate recorded for another day changes nothing: the credit note uses the invoice's own.
    assert cli("fx", "set", "--date", "2026-12-01", "--currency", "USD", "--gbp", "0.9")[0] == 0
    first = _credit(cli, invoice, "--site", "s1", "--amount", "33.33")
    assert first["tax"]["fx_rate"] == "0.7931"
    assert Decimal(first["tax"]["amount_gbp"]) == _down(Decimal(first["tax"]["amount"]) * Decimal("0.7931"))
    last = _credit(cli, invoice)
    assert Decimal(first["tax"]["amount_gbp"]) + Decimal(last["tax"]["amount_gbp"]) == Decimal(tax["amount_gbp"])
    assert Decimal(first["tax"]["amount"]) + Decimal(last["tax"]["amount"]) == Decimal(tax["amount"])
    status, text, _ = cli("credit-note", first["number"])
    assert status == 0 and display(Decimal(first["tax"]["amount_gbp"]), "GBP", "en_GB") in text


def test_a_credit_note_credits_what_was_charged_never_what_grants_paid(customers, cli, sessions):
    _profile(sessions)
    assert cli("grant", "add", "--customer", "tiny", "--amount", "100.00", "--from", "2026-05")[0] == 0
    invoice = _issue(sessions)
    totals = invoice.document["totals"]
    assert (totals["total"], totals["net"], totals["tax"]) == ("134.00", "34.00", "6.80")
    s1 = next(Decimal(site["total"]) for site in invoice.document["sites"] if site["site"] == "s1")
    assert s1 > Decimal("34.00")
    before = snapshot(sessions)
    err = _refused(cli, invoice, "--site", "s1", "--amount", "34.01")
    assert "more than the 34.00 of" in err and "net that remains creditable" in err
    assert snapshot(sessions) == before
    credited = _credit(cli, invoice)
    assert (credited["totals"]["net"], credited["totals"]["tax"], credited["totals"]["total"]) == (
        "34.00", "6.80", "40.80")
    assert "nothing remains to credit" in _refused(cli, invoice)
    _, out, _ = cli("grant", "list", "--customer", "tiny", "--format", "json")
    [grant] = json.loads(out)
    assert grant["remaining"] == "0.00" and grant["draws"][0]["given_back"] is False   # the grant stays drawn


def test_an_invoice_paid_by_grants_has_nothing_to_credit(customers, cli, sessions):
    assert cli("grant", "add", "--customer", "tiny", "--amount", "500.00", "--from", "2026-05")[0] == 0
    invoice = _issue(sessions)
    assert invoice.document["totals"]["net"] == "0.00"
    assert "its grants paid all of its charges" in _refused(cli, invoice)
    assert "more than the 0.00 of" in _refused(cli, invoice, "--site", "s1", "--amount", "1.00")


def test_voiding_an_invoice_that_drew_grants_and_carries_tax_gives_the_grants_back(customers, cli, sessions):
    _profile(sessions)
    assert cli("grant", "add", "--customer", "tiny", "--amount", "100.00", "--from", "2026-05")[0] == 0
    invoice = _issue(sessions)
    assert invoice.document["totals"]["tax"] == "6.80"
    with sessions.begin() as session, pytest.raises(Refused) as refused:   # where VAT is charged: never voided
        void(session, Selector(number=invoice.number), WHO, "wrong", charges_vat=True)
    assert refused.value.refusal.code == "vat-invoice-not-voided"
    with sessions.begin() as session:
        void(session, Selector(number=invoice.number), WHO, "wrong sites")
    _, out, _ = cli("grant", "list", "--customer", "tiny", "--format", "json")
    [grant] = json.loads(out)
    assert grant["remaining"] == "100.00" and grant["draws"][0]["given_back"] is True
    assert "is void" in _refused(cli, invoice)
    replacement = _issue(sessions)   # the replacement draws the grant again, and carries the same tax
    assert replacement.id != invoice.id and replacement.document["credits"][0]["amount"] == "-100.00"
    assert replacement.document["totals"]["tax"] == "6.80"
    _, out, _ = cli("grant", "list", "--customer", "tiny", "--format", "json")
    [grant] = json.loads(out)
    assert grant["remaining"] == "0.00"
    assert [draw["given_back"] for draw in grant["draws"]] == [True, False]
    credited = _credit(cli, replacement)
    assert credited["totals"]["tax"] == "6.80" and credited["invoice"]["number"] == replacement.number
    with sessions() as session:
        assert session.scalars(select(CreditNote.invoice_id)).all() == [replacement.id]


def _globex(cli, sessions):
    assert cli("db", "upgrade")[0] == 0
    for name, effective in (("contract.pricing", None), ("contract-2026-05.pricing", "2026-05")):
        status, _, err = cli("contract", "save", GLOBEX / name, *(["--effective", effective] if effective else []))
        assert status == 0, err
    assert cli("ingest", GLOBEX / "events.jsonl")[0] == 0
    _profile(sessions, "globex", name="Globex Ltd")
    assert cli("fx", "set", "--date", TAX_POINT, "--currency", "EUR", "--gbp", "0.8512")[0] == 0


def _computed(cli, period: str) -> dict:
    status, out, err = cli("invoice", "--customer", "globex", "--period", period, "--format", "json")
    assert status == 0, err
    return json.loads(out)


def test_account_lines_that_charge_are_credited_those_that_reduce_are_not(cli, sessions):
    _globex(cli, sessions)
    january = _issue(sessions, "globex", Period(2026, 1))
    lines = {line["kind"]: Decimal(line["amount"]) for line in january.document["account"]["lines"]}
    assert lines["commitment_fee"] > 0 > lines["commitment_drawdown"]
    fee = lines["commitment_fee"]
    before = snapshot(sessions)
    err = _refused(cli, january, "--account", "commitment_drawdown", "--amount", "10.00")
    assert "commitment drawdown (commitment_drawdown)" in err and "it reduces the invoice" in err
    err = _refused(cli, january, "--account", "commitment_fee", "--amount", f"{fee + CENT}")
    assert "account line commitment_fee" in err and f"more than the {fee}" in err
    assert "has no account minimum true-up (account_minimum)" in _refused(
        cli, january, "--account", "account_minimum", "--amount", "1")
    assert "'fee' is not a kind of account line" in _refused(cli, january, "--account", "fee", "--amount", "1")
    assert "stated twice" in _refused(cli, january, "--account", "commitment_fee", "--amount", "1",
                                      "--account", "commitment_fee", "--amount", "2")
    status, _, err = cli("credit", "--number", january.number, "--amount", "1", "--account", "commitment_fee",
                         "--reason", "r")
    assert status == 2 and "give each --site or --account its --amount" in err
    assert snapshot(sessions) == before
    credited = _credit(cli, january, "--site", "ber", "--amount", "60.00", "--account", "commitment_fee",
                       "--amount", "1000.00", reason="fee waived in part")
    assert credited["lines"] == [{"site": "ber", "name": "Berlin", "amount": "60.00"},
                                 {"account": "commitment_fee", "name": "Commitment fee", "amount": "1000.00"}]
    assert (credited["totals"]["net"], credited["totals"]["tax"], credited["totals"]["total"]) == (
        "1060.00", "212.00", "1272.00")
    status, text, _ = cli("credit-note", credited["number"])
    assert "account commitment_fee (Commitment fee)" in text
    err = _refused(cli, january, "--account", "commitment_fee", "--amount", f"{fee - Decimal('999.99')}")
    assert f"more than the {fee - Decimal('1000.00')} that remains" in err


def test_a_credit_note_changes_nothing_that_later_periods_count(cli, sessions):
    _globex(cli, sessions)
    january = _issue(sessions, "globex", Period(2026, 1))
    later = ("2026-02", "2026-03", "2026-05", "2026-06")
    before = {period: _computed(cli, period) for period in later}
    _credit(cli, january, "--account", "commitment_fee", "--amount", "5000.00", "--site", "muc", "--amount",
            "1550.00")
    after = {period: _computed(cli, period) for period in later}
    assert after == before
    drawdowns = [line for line in after["2026-02"]["account"]["lines"] if line["kind"] == "commitment_drawdown"]
    assert drawdowns and drawdowns[0]["balance_before"] == january.document["account"]["lines"][1]["balance_after"]
    march = _issue(sessions, "globex", Period(2026, 3))   # issued after the credit note: as computed before it
    assert march.document["totals"] == before["2026-03"]["totals"] | {
        key: march.document["totals"][key] for key in ("credits", "net", "tax", "due")}


def test_an_account_cap_reduction_has_nothing_to_credit(cli, sessions):
    _globex(cli, sessions)
    for month in range(1, 6):
        invoice = _issue(sessions, "globex", Period(2026, month))
    kinds = [line["kind"] for line in invoice.document["account"]["lines"]]
    assert "account_cap" in kinds and invoice.document["totals"]["net"] == "0.00"
    err = _refused(cli, invoice, "--account", "account_cap", "--amount", "1.00")
    assert "account cap reduction (account_cap)" in err and "it reduces the invoice" in err


def test_in_process_refusals_name_the_account_line(cli, sessions):
    _globex(cli, sessions)
    january = _issue(sessions, "globex", Period(2026, 1))
    with sessions.begin() as session, pytest.raises(Refused) as refused:
        credit(session, find(session, Selector(number=january.number)), WHO, "r", None,
               account=[("commitment_fee", "x")], prefix="TEST")
    assert refused.value.refusal.field == "amount" and refused.value.refusal.params == {"account": "commitment_fee"}
