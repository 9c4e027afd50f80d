"""The invoice pages of the portal: filters, the preview (the PDF's figures), approve → issue → download,
void with and without a reason, credit notes, customer scoping on every invoice route, and the audit entries
of views and downloads."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections import Counter
from decimal import Decimal

import pypdf
import pytest
from babel.numbers import format_decimal
from conftest import TEST_SELLER
from sqlalchemy import select, text

from audit.log import AuditEntry
from engine.periods import Period
from ledger.models import Invoice, InvoicePdf, InvoiceVoid
from lifecycle.models import CreditNote
from lifecycle.transitions import close

from .conftest import CUSTOMER, OTHER_CUSTOMER, csrf_token, form_post

JUNE = Period(2026, 6)
AMOUNT = re.compile(r"-?\d{1,3}(?:,\d{3})*\.\d{2}")


def _amount(text: str) -> str:
    return format_decimal(Decimal(text), format="#,##0.00", locale="en_GB")


def _audit(sessions, action: str) -> list[AuditEntry]:
    with sessions() as session:
        return session.scalars(select(AuditEntry).where(AuditEntry.action == action)
                               .order_by(AuditEntry.sequence)).all()


def _page(response) -> str:
    return response.get_data(as_text=True)


def _document_section(html: str) -> str:
    return html[html.index('<section class="panel document"'):]


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).replace("&#39;", "'").replace("&amp;", "&")


def _ids_listed(html: str) -> set[int]:
    return {int(i) for i in re.findall(r'href="/invoices/(\d+)"', html)}


@pytest.fixture
def fresh_june_draft(portal_sessions, invoice_ids) -> int:
    """The customer's June draft recomputed from its usage (the fixture's copy of April's would be stale)."""
    with portal_sessions.begin() as session:
        row, _ = close(session, CUSTOMER, JUNE, seller=TEST_SELLER)
        return row.id


def _approve_and_issue(client, invoice_id: int):
    page = f"/invoices/{invoice_id}?confirm=approve"
    response = form_post(client, f"/invoices/{invoice_id}/approve", {}, page=page)
    assert response.status_code == 302, _page(response)
    assert "Approved" in _page(client.get(f"/invoices/{invoice_id}"))
    response = form_post(client, f"/invoices/{invoice_id}/issue", {}, page=f"/invoices/{invoice_id}?confirm=issue")
    assert response.status_code == 302
    return _page(client.get(f"/invoices/{invoice_id}"))


def test_filters_by_status_customer_and_period_and_keep_their_values(signed_in_client, invoice_ids, portal_sessions):
    client = signed_in_client("finance")
    assert _ids_listed(_page(client.get("/invoices?status=draft"))) == {invoice_ids["draft"]}
    assert _ids_listed(_page(client.get(f"/invoices?customer={OTHER_CUSTOMER}"))) == {invoice_ids["other"]}
    with portal_sessions() as session:
        may = {row.id for row in session.scalars(select(Invoice).where(Invoice.period == Period(2026, 5)))}
    page = _page(client.get(f"/invoices?period=2026-05&customer={CUSTOMER}&status=issued"))
    assert _ids_listed(page) == may and may
    assert 'value="2026-05"' in page and f'<option selected value="{CUSTOMER}">' in page
    assert '<option selected value="issued">' in page
    with portal_sessions.begin() as session:
        session.add(InvoiceVoid(invoice_id=invoice_ids["customer"], voided_at=session.get(Invoice, 1).created_at,
                                voided_by="finance@example.com", reason="wrong site"))
    assert _ids_listed(_page(client.get("/invoices?status=void"))) == {invoice_ids["customer"]}
    assert invoice_ids["customer"] not in _ids_listed(_page(client.get("/invoices?status=issued")))
    refused = _page(client.get("/invoices?period=June"))
    assert 'value="June"' in refused and "Write it as YYYY-MM." in refused
    assert _ids_listed(refused) == set(invoice_ids.values()) | may
    entries = _audit(portal_sessions, "invoice.list")
    assert entries[0].details["filters"] == {"status": "draft"}
    assert entries[2].details["filters"] == {"status": "issued", "customer": CUSTOMER, "period": "2026-05"}


def test_a_customer_user_filters_only_within_their_customer(signed_in_client, invoice_ids):
    client = signed_in_client("customer_finance")
    page = _page(client.get(f"/invoices?customer={OTHER_CUSTOMER}"))
    assert invoice_ids["other"] not in _ids_listed(page) and invoice_ids["customer"] in _ids_listed(page)
    assert _ids_listed(_page(client.get("/invoices?status=draft"))) == set()


