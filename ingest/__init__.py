"""Events into the record: deduplicated by identity, summed into rollups in the same transaction.

    pipeline.py      the ingestion of a batch (from a file or the event API)
    batches.py       events made ready for the database a batch at a time: the one batcher of both
    file_batches.py  a file read and made into batches by a worker process

Writes metering's tables; reads which periods the ledger has issued (for late usage).
Knows nothing of prices, invoices' contents, or HTTP.
"""
