"""`billing journal`: the accountant's journal of a period, as CSV an accounting system imports.

    billing journal --period 2026-07 [--customer acme-health] [--output journal-2026-07.csv]

One row per journal line: every invoice issued, credit note issued and invoice
voided in the period (by the day it took effect in the seller's time zone), as
double-entry lines on the environment's accounts ([accounts] in
settings/environments/NAME.toml; docs/journal.md). Each document balances; the
command refuses to write a journal whose documents do not (exit 1, naming them).
The read is recorded in the audit log (`journal.export`) before it is written.
"""

from __future__ import annotations

from billing.commands.db import _period, _record_read, database
from billing.commands.portal import cli_environment
from billing.contracts import InputError
from billing.output import OK, emit


def cmd_journal(args) -> int:
    from audit.log import details
    from invoicing.journal import Accounts, render_csv, unbalanced
    from lifecycle.journal import period_journal

    period = _period("--period", args.period)
    environment = cli_environment()
    try:
        accounts = Accounts.of(environment.accounts)
    except ValueError as exc:
        raise InputError(f"settings/environments/{environment.name}.toml: {exc}") from None
    timezone = (environment.seller or {}).get("timezone") or "UTC"
    with database() as (_, sessions):
        with sessions() as session:
            lines = period_journal(session, period, accounts, timezone, customer=args.customer)
        wrong = unbalanced(lines)
        if wrong:
            raise InputError(f"the journal of {period} does not balance: {'; '.join(wrong)}; nothing was written")
        _record_read(sessions, "journal.export", f"journal:{period}",
                     details("journal.export", format="csv", customer=args.customer, lines=len(lines),
                             output=args.output or "standard output"))
    emit(render_csv(lines), args.output)
    return OK


def register(commands) -> None:
    journal = commands.add_parser("journal", help="the accountant's journal of a period (CSV): invoices, credit "
                                                  "notes, voids as double-entry lines")
    journal.add_argument("--period", metavar="YYYY-MM", required=True,
                         help="the month the documents were issued (or voided) in, in the seller's time zone")
    journal.add_argument("--customer", metavar="ID", help="one customer's documents (default: every customer)")
    journal.add_argument("--output", metavar="PATH", help="write the CSV there (default: standard output)")
    journal.set_defaults(run=cmd_journal)
