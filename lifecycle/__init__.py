"""An invoice's life: draft → approved → issued → void, with the gates between; credit notes after it.

    transitions.py   close, approve, issue, void, and APPROVAL_GATES
    credit_notes.py  a credit note against an issued invoice
    journal.py       the accountant's journal of a period: issued invoices, credit notes and voids, posted
    models.py        invoice_counters (numbering), credit_notes

Calls review's reconciliation as a gate; knows nothing of HTTP or the command line.
"""
