"""One invoice in any of its formats: the single entry point the file mode, the database mode and the portal share.

    render_document(invoice, "csv")                        # DRAFT, as `billing invoice` prints it
    render_document(invoice, "pdf", number="UK-2026-000042", status="issued", issued_on=date(2026, 7, 1))
    render_document(invoice, "json", document=computed.document)   # the database mode's JSON (late lines marked)

Every format renders the same `invoicing.invoice.Invoice`, so for the same
contracts and usage both modes give the same documents. A document with no
number is a draft and says so (CSV `DRAFT`, PDF watermark and marker).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

from invoicing.invoice import Invoice, invoice_json
from invoicing.stored import legal_fields

FORMATS = ("json", "text", "csv", "pdf")


def render_document(invoice: Invoice, format: str, *, document: dict | None = None, number: str | None = None,
                    status: str = "draft", issued_on: dt.date | None = None, locale: str = "en_GB") -> str | bytes:
    """The text (json, text, csv) or bytes (pdf) of `invoice`; `document` replaces the JSON built from it."""
    if format == "json":
        return json.dumps(document if document is not None else invoice_json(invoice), indent=2) + "\n"
    if document is not None and invoice.legal is None:
        invoice = dataclasses.replace(invoice, legal=legal_fields(document))
    if format == "text":
        from invoicing.text import render_text

        return render_text(invoice, number=number, locale=locale)
    if format == "csv":
        from invoicing.csv_view import render_csv

        return render_csv(invoice, number=number)
    if format == "pdf":
        from invoicing.pdf import (
            render_pdf,  # WeasyPrint takes a while to load; only PDFs need it
        )

        return render_pdf(invoice, number=number, status=status, issued_on=issued_on, locale=locale)
    raise ValueError(f"format {format!r} is not one of {', '.join(FORMATS)}")
