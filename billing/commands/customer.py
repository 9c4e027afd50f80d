"""`billing customer set|show`: a customer's billing profile (ledger/profiles.py, interfaces §4).

    billing customer set acme-health --name "Acme Health Ltd" --address "1 High St" --address "London EC1A 1AA" \
                         --tax-id GB123456789 --tax-treatment uk_standard --purchase-order PO-7781 --terms-days 30
    billing customer show acme-health [--format json|text]

Only the options given change; each change is a new revision, audited as `customer.profile`. A treatment the
environment does not issue is refused (exit 1); the actor is `cli:` and the user running the command.
"""

from __future__ import annotations

import json

from billing.commands.db import database
from billing.commands.portal import cli_actor, cli_environment
from billing.contracts import InputError
from billing.output import OK, emit

OPTIONS = {"name": "name", "address": "address", "tax_id": "tax_id", "tax_treatment": "tax_treatment",
           "exempt_reason": "exempt_reason", "purchase_order": "purchase_order", "terms_days": "terms_days"}


def cmd_set(args) -> int:
    from ledger.profiles import missing_for, save_profile

    changes = {field: getattr(args, option) for option, field in OPTIONS.items() if getattr(args, option) is not None}
    environment, who = cli_environment(), cli_actor()
    with database() as (_, sessions):
        with sessions.begin() as session:
            profile = save_profile(session, args.customer, who, changes,
                                   treatments=environment.tax_treatments or _all())
            missing = missing_for(profile)
            line = (f"{args.customer}: billing profile revision {profile.revision} ({profile.tax_treatment})"
                    + (f"; before approval it still needs {', '.join(missing)}" if missing else ""))
    print(line)
    return OK


def cmd_show(args) -> int:
    from ledger.profiles import missing_for, profile_json, profile_of

    with database() as (_, sessions):
        with sessions() as session:
            profile = profile_of(session, args.customer)
            if profile is None:
                raise InputError(f"'{args.customer}' has no billing profile (billing customer set {args.customer} …)")
            shown, missing = profile_json(profile), missing_for(profile)
    if args.format == "json":
        emit(json.dumps({**shown, "missing": missing}, indent=2) + "\n", None)
        return OK
    rows = [("customer", shown["customer"]), ("revision", str(shown["revision"])), ("name", shown["name"]),
            *[("address", line) for line in shown["address"]], ("tax id", shown["tax_id"]),
            ("tax treatment", shown["tax_treatment"]), ("exemption", shown["exempt_reason"]),
            ("purchase order", shown["purchase_order"]),
            ("payment terms", "the seller's default" if shown["terms_days"] is None else f"net {shown['terms_days']}"),
            ("saved", f"{shown['saved_at']} by {shown['saved_by']}"),
            ("missing", ", ".join(missing) or "nothing")]
    emit("".join(f"{label:<15} {value}\n" for label, value in rows), None)
    return OK


def _all() -> tuple[str, ...]:
    from ledger.models import TAX_TREATMENTS

    return TAX_TREATMENTS


def register(commands) -> None:
    customer = commands.add_parser("customer", help="a customer's billing profile: who the invoices bill")
    actions = customer.add_subparsers(dest="action", required=True, metavar="ACTION")
    put = actions.add_parser("set", help="change the billing profile (only the options given)")
    put.add_argument("customer", metavar="CONTRACT_ID")
    put.add_argument("--name", help="the legal name")
    put.add_argument("--address", action="append", metavar="LINE", help="a line of the address (repeat, in order)")
    put.add_argument("--tax-id", help="the buyer's tax id or VAT number")
    put.add_argument("--tax-treatment", choices=("uk_standard", "reverse_charge", "exempt", "none"))
    put.add_argument("--exempt-reason", metavar="TEXT", help="the exemption certificate or reason (exempt)")
    put.add_argument("--purchase-order", metavar="TEXT", help="printed on every invoice")
    put.add_argument("--terms-days", type=int, metavar="N", help="payment terms in calendar days")
    put.set_defaults(run=cmd_set)
    show = actions.add_parser("show", help="print the billing profile")
    show.add_argument("customer", metavar="CONTRACT_ID")
    show.add_argument("--format", choices=("json", "text"), default="text")
    show.set_defaults(run=cmd_show)
