"""The service's metrics (prometheus-client): one family per thing an operator alerts on.

    @counted_batches(lambda batch: "file" if isinstance(batch, Prepared) else "api")   # ingest's batches
    count_on_commit(session, INVOICES.labels("issued").inc)  # counted once the transaction commits
    registry = app_registry(open_periods)                    # what /metrics (or the metrics port) serves

Every family is created without a registry and added to each app's registry by
`app_registry`, so two apps in one process (the tests) do not collide, and the
age of the open periods is asked of the app's own database. Label values are few
and fixed (an outcome, a reason of the pipeline, a route's rule, never a raw path
or a customer's input), except `customer` in billing_open_period_age_seconds: a
gauge per contract, as many as there are contracts.
"""

from __future__ import annotations

import functools
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Mapping
from operator import attrgetter

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import event

EVENTS = Counter("billing_events", "Events ingested, by outcome (accepted, duplicate, conflict, rejected), the "
                 "reason of a rejection, and their source (api: the event API; file: `billing ingest`)",
                 ["outcome", "reason", "source"], registry=None)
INGEST_BATCH_SECONDS = Histogram("billing_ingest_batch_seconds", "Time to store one ingest batch (one "
                                 "transaction), by source", ["source"], registry=None,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
HTTP_SECONDS = Histogram("billing_http_request_seconds", "HTTP requests and their latency, by route (the URL "
                         "rule, not the path), method and status", ["route", "method", "status"], registry=None)
SIGN_IN_FAILED = Counter("billing_sign_in_failures", "Failed sign-in steps, by step (login.password, "
                           "login.mfa, mfa.enrol, user.password) and reason", ["step", "reason"], registry=None)
LOCKOUTS = Counter("billing_lockouts", "Accounts locked after repeated failures", registry=None)
INVOICES = Counter("billing_invoices", "Invoice transitions committed: closed (a draft made or recomputed), "
                   "approved, issued, voided", ["transition"], registry=None)
RECONCILIATIONS = Counter("billing_reconciliations", "Reconciliation reports stored, by result (passed, failed)",
                          ["result"], registry=None)
FAMILIES = (EVENTS, INGEST_BATCH_SECONDS, HTTP_SECONDS, SIGN_IN_FAILED, LOCKOUTS, INVOICES, RECONCILIATIONS)

_STATUS_AND_REASON = attrgetter("status", "reason")
_PENDING = "telemetry.pending"


def counted_batches(source_of: Callable[[object], str]):
    """Decorates the method that stores one ingest batch and returns its outcomes (each with `status` and
    `reason`): each call is timed, and its outcomes counted, under the source `source_of(batch)` names."""
    def decorate(store: Callable[..., list]) -> Callable[..., list]:
        @functools.wraps(store)
        def counted(*args) -> list:
            started = time.perf_counter()
            outcomes = store(*args)
            source = source_of(args[-1])
            INGEST_BATCH_SECONDS.labels(source).observe(time.perf_counter() - started)
            for (status, reason), count in Tally(map(_STATUS_AND_REASON, outcomes)).items():
                EVENTS.labels(status, reason, source).inc(count)
            return outcomes

        return counted

    return decorate


def count_on_commit(session, count: Callable[[], None]) -> None:
    """Calls `count` once the SQLAlchemy `session`'s transaction commits; never, if it rolls back: an invoice
    counted as issued is one that was."""
    pending = session.info.get(_PENDING)
    if pending is None:
        pending = session.info[_PENDING] = []
        event.listen(session, "after_commit", _run_pending)
        event.listen(session, "after_rollback", _drop_pending)
    pending.append(count)


def _run_pending(session) -> None:
    pending = session.info.get(_PENDING, [])
    while pending:
        pending.pop(0)()


def _drop_pending(session) -> None:
    session.info.get(_PENDING, []).clear()


class OpenPeriods(Collector):
    """billing_open_period_age_seconds{customer}: how long ago the oldest period of each contract that has no
    issued invoice ended (0: none is open). `ages()` asks the database at scrape time."""

    def __init__(self, ages: Callable[[], Mapping[str, float]]):
        self.ages = ages

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily("billing_open_period_age_seconds", "Age of the oldest ended period without "
                                   "an issued invoice, per customer (0: every ended period is issued)",
                                   labels=["customer"])
        for customer, age in sorted(self.ages().items()):
            family.add_metric([customer], age)
        yield family

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return []   # asking the database when the collector is registered would be wasted


def app_registry(open_period_ages: Callable[[], Mapping[str, float]] | None = None) -> CollectorRegistry:
    """A registry with every family, the process's CPU and memory, and the open periods' collector."""
    registry = CollectorRegistry()
    for family in FAMILIES:
        registry.register(family)
    ProcessCollector(registry=registry)
    if open_period_ages is not None:
        registry.register(OpenPeriods(open_period_ages))
    return registry
