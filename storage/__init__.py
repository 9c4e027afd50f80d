"""Storage: where the database is, how its columns keep values exact, and its schema.

    db.py        engines and sessions for a URL it is given
    types.py     column types that keep the engine's decimals, instants and periods exact
    base.py      the declarative base every package's tables derive from; append-only guards
    schema.py    Alembic migrations (storage/migrations), configured in code

Knows no table of its own and nothing of billing: each package declares its tables
beside the code that writes them. Must not import any package above it.
"""
