"""The invoice lifecycle on the command line (interfaces §2): `billing close`, `approve`, `issue`, `void`.

    billing close --period 2026-05 [--customer acme-health]     drafts, created or recomputed, then reconciled
    billing approve --customer acme-health --period 2026-05
    billing issue --number …  |  --customer ID --period P  [--pdf PATH]
    billing void --number UK-2026-000042 --reason "wrong site list"

Each step is one transaction (lifecycle/transitions.py); a refusal changes nothing,
is said as billing/refusals.py words it, and exits 1. `close` records the
dashboard's figures and runs the reconciliation in the transaction of each draft
(`lifecycle.transitions.close_and_reconcile`, which the portal's close calls too); a
draft whose reconciliation failed is kept, and
close exits 1 saying why. The actor in the audit log is `cli:` and the user
running the command.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

from billing.commands.db import _period, database
from billing.commands.portal import cli_actor, cli_environment
from billing.contracts import InputError, UsageError
from billing.output import OK, WRONG_INPUT, locale, money, say
from billing.refusals import refusal_text


def _selector(args):
    from ledger.invoices import Selector

    if args.number and (args.customer or args.period):
        raise UsageError("name the invoice by --number, or by --customer and --period, not both")
    if args.number:
        return Selector(number=args.number)
    if not (args.customer and args.period):
        raise UsageError("name the invoice by --number, or by --customer and --period")
    return Selector(args.customer, _period("--period", args.period))


@contextmanager
def recorded_refusal(sessions, who, action: str, which):
    """A refused approve, issue or void is in the audit log as the portal records it (admin_app/invoices.py):
    a failure with the refusal's reason and code (audit/log.py VOCABULARY), then said as usual."""
    from audit.log import FAILURE, invoice_resource, record, refusal_details
    from engine.refusal import Refused
    from ledger.invoices import find

    try:
        yield
    except Refused as exc:
        with sessions.begin() as session:
            row = find(session, which)
            resource = invoice_resource(row.customer, row.period, row.id) if row is not None else \
                f"invoice:{which.number or invoice_resource(which.customer, which.period).removeprefix('invoice:')}"
            record(session, who, action, resource, outcome=FAILURE,
                   details=refusal_details(action, exc.refusal.message, exc.refusal.code))
        raise


def charges_vat(environment) -> bool:
    """A production entity that issues UK VAT invoices corrects them by credit notes, never by a void."""
    return environment.production and "uk_standard" in environment.tax_treatments


def _total(row) -> str:
    return money(row.document["totals"]["total"], row.document.get("currency"))


def customers_to(sessions, customer: str | None, period) -> list[str]:
    """The customer named by --customer, or every contract that bills the period (none: wrong input)."""
    from lifecycle.transitions import customers_billed_in

    if customer:
        return [customer]
    with sessions() as session:
        customers = customers_billed_in(session, period)
    if not customers:
        raise InputError(f"no contract bills {period}")
    return customers


def cmd_close(args) -> int:
    from audit.log import FAILURE, details, invoice_resource, record
    from billing.commands.reconcile import threshold
    from engine.refusal import Refused
    from lifecycle.transitions import close_and_reconcile
    from review.reconcile import render_text

    period = _period("--period", args.period)
    refusals = failed = 0
    who, limit, seller = cli_actor(), threshold(), cli_environment().seller
    with database() as (_, sessions):
        customers = customers_to(sessions, args.customer, period)
        for customer in customers:
            try:
                with sessions.begin() as session:
                    closed = close_and_reconcile(session, customer, period, who, threshold=limit, seller=seller)
                    row = closed.invoice   # recorded as the portal's close is (admin_app/invoices.py)
                    record(session, who, "invoice.close", invoice_resource(row.customer, row.period, row.id),
                           details=details("invoice.close", result=closed.outcome,
                                           total=row.document["totals"]["total"], reconciliation=closed.verdict))
                    line = f"{customer} {period}: draft {closed.outcome} (total {_total(closed.invoice)})"
                    report, explained = closed.report, closed.explanation
            except Refused as exc:
                with sessions.begin() as session:   # rolled back, then recorded as a failure, as in the portal
                    record(session, who, "invoice.close", f"invoice:{customer}/{period}", outcome=FAILURE,
                           details=details("invoice.close", reason=exc.refusal.message, code=exc.refusal.code))
                if args.customer:
                    raise
                say(f"{customer} {period}: skipped: {refusal_text(exc.refusal)}")
                refusals += 1
                continue
            print(line)
            # stdout keeps one line per draft; the reconciliation's verdict goes beside it, on stderr
            if report.passed or explained is not None:
                say(render_text(report, explained, locale()).splitlines()[0])
            else:
                failed += 1
                say(render_text(report, locale=locale()))
    if failed:
        say(f"billing close: the reconciliation of {failed} draft{'s' if failed != 1 else ''} failed: they cannot be "
            "approved until each discrepancy is resolved (then close again) or explained (`billing reconcile "
            "--explain`)")
        return WRONG_INPUT
    return OK if not args.customer or refusals < len(customers) else WRONG_INPUT


