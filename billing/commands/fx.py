"""`billing fx set`: the GBP rate of a currency on a day (ledger/fx.py, interfaces §4, Tax).

    billing fx set --date 2026-07-03 --currency USD --gbp 0.7931

A non-GBP invoice with UK VAT states its VAT in GBP at the rate of its tax point, and is not issued until
that rate is recorded. Audited as `fx.set`; a mistake is one line and exit 1.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation

from billing.commands.db import database
from billing.commands.portal import cli_actor
from billing.contracts import InputError
from billing.output import OK


def cmd_set(args) -> int:
    from ledger.fx import record_rate

    try:
        on = dt.date.fromisoformat(args.date)
    except ValueError:
        raise InputError(f"--date: {args.date!r} is not a date (YYYY-MM-DD)") from None
    try:
        gbp = Decimal(args.gbp)
    except InvalidOperation:
        raise InputError(f"--gbp: {args.gbp!r} is not a number") from None
    who = cli_actor()
    with database() as (_, sessions):
        with sessions.begin() as session:
            record_rate(session, args.currency, on, gbp, who)
    print(f"1 {args.currency} = {gbp:f} GBP on {on}")
    return OK


def register(commands) -> None:
    fx = commands.add_parser("fx", help="GBP rates for the VAT of invoices in other currencies")
    actions = fx.add_subparsers(dest="action", required=True, metavar="ACTION")
    put = actions.add_parser("set", help="record how many GBP one unit of a currency is worth on a day")
    put.add_argument("--date", required=True, metavar="YYYY-MM-DD")
    put.add_argument("--currency", required=True, metavar="CODE")
    put.add_argument("--gbp", required=True, metavar="RATE")
    put.set_defaults(run=cmd_set)