def test_approve_issue_and_download_the_stored_pdf(signed_in_client, fresh_june_draft, portal_sessions):
    client = signed_in_client("finance")
    invoice_id = fresh_june_draft
    page = _page(client.get(f"/invoices/{invoice_id}?confirm=approve"))
    assert "Approve this draft?" in page and f'action="/invoices/{invoice_id}/approve"' in page
    page = _approve_and_issue(client, invoice_id)
    with portal_sessions() as session:
        row = session.get(Invoice, invoice_id)
        stored = session.get(InvoicePdf, invoice_id)
    assert row.status == "issued" and row.number.startswith("TEST-") and f"Issued as {row.number}" in page
    download = client.get(f"/invoices/{invoice_id}/pdf")
    assert download.status_code == 200 and download.mimetype == "application/pdf"
    assert f'filename="{row.number}.pdf"' in download.headers["Content-Disposition"]
    assert hashlib.sha256(download.data).hexdigest() == stored.sha256 and download.data == stored.pdf
    [approved] = _audit(portal_sessions, "invoice.approve")
    [issued] = _audit(portal_sessions, "invoice.issue")
    assert approved.actor == issued.actor == "finance@example.com"
    assert issued.details["pdf_sha256"] == stored.sha256
    [downloaded] = _audit(portal_sessions, "invoice.download")
    assert downloaded.details == {"format": "pdf", "status": "issued", "sha256": stored.sha256, "stored": True}
    rows = list(csv.DictReader(io.StringIO(_page(client.get(f"/invoices/{invoice_id}/csv")))))
    assert {r["invoice"] for r in rows} == {row.number}
    assert [r[f"amount ({row.document['currency']})"] for r in rows if r["kind"] == "invoice total" and r["description"] == "total"] == \
        [row.document["totals"]["total"]]


@pytest.mark.parametrize("table, statement", [
    ("invoice_pdfs", "UPDATE invoice_pdfs SET pdf = :forged, sha256 = :forged_sha WHERE invoice_id = :id"),
    ("invoices", "UPDATE invoices SET document = CAST(:document AS {json}) WHERE id = :id"),
])
def test_a_tampered_issued_invoice_is_neither_shown_nor_sent(signed_in_client, fresh_june_draft, portal_sessions,
                                                              table, statement):
    client = signed_in_client("finance")
    _approve_and_issue(client, fresh_june_draft)
    forged = b"%PDF-1.7 forged"
    with portal_sessions.begin() as session:   # an insider who may drop the triggers that freeze it
        connection = session.connection()
        document = json.dumps({**session.get(Invoice, fresh_june_draft).document, "customer": "someone else"})
        postgresql = connection.dialect.name == "postgresql"
        if postgresql:
            connection.exec_driver_sql(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        else:
            connection.exec_driver_sql(f"DROP TRIGGER {'invoices_issued' if table == 'invoices' else table}_no_update")
        connection.execute(text(statement.format(json="JSON" if postgresql else "TEXT")), {"id": fresh_june_draft, "forged": forged, "document": document,
                                             "forged_sha": hashlib.sha256(forged).hexdigest()})
    for path in ("", "/pdf", "/csv"):
        answer = client.get(f"/invoices/{fresh_june_draft}{path}")
        assert answer.status_code == 500 and "is not the one issued" in _page(answer)
    refused = [e for e in _audit(portal_sessions, "invoice.view") + _audit(portal_sessions, "invoice.download")
               if e.details.get("code") == "tampered"]
    assert len(refused) == 3 and all(e.outcome == "failure" for e in refused)


def test_the_preview_shows_the_figures_of_the_pdf(signed_in_client, fresh_june_draft, portal_sessions):
    client = signed_in_client("finance")
    _approve_and_issue(client, fresh_june_draft)
    with portal_sessions() as session:
        row = session.get(Invoice, fresh_june_draft)
        pdf = session.get(InvoicePdf, fresh_june_draft).pdf
    preview = _text(_document_section(_page(client.get(f"/invoices/{fresh_june_draft}"))))
    pdf_text = " ".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf)).pages)
    document = row.document
    figures = [document["totals"][k] for k in document["totals"]]
    figures += [site["total"] for site in document["sites"]]
    figures += [line["amount"] for site in document["sites"] for line in site["lines"]]
    for figure in figures:
        assert _amount(figure) in preview and _amount(figure) in pdf_text, figure
    assert Counter(AMOUNT.findall(preview)) == Counter(AMOUNT.findall(pdf_text.replace("£", "")))
    assert row.number in preview and row.number in pdf_text
    for site in document["sites"]:
        assert site["name"] in preview
    assert "Verification of totals" in preview


