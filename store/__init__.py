"""Storage beside the engine: the system of record for contracts, usage events and invoices.

The engine never sees the database. These modules load what it needs (a
contract's versions as a `Timeline`, usage as `engine.usage.Usage` from rollups)
and keep what it produced (issued invoices and their cap counts):

    db.py             engine and sessions from BILLING_DATABASE_URL
    schema.py         Alembic migrations, configured in code (store/migrations)
    models.py         the tables
    contracts.py      saving contract versions, loading a contract's timeline
    history.py        a contract's versions, who saved them, what changed, what they billed
    ingest.py         events in: dedup by (source, id), rollups in the same transaction
    rollups.py        adding to rollups exactly; reading them back as Usage
    invoices.py       issued invoices: what they froze, and recording a new one
    late.py           late usage: recomputed under its own period, billed on the next open invoice
    billing_from_db.py  one period's invoice from the database
"""
