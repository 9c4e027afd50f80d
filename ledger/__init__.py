"""The books: contract versions in force, and the invoices computed from them and frozen.

    models.py          contracts, contract_versions, invoices, invoice_pdfs, invoice_voids, customer_profiles,
                       fx_rates, credit_grants, grant_draws
    contracts.py       saving a contract version, loading a contract's timeline
    history.py         every version, who saved it and why, what changed, what it billed
    billing_from_db.py one period's invoice from the database, by the file mode's engine
    invoices.py        issued invoices: what each one froze; finding an invoice
    issuing.py         what an issued invoice freezes (document, cap counts)
    late.py            late usage: billed on the next open invoice as a difference
    profiles.py        customer billing profiles: the buyer, the tax treatment, the payment terms
    fx.py              GBP rates recorded by finance, for the VAT of invoices in other currencies
    grants.py          credit grants: granted, drawn by priority, expiry, age; consumed at issue, given back by a void

Reads usage from metering; knows nothing of the web, sign-in, or the lifecycle's gates.
"""