def test_a_draft_preview_and_downloads_are_marked_draft(signed_in_client, fresh_june_draft, portal_sessions):
    client = signed_in_client("finance")
    page = _page(client.get(f"/invoices/{fresh_june_draft}"))
    assert "DRAFT — not an invoice number" in page and 'class="watermark">DRAFT' in page
    pdf = client.get(f"/invoices/{fresh_june_draft}/pdf")
    assert pdf.status_code == 200 and "DRAFT" in pypdf.PdfReader(io.BytesIO(pdf.data)).pages[0].extract_text()
    rows = list(csv.DictReader(io.StringIO(_page(client.get(f"/invoices/{fresh_june_draft}/csv")))))
    assert {r["invoice"] for r in rows} == {"DRAFT"}
    assert [e.details for e in _audit(portal_sessions, "invoice.download")] == [
        {"format": "pdf", "status": "draft", "stored": False}, {"format": "csv", "status": "draft", "stored": False}]


def test_refused_steps_say_why_change_nothing_and_are_audited(signed_in_client, invoice_ids, portal_sessions):
    client = signed_in_client("finance")
    draft = invoice_ids["draft"]   # a copy of April's document: the approval gate finds it out of date
    response = form_post(client, f"/invoices/{draft}/approve", {}, page=f"/invoices/{draft}?confirm=approve",
                         follow_redirects=True)
    assert "Not done:" in _page(response) and "changed since the draft was made" in _page(response)
    response = form_post(client, f"/invoices/{draft}/issue", {}, page=f"/invoices/{draft}",
                         follow_redirects=True)
    assert "only an approved invoice can be issued" in _page(response)
    response = form_post(client, f"/invoices/{draft}/void", {"reason": "x"}, page=f"/invoices/{draft}",
                         follow_redirects=True)
    assert "only an issued invoice can be voided" in _page(response)
    with portal_sessions() as session:
        assert session.get(Invoice, draft).status == "draft"
    assert [e.outcome for e in _audit(portal_sessions, "invoice.approve")] == ["failure"]
    assert [e.outcome for e in _audit(portal_sessions, "invoice.issue")] == ["failure"]
    assert [e.outcome for e in _audit(portal_sessions, "invoice.void")] == ["failure"]


def test_void_needs_a_reason_and_keeps_what_was_typed(signed_in_client, fresh_june_draft, portal_sessions):
    client = signed_in_client("finance")
    _approve_and_issue(client, fresh_june_draft)
    page = f"/invoices/{fresh_june_draft}?confirm=void"
    assert 'name="reason"' in _page(client.get(page))
    refused = form_post(client, f"/invoices/{fresh_june_draft}/void", {"reason": "   "}, page=page)
    assert refused.status_code == 400 and "Give the reason for the void." in _page(refused)
    assert 'id="reason-error"' in _page(refused)
    with portal_sessions() as session:
        assert session.get(InvoiceVoid, fresh_june_draft) is None
    done = form_post(client, f"/invoices/{fresh_june_draft}/void", {"reason": "wrong <site> list"}, page=page,
                     follow_redirects=True)
    assert "Voided" in _page(done) and "wrong &lt;site&gt; list" in _page(done)
    with portal_sessions() as session:
        assert session.get(InvoiceVoid, fresh_june_draft).reason == "wrong <site> list"
    assert '<span class="status status-void">void' in _page(done)


