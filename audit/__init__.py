"""The audit log: who did what to which resource, when, from where, with what outcome (log.py), and its head
signed outside the database (anchors.py).

Hash-chained and append-only. Every package that changes or reads financial data
records here; the audit log itself knows nothing of invoices, contracts or the web.
"""
