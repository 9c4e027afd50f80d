"""Storage: where the database is, how its columns keep values exact, and its schema.

    db.py        engines and sessions for a URL it is given
    types.py     column types that keep the engine's decimals, instants and periods exact
    encoding.py  values as each database's driver takes them in bulk (the ingest batcher, the bulk writer)
    base.py      the declarative base every package's tables derive from; append-only guards
    schema.py    Alembic migrations (storage/migrations), configured in code

Knows no table of its own and nothing of billing: each package declares its tables
beside the code that writes them. Knows nothing of configuration: the URL is handed
in (settings/ is read by the entry points only). Must not import any package above it.
"""