def test_credit_notes_from_the_invoice_page(signed_in_client, fresh_june_draft, portal_sessions):
    client = signed_in_client("finance")
    _approve_and_issue(client, fresh_june_draft)
    with portal_sessions() as session:
        row = session.get(Invoice, fresh_june_draft)
    site, name = row.document["sites"][0]["site"], row.document["sites"][0]["name"]
    site_total = Decimal(row.document["sites"][0]["total"])
    path, page = f"/invoices/{fresh_june_draft}/credit", f"/invoices/{fresh_june_draft}?confirm=credit"
    too_much = f"{site_total + Decimal('0.01')}"
    refused = form_post(client, path, {"scope": "sites", f"amount-{site}": too_much, "reason": "goodwill"}, page=page)
    html = _page(refused)
    assert refused.status_code == 400 and "that remains creditable on it" in html
    assert f'id="amount-{site}-error"' in html and f'value="{too_much}"' in html and "goodwill</textarea>" in html
    no_reason = form_post(client, path, {"scope": "all", "reason": ""}, page=page)
    assert no_reason.status_code == 400 and "Give the reason for the credit note." in _page(no_reason)
    done = form_post(client, path, {"scope": "sites", f"amount-{site}": "10.00", "reason": "goodwill"}, page=page,
                     follow_redirects=True)
    with portal_sessions() as session:
        [note] = session.scalars(select(CreditNote)).all()
    assert note.lines == [{"site": site, "name": name, "amount": "10.00"}] and note.invoice_id == fresh_june_draft
    assert note.number in _page(done) and "goodwill" in _page(done)
    listing = _page(client.get("/invoices"))
    assert note.number in listing
    customer_view = signed_in_client("customer_finance")
    assert note.number in _page(customer_view.get(f"/invoices/{fresh_june_draft}"))
    pdf = customer_view.get(f"/invoices/{fresh_june_draft}/pdf?credit_note={note.number}")
    assert pdf.status_code == 200 and hashlib.sha256(pdf.data).hexdigest() == note.sha256
    assert customer_view.get(f"/invoices/{fresh_june_draft}/pdf?credit_note=TEST-CN-1999-000001").status_code == 404
    warning = _page(client.get(f"/invoices/{fresh_june_draft}?confirm=void"))
    assert "A void cancels the whole invoice and they still stand" in warning and note.number in warning
    # The form without a reason never reached the store: only the refused amount and the credit note are recorded.
    assert [e.outcome for e in _audit(portal_sessions, "credit_note.issue")] == ["failure", "success"]


@pytest.mark.parametrize("suffix", ["", "/pdf", "/csv", "/pdf?credit_note=x"])
def test_every_invoice_route_is_scoped_to_the_customer(signed_in_client, invoice_ids, portal_sessions, suffix):
    own, other = signed_in_client("customer_finance"), signed_in_client("other_customer")
    assert own.get(f"/invoices/{invoice_ids['draft']}{suffix}").status_code == 404
    assert other.get(f"/invoices/{invoice_ids['customer']}{suffix}").status_code == 404
    expected = 404 if "credit_note" in suffix else 200
    assert own.get(f"/invoices/{invoice_ids['customer']}{suffix}").status_code == expected
    action = "invoice.view" if suffix == "" else "invoice.download"
    outcomes = [(e.actor, e.outcome) for e in _audit(portal_sessions, action)]
    assert ("customer.finance@example.com", "denied") in outcomes
    assert ("northwind.finance@example.com", "denied") in outcomes


def test_customer_users_and_other_roles_cannot_take_steps(signed_in_client, invoice_ids):
    for principal in ("customer_finance", "admin", "deal_desk"):
        client = signed_in_client(principal)
        for step in ("approve", "issue", "void", "credit"):
            assert client.post(f"/invoices/{invoice_ids['customer']}/{step}").status_code == 403
    page = _page(signed_in_client("customer_finance").get(f"/invoices/{invoice_ids['customer']}?confirm=void"))
    assert "Void…" not in page and 'action="/invoices/' not in page.split("Sign out")[1]


def test_views_are_audited_with_the_status(signed_in_client, invoice_ids, portal_sessions):
    signed_in_client("finance").get(f"/invoices/{invoice_ids['draft']}")
    signed_in_client("customer_finance").get(f"/invoices/{invoice_ids['customer']}")
    views = _audit(portal_sessions, "invoice.view")
    assert [(e.actor, e.outcome, e.details["status"]) for e in views] == [
        ("finance@example.com", "success", "draft"), ("customer.finance@example.com", "success", "issued")]
    assert views[0].resource.endswith(f"#{invoice_ids['draft']}") or str(invoice_ids["draft"]) in views[0].resource


def test_approving_twice_and_issuing_twice_are_refused_and_change_nothing(signed_in_client, fresh_june_draft,
                                                                          portal_sessions):
    client = signed_in_client("finance")
    page = f"/invoices/{fresh_june_draft}"
    assert form_post(client, f"{page}/approve", {}, page=page).status_code == 302
    again = form_post(client, f"{page}/approve", {}, page=page, follow_redirects=True)
    assert "is already approved" in _page(again)
    assert form_post(client, f"{page}/issue", {}, page=page).status_code == 302
    with portal_sessions() as session:
        number = session.get(Invoice, fresh_june_draft).number
    twice = form_post(client, f"{page}/issue", {}, page=page, follow_redirects=True)
    assert "is issued: only an approved invoice can be issued" in _page(twice)
    with portal_sessions() as session:
        assert session.scalars(select(Invoice.number).where(Invoice.number.is_not(None))).all() == [number]
    assert [e.outcome for e in _audit(portal_sessions, "invoice.approve")] == ["success", "failure"]
    assert [e.outcome for e in _audit(portal_sessions, "invoice.issue")] == ["success", "failure"]


