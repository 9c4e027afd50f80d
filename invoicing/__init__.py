"""Invoicing: what the customer sees. One invoice object and its renderings.

    invoice.py      the invoice object built from a period's result, and its JSON form
    render.py       one entry for every format: the file mode, the database mode and the portal share it
    text.py         plain text, every line with why it is there
    csv_view.py     CSV for finance spreadsheets
    pdf.py          PDF (templates/invoice.html, WeasyPrint); TEMPLATES: where the installed templates are
    credit_note.py  a credit note: its JSON, text and PDF (net, tax and total credited)
    stored.py       an issued invoice read back from its stored JSON
    legal.py        the legal invoice: seller, buyer, dates, credits, tax, net and due (database mode)
    tax.py          tax treatments, UK VAT's dated rates, tax rounded down once on the net
    journal.py      a document as double-entry journal lines (account codes handed in), and as CSV
    legal_view.py   the legal invoice as the documents word it: "Not a VAT invoice", labels, the sums they prove

Knows nothing of how lines were computed (the engine's), of the database or of the web.
"""
