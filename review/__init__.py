"""What finance reviews, and the controls on it: read models computed from the books and the usage.

    dashboard.py        a customer's period as the engine computes it now
    dashboard_cache.py  those figures kept in memory until their data changes
    account_year.py     an account block's contract year: cap, commitment, burn-down, year-end projection
    whatif.py           invoices an unsaved contract text would give
    reconcile.py        events, rollups, dashboard and invoice must agree
    open_periods.py     how long each contract's oldest period has waited for its issued invoice
    usage_export.py     a customer's usage per site, category and local day, as its invoices bill it
    models.py           dashboard snapshots, reconciliation runs and explanations

Never writes an invoice; knows nothing of HTTP or the command line.
"""
