"""`billing credit`: a credit note against an issued invoice (lifecycle/credit_notes.py); `billing credit-note`:
a stored credit note, as text or JSON.

    billing credit --number UK-2026-000042 --reason "duplicate invoice"                # all that remains
    billing credit --number UK-2026-000042 --site lds-02 --amount 1250.00 --reason "billed before go-live"
    billing credit --number … --site lon-01 --amount 80 --account commitment_fee --amount 500 --reason … [--pdf PATH]
    billing credit … --format json|text        # the credit note issued, rather than one line
    billing credit-note UK-CN-2026-000001 [--format json|text]

Each --site (a site's id) or --account (an account line's kind: account_minimum, commitment_fee,
commitment_true_up) is followed by its --amount. One transaction; a refusal changes nothing and exits 1
(billing/cli.py says it); a --pdf path that cannot be written is exit 2 and issues nothing. The actor in the
audit log is `cli:` and the user running the command.
"""

from __future__ import annotations

import argparse
import json

from billing.commands.db import database
from billing.commands.lifecycle import require_writable, write_pdf
from billing.commands.portal import cli_actor, cli_environment
from billing.contracts import UsageError
from billing.output import OK, emit, money


class _InOrder(argparse.Action):
    """--site, --account and --amount kept in the order they were given, so each amount pairs with the line
    named just before it."""

    def __call__(self, parser, namespace, values, option_string=None):
        given = list(getattr(namespace, "stated", None) or [])
        given.append((self.dest, values))
        namespace.stated = given


def _pairs(stated: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The stated (site, amount) and (account kind, amount) pairs."""
    sites, account = [], []
    if len(stated) % 2 or any(what == "amount" for what, _ in stated[::2]) \
            or any(what != "amount" for what, _ in stated[1::2]):
        raise UsageError("give each --site or --account its --amount (in pairs: --site S --amount A, "
                         "--account KIND --amount A), or none of them to credit everything that remains")
    for (what, ref), (_, amount) in zip(stated[::2], stated[1::2], strict=True):
        (sites if what == "site" else account).append((ref, amount))
    return sites, account


def cmd_credit(args) -> int:
    from invoicing.credit_note import credit_note_json, credit_note_text
    from ledger.invoices import Selector
    from lifecycle.credit_notes import credit, document_of
    from lifecycle.transitions import existing

    sites, account = _pairs(args.stated or [])
    if not args.reason.strip():
        raise UsageError("--reason: a credit note needs a reason")
    environment, who = cli_environment(), cli_actor()
    require_writable(args.pdf)
    with database() as (_, sessions):
        with sessions.begin() as session:
            invoice = existing(session, Selector(number=args.number))
            note = credit(session, invoice, who, args.reason, sites or None, account=account,
                          prefix=environment.invoice_prefix, locale=environment.locale)
            if args.pdf:   # written before the commit: a PDF that cannot be written issues nothing
                write_pdf(args.pdf, note.pdf)
            document = document_of(session, note)
            line = (f"{invoice.customer} {invoice.period}: credit note {note.number} of {args.number} "
                    f"(credited {money(document.net, note.currency)} net + {money(document.tax_amount, note.currency)} tax "
                    f"= {money(note.total, note.currency)})")
    if args.format == "json":
        emit(json.dumps(credit_note_json(document), indent=2) + "\n", None)
    elif args.format == "text":
        emit(credit_note_text(document, environment.locale), None)
    else:
        print(line)
    return OK


def cmd_show(args) -> int:
    from invoicing.credit_note import credit_note_json, credit_note_text
    from audit.log import details, invoice_resource, record
    from ledger.invoices import status_of
    from ledger.models import Invoice
    from lifecycle.credit_notes import document_of, find_note

    locale = cli_environment().locale
    with database() as (_, sessions), sessions.begin() as session:
        row = find_note(session, args.credit_note)
        document = document_of(session, row)
        invoice = session.get(Invoice, row.invoice_id)
        # a read of financial data is recorded like the portal's, before it is shown
        record(session, cli_actor(), "invoice.view", invoice_resource(invoice.customer, invoice.period, invoice.id),
               details=details("invoice.view", status=status_of(session, invoice), format=args.format,
                               credit_note=row.number, output="standard output"))
    if args.format == "json":
        emit(json.dumps(credit_note_json(document), indent=2) + "\n", None)
    else:
        emit(credit_note_text(document, locale), None)
    return OK


def register(commands) -> None:
    credit = commands.add_parser("credit", help="issue a credit note against an issued invoice")
    credit.add_argument("--number", metavar="NUMBER", required=True, help="the invoice, e.g. UK-2026-000042")
    credit.add_argument("--site", dest="site", action=_InOrder, metavar="SITE",
                        help="a site to credit (followed by its --amount; repeatable)")
    credit.add_argument("--account", dest="account", action=_InOrder, metavar="KIND",
                        help="an account line to credit, by kind: account_minimum, commitment_fee, "
                             "commitment_true_up (followed by its --amount; repeatable)")
    credit.add_argument("--amount", dest="amount", action=_InOrder, metavar="AMOUNT",
                        help="the amount credited on the --site or --account just before it")
    credit.add_argument("--reason", required=True, help="why (printed on the credit note, kept in the audit log)")
    credit.add_argument("--pdf", metavar="PATH", help="also write the credit note's PDF there")
    credit.add_argument("--format", choices=("json", "text"), help="print the credit note issued, not one line")
    credit.set_defaults(run=cmd_credit, stated=None)
    show = commands.add_parser("credit-note", help="show a credit note (net, tax and total credited)")
    show.add_argument("credit_note", metavar="NUMBER", help="the credit note, e.g. UK-CN-2026-000001")
    show.add_argument("--format", choices=("json", "text"), default="text")
    show.set_defaults(run=cmd_show)