def cmd_approve(args) -> int:
    from lifecycle.transitions import approve
    from review.reconcile import Threshold

    which, who, environment = _selector(args), cli_actor(), cli_environment()
    with database() as (_, sessions), recorded_refusal(sessions, who, "invoice.approve", which):
        with sessions.begin() as session:
            row = approve(session, which, who, threshold=Threshold.of(environment),
                          profile_required=environment.production, treatments=environment.tax_treatments,
                          seller=environment.seller, locale=environment.locale)
            line = f"{row.customer} {row.period}: approved by {who.name} (total {_total(row)})"
    print(line)
    return OK


def cmd_issue(args) -> int:
    from lifecycle.transitions import issue
    from review.reconcile import Threshold

    which, who, environment = _selector(args), cli_actor(), cli_environment()
    require_writable(args.pdf)
    with database() as (_, sessions), recorded_refusal(sessions, who, "invoice.issue", which):
        with sessions.begin() as session:
            issued = issue(session, which, who, threshold=Threshold.of(environment),
                           prefix=environment.invoice_prefix, locale=environment.locale, seller=environment.seller)
            row = issued.invoice
            if args.pdf:   # written before the commit: a PDF that cannot be written issues nothing
                write_pdf(args.pdf, issued.pdf)
            line = f"{row.customer} {row.period}: issued as {row.number} (total {_total(row)})"
    print(line)
    return OK


def require_writable(path: str | None) -> None:
    """Refuses, before anything is issued, a --pdf path whose folder cannot be written."""
    if path and not os.access(Path(path).resolve().parent, os.W_OK):
        raise UsageError(f"--pdf {path}: cannot write there; nothing was issued")


def write_pdf(path: str, pdf: bytes) -> None:
    try:
        Path(path).write_bytes(pdf)
    except OSError as exc:
        raise UsageError(f"--pdf {path}: cannot write the PDF: {exc.strerror or exc}; nothing was issued") from None


def cmd_void(args) -> int:
    from lifecycle.transitions import void

    which, who, environment = _selector(args), cli_actor(), cli_environment()
    with database() as (_, sessions), recorded_refusal(sessions, who, "invoice.void", which):
        with sessions.begin() as session:
            row = void(session, which, who, args.reason, charges_vat=charges_vat(environment))
            line = (f"{row.customer} {row.period}: {row.number or f'invoice #{row.id}'} voided; "
                    f"`billing close --customer {row.customer} --period {row.period}` makes its replacement")
    print(line)
    return OK


def _which(parser) -> None:
    parser.add_argument("--customer", metavar="ID")
    parser.add_argument("--period", metavar="YYYY-MM")
    parser.add_argument("--number", metavar="NUMBER", help="the invoice number, e.g. UK-2026-000042")


def register(commands) -> None:
    close = commands.add_parser("close", help="make or recompute the drafts of a period")
    close.add_argument("--period", metavar="YYYY-MM", required=True)
    close.add_argument("--customer", metavar="ID", help="one customer (default: every contract billing the period)")
    close.set_defaults(run=cmd_close)

    approve = commands.add_parser("approve", help="approve a draft invoice for issuing")
    _which(approve)
    approve.set_defaults(run=cmd_approve)

    issue = commands.add_parser("issue", help="number an approved invoice, freeze it and store its PDF")
    _which(issue)
    issue.add_argument("--pdf", metavar="PATH", help="also write the issued PDF there")
    issue.set_defaults(run=cmd_issue)

    void = commands.add_parser("void", help="void an issued invoice (its row is kept; the void is recorded)")
    _which(void)
    void.add_argument("--reason", required=True, help="why it is voided (kept with the void and in the audit log)")
    void.set_defaults(run=cmd_void)
