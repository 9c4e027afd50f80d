"""`billing grant add|list|revoke`: credit grants (ledger/grants.py, interfaces §4).

    billing grant add --customer acme-health --amount 500.00 [--from 2026-05] [--expires 2026-12-31] \
                      [--priority 10] [--reason "service credit"]
    billing grant list --customer acme-health [--format json|text]
    billing grant revoke G-000004 --reason "granted twice"

Each change is audited (grant.add, grant.revoke); a mistake is one line and exit 1.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal, InvalidOperation

from billing.commands.db import _period, database
from billing.commands.portal import cli_actor, cli_environment
from billing.contracts import InputError
from billing.output import OK, emit, money


def cmd_add(args) -> int:
    from ledger.grants import add_grant, grant_name

    try:
        amount = Decimal(args.amount)
    except InvalidOperation:
        raise InputError(f"--amount: {args.amount!r} is not an amount") from None
    try:
        expires = dt.date.fromisoformat(args.expires) if args.expires else None
    except ValueError:
        raise InputError(f"--expires: {args.expires!r} is not a date (YYYY-MM-DD)") from None
    from_period = _period("--from", args.from_period) if args.from_period else None
    with database() as (_, sessions):
        with sessions.begin() as session:
            grant = add_grant(session, args.customer, amount, cli_actor(), from_period=from_period, expires=expires,
                              priority=args.priority, reason=args.reason)
            line = (f"{args.customer}: grant {grant_name(grant.id)} of {money(amount, _currency(session, args.customer))} "
                    f"from {grant.from_period}")
    print(line)
    return OK


def cmd_list(args) -> int:
    from ledger.grants import grant_ledger, seller_today

    today = seller_today(cli_environment().seller)   # a grant is expired after its last day, in the seller's zone
    with database() as (_, sessions):
        with sessions() as session:
            ledger = grant_ledger(session, args.customer, today)
            currency = _currency(session, args.customer)
    if args.format == "json":
        emit(json.dumps(ledger, indent=2) + "\n", None)
        return OK
    lines = []
    for grant in ledger:
        state = f"revoked by {grant['revoked']['by']}: {grant['revoked']['reason']}" if grant["revoked"] \
            else grant["state"]
        lines.append(f"{grant['grant']}  {money(grant['amount'], currency)} from {grant['from']} until "
                     f"{grant['expires'] or '-'} priority {grant['priority']}  remaining "
                     f"{money(grant['remaining'], currency)}  {state}  {grant['reason']}")
        lines += [f"    drawn {money(draw['amount'], currency)} by {draw['invoice']} ({draw['period']})"
                  + (" given back (void)" if draw["given_back"] else "") for draw in grant["draws"]]
    emit("".join(f"{line}\n" for line in lines) or f"{args.customer} has no grants\n", None)
    return OK


def _currency(session, customer: str) -> str | None:
    """The currency of the customer's contract: grants are in it."""
    from ledger.models import Contract

    contract = session.get(Contract, customer)
    return contract.currency if contract is not None else None


def cmd_revoke(args) -> int:
    from ledger.grants import revoke_grant

    try:
        grant_id = int(args.grant.upper().removeprefix("G-"))
    except ValueError:
        raise InputError(f"{args.grant!r} is not a grant (G-000004)") from None
    with database() as (_, sessions):
        with sessions.begin() as session:
            revoke_grant(session, grant_id, cli_actor(), args.reason)
    print(f"{args.grant} revoked")
    return OK


def register(commands) -> None:
    grant = commands.add_parser("grant", help="credit grants: a reduction of price invoices draw on")
    actions = grant.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="grant a credit")
    add.add_argument("--customer", required=True, metavar="CONTRACT_ID")
    add.add_argument("--amount", required=True)
    add.add_argument("--from", dest="from_period", metavar="YYYY-MM")
    add.add_argument("--expires", metavar="YYYY-MM-DD", help="its last valid day, included")
    add.add_argument("--priority", type=int, default=100, metavar="N", help="lower numbers are drawn first")
    add.add_argument("--reason", default="")
    add.set_defaults(run=cmd_add)
    listing = actions.add_parser("list", help="each grant with what drew on it and what remains")
    listing.add_argument("--customer", required=True, metavar="CONTRACT_ID")
    listing.add_argument("--format", choices=("json", "text"), default="text")
    listing.set_defaults(run=cmd_list)
    revoke = actions.add_parser("revoke", help="revoke a grant (what was drawn stays drawn)")
    revoke.add_argument("grant", metavar="ID")
    revoke.add_argument("--reason", required=True)
    revoke.set_defaults(run=cmd_revoke)
