"""`billing reconcile`: do the events, the rollups, the dashboard and the invoice of a period agree?

    billing reconcile --period 2026-05 [--customer acme-health] [--format text|json]
    billing reconcile --period 2026-05 --customer acme-health --explain "rollup repaired by hand, FIN-12"

Each customer's report is printed and stored (reconciliations) and the run is in
the audit log; `billing close` runs the same after making the drafts. Exit
status: 0 every period passed (or its discrepancies are explained), 1 a
discrepancy above the environment's threshold, 2 the command was misused.

`--explain TEXT` runs the reconciliation of one customer's period and, when it
fails, records TEXT as the reason its discrepancies may stand: approve and issue
then accept exactly these discrepancies (store/reconcile.py, docs/reconciliation.md).
"""

from __future__ import annotations

import json

from billing.commands.db import _period, database
from billing.commands.lifecycle import customers_to
from billing.commands.portal import cli_actor, cli_environment
from billing.contracts import InputError, UsageError
from billing.output import OK, WRONG_INPUT, locale, say


def threshold():
    from review.reconcile import Threshold

    return Threshold.of(cli_environment())


def reconcile_and_store(session, customer, period, limit, who, invoice=None):
    """The report, stored; and the explanation that covers its discrepancies, if one was recorded."""
    from review.reconcile import explanation_of, reconcile, store_report

    report = reconcile(session, customer, period, limit, invoice=invoice, seller=cli_environment().seller)
    store_report(session, report, who)
    explained = None
    if not report.passed and invoice is not None:
        explained = explanation_of(session, invoice, report)
    return report, explained


def cmd_reconcile(args) -> int:
    from engine.evaluate import OutsideContract
    from billing.refusals import refusal_text
    from engine.refusal import Refused
    from ledger.invoices import Selector, find
    from review.reconcile import NothingToExplain, explain, latest, render_text

    period = _period("--period", args.period)
    if args.explain is not None and not args.customer:
        raise UsageError("--explain needs --customer: an explanation is for one customer's period")
    who, limit = cli_actor(), threshold()
    failed, documents = 0, []
    with database() as (_, sessions):
        customers = customers_to(sessions, args.customer, period)
        for customer in customers:
            try:
                with sessions.begin() as session:
                    invoice = find(session, Selector(customer, period))
                    report, explained = reconcile_and_store(session, customer, period, limit, who, invoice)
                    if args.explain is not None:
                        explained = explain(session, latest(session, customer, period), who, args.explain)
                    text = render_text(report, explained, locale())
            except Refused as exc:
                raise InputError(f"{customer} {period}: {refusal_text(exc.refusal)}") from None
            except (OutsideContract, NothingToExplain) as exc:
                raise InputError(f"{customer} {period}: {exc}") from None
            if not report.passed and explained is None:
                failed += 1
            if args.format == "json":
                documents.append({**report.as_json(), "explanation": _explanation(explained)})
            else:
                print(text)
    if args.format == "json":
        print(json.dumps(documents, indent=2))
    if failed:
        say(f"billing reconcile: {failed} of {len(customers)} failed: approve and issue are refused until each "
            "discrepancy is resolved or explained (--explain)")
    return WRONG_INPUT if failed else OK


def _explanation(explained) -> dict | None:
    if explained is None:
        return None
    return {"by": explained.explained_by, "at": explained.explained_at.isoformat(), "text": explained.text}


def register(commands) -> None:
    reconcile = commands.add_parser("reconcile", help="check that events, rollups, dashboard and invoice agree")
    reconcile.add_argument("--period", metavar="YYYY-MM", required=True)
    reconcile.add_argument("--customer", metavar="ID", help="one customer (default: every contract billing it)")
    reconcile.add_argument("--format", choices=("text", "json"), default="text")
    reconcile.add_argument("--explain", metavar="TEXT",
                           help="record why the discrepancies found may stand (finance; audited): lifts the "
                                "refusal to approve and issue for exactly these discrepancies")
    reconcile.set_defaults(run=cmd_reconcile)
