"""Metering: what happened. Usage events read, deduplicated and summed per local day, site and category.

    events.py     usage events (CloudEvents as JSON Lines or CSV), read line by line
    dedup.py      when a repeat of an identity is a duplicate and when a conflict
    days.py       the local day of an instant in a contract's time zone
    aggregate.py  a customer's events summed per local day, site and category
    models.py     the tables of what happened: usage events as first stored, and their sums (rollups)
    rollups.py    adding to the rollups exactly, reading them back as engine usage
    bulk.py       writing a batch through the driver's bulk path

Knows nothing of prices, rules or invoices: it says how much, never what it costs.
"""