# --- the list: paged, filtered and sorted by the database ----------------------------------------------------

def _rows(html: str) -> list[str]:
    return re.findall(r"<tr>\s*<td>.*?</tr>", html, re.DOTALL)


def test_status_filters_are_written_for_people(signed_in_client):
    page = _page(signed_in_client("finance").get("/invoices"))
    for value, label in (("draft", "Draft"), ("approved", "Approved"), ("issued", "Issued"), ("void", "Void")):
        assert f'<option value="{value}">{label}</option>' in page
    customer_page = _page(signed_in_client("customer_finance").get("/invoices"))
    assert '<option value="issued">Issued</option>' in customer_page and 'value="draft"' not in customer_page


def test_the_list_pages_and_sorts_in_the_database(signed_in_client, invoice_ids, portal_sessions, monkeypatch):
    monkeypatch.setattr("admin_app.invoices.PAGE_SIZE", 3)
    client = signed_in_client("finance")
    with portal_sessions() as session:
        totals = {row.id: Decimal(row.document["totals"]["total"]) for row in session.scalars(select(Invoice))}
    assert len(totals) == 4
    first, second = _page(client.get("/invoices?sort=total&dir=asc")), _page(client.get("/invoices?sort=total&dir=asc&page=2"))
    listed = [int(i) for i in re.findall(r'href="/invoices/(\d+)"', first + second)]
    assert len(listed) == 4 and set(listed) == set(totals)
    assert [totals[i] for i in listed] == sorted(totals.values())
    assert "4 invoices; page 1 of 2." in first and 'aria-sort="ascending"' in first
    assert 'href="/invoices?sort=total&amp;dir=asc&amp;page=2"' in first and 'rel="prev"' in second
    assert len(_rows(first)) == 3 and len(_rows(second)) == 1
    descending = [int(i) for i in re.findall(r'href="/invoices/(\d+)"', _page(client.get("/invoices?sort=total&dir=desc")))]
    assert [totals[i] for i in descending] == sorted(totals.values(), reverse=True)[:3]
    by_period = _page(client.get("/invoices"))   # default: newest period first
    assert re.findall(r'href="/invoices/(\d+)"', by_period)[0] == str(invoice_ids["draft"])
    # A page past the last shows the last; a sort or page that means nothing is ignored.
    assert _ids_listed(_page(client.get("/invoices?sort=total&dir=asc&page=99"))) == {listed[-1]}
    assert _rows(_page(client.get("/invoices?sort=drop+table&dir=sideways&page=x")))
    entry = _audit(portal_sessions, "invoice.list")[0]
    assert entry.details["page"] == 1 and entry.details["of"] == 4 and entry.details["sort"] == "total asc"


def test_the_list_writes_money_in_the_environments_locale(signed_in_client, invoice_ids, portal_sessions):
    from engine.money import display

    with portal_sessions() as session:
        row = session.get(Invoice, invoice_ids["other"])
        shown = display(Decimal(row.document["totals"]["total"]), row.document["currency"], "en_GB")
    assert shown in html_unescape(_page(signed_in_client("finance").get(f"/invoices?customer={OTHER_CUSTOMER}")))


def test_a_filter_naming_no_customer_is_refused_beside_it(signed_in_client, invoice_ids):
    page = _page(signed_in_client("finance").get("/invoices?customer=nobody%00"))
    assert "There is no such customer." in page and set(invoice_ids.values()) < _ids_listed(page)   # unfiltered


def html_unescape(text: str) -> str:
    import html

    return html.unescape(text)


# --- month end: close a period, a stale draft said why, refresh, reconcile -------------------------------------

AMENDED_RATE = "rate expedited 1.30"


def _amend(sessions, effective: Period = JUNE) -> None:
    from dsl.compile import compile_source
    from ledger.contracts import save_contract

    from .conftest import CONTRACTS

    text = (CONTRACTS / "acme-health.pricing").read_text(encoding="utf-8").replace("rate expedited 1.25", AMENDED_RATE)
    assert AMENDED_RATE in text
    with sessions.begin() as session:
        save_contract(session, compile_source(text.encode(), "acme-health.pricing"), effective=effective,
                      author="deal.desk@example.com")


