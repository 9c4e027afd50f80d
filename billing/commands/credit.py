"""`billing credit`: a credit note against an issued invoice (store/credit_notes.py).

    billing credit --number UK-2026-000042 --reason "duplicate invoice"                # all that remains
    billing credit --number UK-2026-000042 --site lds-02 --amount 1250.00 --reason "billed before go-live"
    billing credit --number … --site lon-01 --amount 80 --site lds-02 --amount 20.50 --reason … [--pdf PATH]

One transaction; a refusal changes nothing and exits 1 (billing/cli.py says it); a --pdf path that cannot
be written is exit 2 and issues nothing. The actor in the audit log is `cli:` and
the user running the command.
"""

from __future__ import annotations

from billing.commands.db import database
from billing.commands.lifecycle import require_writable, write_pdf
from billing.commands.portal import cli_actor, cli_environment
from billing.contracts import UsageError
from billing.output import OK


def cmd_credit(args) -> int:
    from ledger.invoices import Selector
    from lifecycle.credit_notes import credit
    from lifecycle.transitions import existing

    sites, amounts = args.site or [], args.amount or []
    if len(sites) != len(amounts):
        raise UsageError("give each --site its --amount (in pairs: --site S --amount A), or neither to credit "
                         "everything that remains")
    if not args.reason.strip():
        raise UsageError("--reason: a credit note needs a reason")
    environment, who = cli_environment(), cli_actor()
    require_writable(args.pdf)
    with database() as (_, sessions):
        with sessions.begin() as session:
            invoice = existing(session, Selector(number=args.number))
            note = credit(session, invoice, who, args.reason, list(zip(sites, amounts)) or None,
                          prefix=environment.invoice_prefix, locale=environment.locale)
            if args.pdf:   # written before the commit: a PDF that cannot be written issues nothing
                write_pdf(args.pdf, note.pdf)
            line = (f"{invoice.customer} {invoice.period}: credit note {note.number} of {args.number} "
                    f"(credited {note.total:f} {note.currency})")
    print(line)
    return OK


def register(commands) -> None:
    credit = commands.add_parser("credit", help="issue a credit note against an issued invoice")
    credit.add_argument("--number", metavar="NUMBER", required=True, help="the invoice, e.g. UK-2026-000042")
    credit.add_argument("--site", action="append", metavar="SITE", help="a site to credit (repeat with --amount)")
    credit.add_argument("--amount", action="append", metavar="AMOUNT", help="the amount credited on that --site")
    credit.add_argument("--reason", required=True, help="why (printed on the credit note, kept in the audit log)")
    credit.add_argument("--pdf", metavar="PATH", help="also write the credit note's PDF there")
    credit.set_defaults(run=cmd_credit)
