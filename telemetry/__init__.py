"""What an operator watches: metrics in the Prometheus text format, and one JSON log line per request or command.

    metrics.py   the counters and histograms each layer adds to (`count_on_commit` for what a transaction
                 decides), a registry per app, the collector of open periods' ages
    logs.py      the JSON formatter: secrets redacted by field name and by what a value looks like

The bottom of the tree beside engine/: it imports nothing of the project, so that
every service that counts (ingest, identity, review, lifecycle) may import it. It
knows nothing of billing's tables, of HTTP or of the command line; the entry points
(admin_app, billing) serve what it gathers.
"""