def _ingest(sessions, tmp_path, *events: tuple[str, str, str]) -> None:
    from ingest.pipeline import ingest_events
    from metering.events import read_events

    path = tmp_path / "more.jsonl"
    path.write_text("".join(json.dumps({
        "specversion": "1.0", "id": f"late-{n}", "source": "platform/main", "type": "unit.processed", "time": time,
        "data": {"customer": CUSTOMER, "site": site, "category": "standard", "quantity": 5}}) + "\n"
        for n, (time, site, _) in enumerate(events)), encoding="utf-8")
    for _ in ingest_events(sessions, read_events(str(path))):
        pass


def _stale_panel(html: str) -> str:
    start = html.find('class="panel freshness freshness-stale"')
    return _text(html[start:html.index("</section>", start)]) if start >= 0 else ""


def test_a_stale_draft_says_why_before_approve_and_refreshing_it_reconciles(
        signed_in_client, fresh_june_draft, portal_sessions, portal_clock, tmp_path):
    client = signed_in_client("finance")
    page = _page(client.get(f"/invoices/{fresh_june_draft}"))
    assert _stale_panel(page) == "" and "Up to date: closing 2026-06 now" in page
    assert 'id="reconciliation"' not in page          # closed without a reconciliation (not by the portal)
    _amend(portal_sessions)
    _ingest(portal_sessions, tmp_path, ("2026-06-20T10:00:00Z", "lon-01", ""), ("2026-06-21T10:00:00Z", "lon-01", ""))
    page = _page(client.get(f"/invoices/{fresh_june_draft}?confirm=approve"))
    panel = _stale_panel(page)
    assert "This draft is out of date" in panel
    assert "The contract changed: the draft used version 1 (in effect from 2026-04), version 2 (in effect from " \
           "2026-06) bills 2026-06 now." in panel
    assert "2 events arrived since." in panel
    assert page.index("freshness-stale") < page.index('id="confirm"')       # said before the Approve button
    with portal_sessions() as session:
        before = session.get(Invoice, fresh_june_draft)
        then, contract_then = before.document["totals"]["total"], before.contract_sha
    assert _amount(then) in panel
    # Approving is refused with the same reasons, from the same function.
    refused = _page(form_post(client, f"/invoices/{fresh_june_draft}/approve", {}, page=f"/invoices/{fresh_june_draft}",
                              follow_redirects=True))
    flashed = html_unescape(re.findall(r'<p class="flash flash-error" role="status">([^<]*)</p>', refused)[0])
    assert "cannot be approved: what it bills changed since the draft was made" in flashed
    assert "version 2 (in effect from 2026-06) bills 2026-06 now; 2 events arrived since" in flashed
    portal_clock.advance(minutes=5)
    done = form_post(client, f"/invoices/{fresh_june_draft}/refresh", {}, page=f"/invoices/{fresh_june_draft}",
                     follow_redirects=True)
    html = _page(done)
    assert done.status_code == 200 and "draft recomputed" in html and "its reconciliation passed" in html
    assert _stale_panel(html) == "" and "Up to date" in html and "Reconciliation: passed" in html
    with portal_sessions() as session:
        row = session.get(Invoice, fresh_june_draft)
        assert row.status == "draft" and row.contract_sha != contract_then
    [closed] = _audit(portal_sessions, "invoice.close")
    assert (closed.actor, closed.outcome, closed.details["result"]) == ("finance@example.com", "success", "refreshed")
    runs = [e for e in _audit(portal_sessions, "reconciliation.run") if e.actor == "finance@example.com"]
    assert len(runs) == 1 and runs[0].details["passed"] is True and runs[0].details["invoice_id"] == fresh_june_draft
    _approve_and_issue(client, fresh_june_draft)
    with portal_sessions() as session:
        assert session.get(Invoice, fresh_june_draft).status == "issued"


def test_a_failed_reconciliation_keeps_the_draft_and_shows_its_discrepancies(signed_in_client, fresh_june_draft,
                                                                              portal_sessions):
    client = signed_in_client("finance")
    with portal_sessions.begin() as session:   # a rollup changed behind the engine: it no longer sums its events
        session.execute(text("UPDATE rollups SET quantity = quantity + 100 WHERE customer = :c AND day = "
                             "(SELECT MIN(day) FROM rollups WHERE customer = :c AND day >= :d)"),
                        {"c": CUSTOMER, "d": JUNE.first_day})
    page = _page(client.get(f"/invoices/{fresh_june_draft}"))
    assert "The usage it counted changed, though no event arrived since" in _stale_panel(page)
    done = _page(form_post(client, f"/invoices/{fresh_june_draft}/refresh", {}, page=f"/invoices/{fresh_june_draft}",
                           follow_redirects=True))
    assert "reconciliation FAILED" in done and "cannot be approved until they are resolved or explained" in done
    section = done[done.index('class="panel invoice-reconciliation reconciliation-failed"'):]
    section = _text(section[:section.index("</section>")])
    assert "Reconciliation: failed" in section and "rollups against the events" in section and "100" in section
    assert "/reconciliation/2026-06#report-" in done
    refused = _page(form_post(client, f"/invoices/{fresh_june_draft}/approve", {}, page=f"/invoices/{fresh_june_draft}",
                              follow_redirects=True))
    assert "cannot be approved: its reconciliation FAILED" in html_unescape(refused)
    with portal_sessions() as session:
        assert session.get(Invoice, fresh_june_draft).status == "draft"


def test_finance_closes_a_period_for_every_customer_billing_it(signed_in_client, invoice_ids, portal_sessions):
    from lifecycle.transitions import customers_billed_in

    client = signed_in_client("finance")
    with portal_sessions() as session:
        billed = customers_billed_in(session, JUNE)
    assert CUSTOMER in billed
    done = form_post(client, "/invoices/close", {"period": "2026-06", "customer": ""}, page="/invoices")
    assert done.status_code == 302 and done.headers["Location"].endswith("/invoices?period=2026-06")
    html = html_unescape(_page(client.get(done.headers["Location"])))
    assert f"Closed 2026-06 for {len(billed)} of {len(billed)} customers" in html
    with portal_sessions() as session:
        drafts = {row.customer: row for row in session.scalars(select(Invoice).where(Invoice.period == JUNE))}
    assert set(drafts) == set(billed) and all(row.status == "draft" for row in drafts.values())
    assert drafts[CUSTOMER].id == invoice_ids["draft"]            # the stale draft recomputed, not a second one
    assert {e.details["result"] for e in _audit(portal_sessions, "invoice.close")} <= {"created", "refreshed"}
    assert len(_audit(portal_sessions, "reconciliation.run")) == len(billed)
    one = form_post(client, "/invoices/close", {"period": "2026-06", "customer": CUSTOMER}, page="/invoices")
    assert one.headers["Location"].endswith(f"/invoices/{invoice_ids['draft']}")
    assert "draft unchanged" in _page(client.get(one.headers["Location"]))


@pytest.mark.parametrize("typed, field, said", [
    ({"period": "June", "customer": ""}, "period", "Write it as YYYY-MM."),
    ({"period": "2026-13", "customer": ""}, "period", "is not"),
    ({"period": "2020-01", "customer": ""}, "period", "No contract bills 2020-01: nothing was closed."),
    ({"period": "2026-06", "customer": "nobody"}, "customer", "There is no such customer."),
    ({"period": "2026-\x0006", "customer": ""}, "period", "A NUL character cannot be kept"),
])
def test_a_close_refused_says_why_beside_the_field(signed_in_client, portal_sessions, typed, field, said):
    client = signed_in_client("finance")
    refused = form_post(client, "/invoices/close", typed, page="/invoices")
    html = _page(refused)
    assert refused.status_code == 400
    beside = re.search(rf'<p class="error" id="{field}-error">([^<]*)</p>', html)
    assert beside is not None and said in html_unescape(beside.group(1)), html[:200]
    if field == "period":
        assert f'value="{typed["period"].replace(chr(0), "")}"' in html
    assert _audit(portal_sessions, "invoice.close") == [] and _audit(portal_sessions, "reconciliation.run") == []


def test_closing_an_issued_period_is_refused_and_audited(signed_in_client, invoice_ids, portal_sessions):
    client = signed_in_client("finance")
    answer = form_post(client, "/invoices/close", {"period": "2026-05", "customer": CUSTOMER}, page="/invoices",
                       follow_redirects=True)
    assert "acme-health 2026-05: Not done: the invoice of 'acme-health' for 2026-05 is issued as" in html_unescape(_page(answer))
    [entry] = _audit(portal_sessions, "invoice.close")
    assert entry.outcome == "failure" and entry.details["code"] == "already-issued"
    refresh = form_post(client, f"/invoices/{invoice_ids['customer']}/refresh", {},
                        page=f"/invoices/{invoice_ids['customer']}", follow_redirects=True)
    assert "Not done: the invoice of 'acme-health' for 2026-04 is issued" in html_unescape(_page(refresh))


def test_a_void_invoice_page_makes_its_replacement_draft(signed_in_client, fresh_june_draft, portal_sessions):
    client = signed_in_client("finance")
    _approve_and_issue(client, fresh_june_draft)
    page = f"/invoices/{fresh_june_draft}?confirm=void"
    form_post(client, f"/invoices/{fresh_june_draft}/void", {"reason": "wrong site list"}, page=page)
    assert "Make the replacement draft" in _page(client.get(f"/invoices/{fresh_june_draft}"))
    made = form_post(client, f"/invoices/{fresh_june_draft}/refresh", {}, page=f"/invoices/{fresh_june_draft}")
    with portal_sessions() as session:
        replacement = session.scalars(select(Invoice).where(Invoice.replaces_id == fresh_june_draft)).one()
    assert replacement.status == "draft" and made.headers["Location"].endswith(f"/invoices/{replacement.id}")


@pytest.mark.parametrize("principal", ["customer_finance", "other_customer", "admin", "deal_desk"])
def test_only_finance_closes_or_refreshes(signed_in_client, invoice_ids, portal_sessions, principal):
    client = signed_in_client(principal)
    token = csrf_token(_page(client.get("/account/password")))
    for path in ("/invoices/close", f"/invoices/{invoice_ids['draft']}/refresh",
                 f"/invoices/{invoice_ids['customer']}/refresh"):
        answer = client.post(path, data={"csrf_token": token, "period": "2026-06", "customer": CUSTOMER})
        assert answer.status_code == 403, path
    listing = _page(client.get("/invoices"))
    assert "Close a period" not in listing and "/refresh" not in _page(client.get(f"/invoices/{invoice_ids['customer']}"))
    assert _audit(portal_sessions, "reconciliation.run") == []
    with portal_sessions() as session:
        assert session.scalar(select(Invoice.status).where(Invoice.id == invoice_ids["draft"])) == "draft"
        assert session.get(Invoice, invoice_ids["draft"]).document == session.get(Invoice, 1).document


# --- NUL in the invoice forms' text (issue 13): refused on the form, on SQLite and PostgreSQL ----------------------

@pytest.mark.parametrize("form, path, data", [
    ("void", "void", {"reason": "wrong\x00site list"}),
    ("credit", "credit", {"scope": "all", "reason": "good\x00will"}),
])
def test_a_nul_in_a_reason_is_refused_beside_it_keeping_the_rest(signed_in_client, fresh_june_draft, portal_sessions,
                                                                 form, path, data):
    client = signed_in_client("finance")
    _approve_and_issue(client, fresh_june_draft)
    refused = form_post(client, f"/invoices/{fresh_june_draft}/{path}", data,
                        page=f"/invoices/{fresh_june_draft}?confirm={form}")
    html = _page(refused)
    assert refused.status_code == 400 and "A NUL character cannot be kept in this text" in html
    assert f'{data["reason"].replace(chr(0), "")}</textarea>' in html and "\x00" not in html
    with portal_sessions() as session:
        assert session.get(InvoiceVoid, fresh_june_draft) is None
        assert session.scalars(select(CreditNote)).all() == []


def test_a_nul_in_a_credited_amount_is_refused_beside_its_site(signed_in_client, fresh_june_draft, portal_sessions):
    client = signed_in_client("finance")
    _approve_and_issue(client, fresh_june_draft)
    with portal_sessions() as session:
        site = session.get(Invoice, fresh_june_draft).document["sites"][0]["site"]
    refused = form_post(client, f"/invoices/{fresh_june_draft}/credit",
                        {"scope": "sites", f"amount-{site}": "1\x000.00", "reason": "goodwill"},
                        page=f"/invoices/{fresh_june_draft}?confirm=credit")
    html = _page(refused)
    beside = re.search(rf'<p class="error" id="amount-{site}-error">([^<]*)</p>', html)
    assert refused.status_code == 400 and beside is not None and "A NUL character" in beside.group(1)
    assert 'value="10.00"' in html and "goodwill</textarea>" in html and "\x00" not in html
    with portal_sessions() as session:
        assert session.scalars(select(CreditNote)).all() == []
