"""Commands of the finance portal (interfaces §2): users, the audit log, and the demonstration.

    billing user add ana@example.com --role customer_finance --customer acme-health   # prints a first password
    billing user list
    billing user disable|enable|unlock|reset-mfa ana@example.com
    billing user reset-password ana@example.com [--password-stdin]   # prints a temporary password, changed
                                                                     # at the next sign-in before anything else
    billing audit verify            # exit 1 and the first edited, inserted or deleted entry, if any, or the
                                    # first signed anchor (audit/anchors.py) the chain no longer holds
    billing audit anchor            # sign the chain's head into the anchor file now (from a timer)
    billing demo [--database billing-demo.db] [--replace] [--host 127.0.0.1] [--port 8000] [--no-serve]

Changes are recorded in the audit log as made by `cli:<login name>`, in the
environment BILLING_ENV names; the database is the one every command uses
(BILLING_DATABASE_URL, or billing.db here). `demo` makes its own SQLite file in
the test environment (billing/demo.py), prints what it holds, the users' passwords,
TOTP secrets and recovery codes, an API key and how to sign in, and serves the
app on it with waitress.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from billing.commands.db import database
from billing.contracts import InputError, UsageError
from billing.output import OK, WRONG_INPUT, say


def cli_environment():
    """The environment BILLING_ENV names; an unknown one is a misused command (exit 2), not a traceback."""
    from settings.environment import UnknownEnvironment, load

    try:
        return load()
    except UnknownEnvironment as exc:
        raise UsageError(str(exc)) from None


def cli_actor():
    from audit.log import Actor
    from ledger.contracts import author_name

    return Actor(f"cli:{author_name()}", cli_environment().name)


def _password(args) -> str | None:
    if not args.password_stdin:
        return None
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise UsageError("--password-stdin: no password on standard input")
    return password


def cmd_user_add(args) -> int:
    from engine.refusal import Refused
    from identity.accounts import add_user

    who = cli_actor()
    password = _password(args)
    with database() as (_, sessions):
        try:
            with sessions.begin() as session:
                user, password = add_user(session, who, args.email, args.role, customer=args.customer,
                                          password=password)
                email, role, customer = user.email, user.role, user.customer
        except Refused as exc:
            raise InputError(f"{args.email}: not added: {exc}") from None
    bound = f" for customer '{customer}'" if customer else ""
    say(f"{email}: added with the role {role}{bound}; the first sign-in sets up an authenticator app")
    if not args.password_stdin:
        print(password)
        say("the password above is shown only this once (the database keeps only its hash)")
    return OK


def cmd_user_list(args) -> int:
    import datetime as dt

    from identity.accounts import list_users

    now = dt.datetime.now(dt.timezone.utc)
    with database() as (_, sessions):
        with sessions() as session:
            users = list_users(session)
            for user in users:
                state = "disabled" if user.disabled else f"locked until {user.locked_until:%Y-%m-%d %H:%M} UTC" \
                    if user.locked(now) else "active"
                mfa = "mfa set up" if user.enrolled else "mfa at next sign-in"
                customer = f"  customer {user.customer}" if user.customer else ""
                print(f"{user.email}  {user.role}{customer}  {state}  {mfa}")
    if not users:
        say("no users (add the first admin with `billing user add EMAIL --role admin`)")
    return OK


CHANGES = {
    "disable": ("disable_user", "disabled; their sessions have ended"),
    "enable": ("enable_user", "enabled"),
    "unlock": ("unlock_user", "unlocked"),
    "reset-mfa": ("reset_mfa", "MFA reset: the next sign-in sets up a new authenticator app"),
}


def cmd_user_change(args) -> int:
    from engine.refusal import Refused
    from identity import accounts

    function, done = CHANGES[args.user_command]
    who = cli_actor()
    with database() as (_, sessions):
        try:
            with sessions.begin() as session:
                user = accounts.find_user(session, args.email)
                if user is None:
                    raise InputError(f"no user {args.email}")
                getattr(accounts, function)(session, who, user)
        except Refused as exc:
            raise InputError(f"{args.email}: {exc}") from None
    print(f"{args.email}: {done}")
    return OK


def cmd_user_reset_password(args) -> int:
    from engine.refusal import Refused
    from identity import accounts

    who = cli_actor()
    typed = _password(args)
    with database() as (_, sessions):
        try:
            with sessions.begin() as session:
                user = accounts.find_user(session, args.email)
                if user is None:
                    raise InputError(f"no user {args.email}")
                password = accounts.reset_password(session, who, user, typed)
        except Refused as exc:
            raise InputError(f"{args.email}: password not reset: {exc}") from None
    say(f"{args.email}: password reset; their sessions have ended; they must change it at their next sign-in")
    if typed is None:
        print(password)
        say("the temporary password above is shown only this once (the database keeps only its hash)")
    return OK


def _anchoring():
    from audit.anchors import Anchoring

    environment = cli_environment()
    return Anchoring.configured(environment.audit_anchor_file, environment.audit_key, environment.name)


def cmd_audit_verify(args) -> int:
    from audit.anchors import check
    from audit.log import chain_head, verify

    anchoring = _anchoring()
    with database() as (_, sessions):
        with sessions() as session:
            broken = verify(session)
            head = chain_head(session)
            anchored = check(session, anchoring) if anchoring else None
    if broken is not None:
        say(f"the audit log is broken at {broken}")
        return WRONG_INPUT
    if anchored is not None and anchored.problem:
        say(f"the audit log does not match its anchors: {anchored.problem}")
        return WRONG_INPUT
    entries = f"{head.sequence:,} entr{'y' if head.sequence == 1 else 'ies'}"
    print(f"the audit log is intact: {entries}, last hash {head.hash}")
    if anchored is None:
        say("not anchored outside the database (no audit_anchor_file or BILLING_AUDIT_KEY): checked against "
            "itself only, which an insider who re-hashes the chain can satisfy")
    elif anchored.last is not None:
        print(f"anchored: {anchored.anchors:,} signed anchors agree, the last at entry {anchored.last:,}"
              f" ({head.sequence - anchored.last:,} entries since, covered by the chain only)")
    return OK


def cmd_audit_anchor(args) -> int:
    from audit.anchors import anchor

    anchoring = _anchoring()
    if anchoring is None:
        raise UsageError("the environment names no audit_anchor_file or BILLING_AUDIT_KEY is not set")
    with database() as (_, sessions):
        with sessions() as session:
            written = anchor(session, anchoring)
    print(f"anchored entry {written['sequence']:,} ({written['hash']}) in {anchoring.path}")
    return OK


def cmd_demo(args) -> int:
    import datetime as dt

    from billing.demo import ENVIRONMENT, build_demo
    from storage import db

    contracts_dir = Path(__file__).resolve().parents[2] / "contracts"
    if not any(contracts_dir.glob("*.pricing")):
        raise UsageError(f"the example contracts are not in {contracts_dir}: run `billing demo` from a clone "
                         "of the repository")
    path = Path(args.database)
    if path.exists() and not args.replace:
        raise UsageError(f"{path} exists; pass --replace to build the demonstration database again")
    for stale in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        stale.unlink(missing_ok=True)
    today = dt.date.fromisoformat(args.today) if args.today else dt.datetime.now(dt.timezone.utc).date()
    url = f"sqlite:///{path.resolve()}"
    try:
        summary = build_demo(url, contracts_dir, today)
    except db.DatabaseUnavailable as exc:
        raise UsageError(str(exc)) from None
    print(f"Demonstration database {path} (environment {ENVIRONMENT}):")
    on_demo = f"BILLING_DATABASE_URL={shlex.quote(url)} "   # the hints work pasted: not on the default billing.db
    for contract in summary.contracts:
        _print_contract(contract, on_demo)
    _print_users(summary.users)
    _print_api_key(summary.api_key, args.host, args.port)
    _print_sign_in(summary.users, args.host, args.port, url if args.no_serve else None)
    if args.no_serve:
        return OK
    return _serve(url, args.host, args.port)


def _print_contract(contract, on_demo: str) -> None:
    print(f"  {contract.contract_id} ({contract.customer}): {contract.events:,} usage events")
    issued = contract.with_status("issued")
    if issued:
        print(f"    issued    {_periods(issued)}: {len(issued)} invoice{'s' * (len(issued) != 1)}, numbered "
              f"{issued[0].number} to {issued[-1].number}, PDFs stored")
    for invoice in contract.with_status("approved"):
        print(f"    approved  {invoice.period}: ready to issue (Invoices, or `{on_demo}billing issue --customer "
              f"{contract.contract_id} --period {invoice.period}`)")
    drafts = contract.with_status("draft")
    if drafts:
        print(f"    drafts    {', '.join(str(invoice.period) for invoice in drafts)} (the last one: the month so far)")
    if contract.amendment is not None:
        print(f"    versions  2: an amendment in effect from {contract.amendment} "
              f"(`{on_demo}billing contract history {contract.contract_id}`, or the contract's page)")
    for invoice in contract.invoices:
        if invoice.refusal:
            say(f"    {contract.contract_id} {invoice.period}: left {invoice.status}: {invoice.refusal}")


def _periods(invoices) -> str:
    first, last = invoices[0].period, invoices[-1].period
    return str(first) if first == last else f"{first} to {last}"


def _print_users(users) -> None:
    print("\nUsers (passwords and recovery codes are shown only now; each recovery code signs in once):")
    roles = [user.role + (f" ({user.customer})" if user.customer else "") for user in users]
    emails, widest = max(len(user.email) for user in users), max(map(len, roles))
    for user, role in zip(users, roles):
        print(f"  {user.email:<{emails}}  {role:<{widest}}  password {user.password}  TOTP secret {user.totp_secret}")
        print(f"  {'':<{emails}}  recovery codes {' '.join(user.recovery_codes)}")


def _print_api_key(api_key, host: str, port: int) -> None:
    print(f"\nAPI key for the event API (customer {api_key.customer}, events of source {api_key.source}):")
    print(f"  {api_key.key}")
    print(f"  curl -H 'Authorization: Bearer {api_key.key}' -H 'Content-Type: application/cloudevents+json' "
          f"--data @event.json http://{host}:{port}/api/v1/events")


def _print_sign_in(users, host: str, port: int, unserved_url: str | None) -> None:
    first = users[0]
    serve = f" once the portal runs on it (BILLING_DATABASE_URL={unserved_url} billing serve)" if unserved_url else ""
    print(f"\nHow to sign in:\n"
          f"  1. open http://{host}:{port}/login{serve}\n"
          "  2. type a user's email and password from above\n"
          "  3. type the 6-digit code an authenticator app shows for the user's TOTP secret, or one of the user's\n"
          f"     recovery codes; without an app, this prints the current code of {first.email}:\n"
          f"     .venv/bin/python -c \"import pyotp; print(pyotp.TOTP('{first.totp_secret}').now())\"")


def _serve(url: str, host: str, port: int) -> int:
    from waitress import serve

    from admin_app import create_app
    from billing.demo import ENVIRONMENT

    app = create_app({"BILLING_ENV": ENVIRONMENT, "DATABASE_URL": url})
    print(f"\nServing the portal on http://{host}:{port}/ (Ctrl-C stops)", flush=True)
    serve(app, host=host, port=port)
    return OK


def register(commands) -> None:
    user = commands.add_parser("user", help="portal users: add, list, disable, enable, unlock, reset MFA, reset the password")
    user_commands = user.add_subparsers(dest="user_command", required=True, metavar="COMMAND")
    add = user_commands.add_parser("add", help="add a user; prints a first password unless --password-stdin")
    add.add_argument("email", metavar="EMAIL")
    add.add_argument("--role", required=True, help="admin, deal_desk, finance or customer_finance")
    add.add_argument("--customer", metavar="CONTRACT_ID", help="the customer a customer_finance user may see")
    add.add_argument("--password-stdin", action="store_true", help="read the first password from standard input")
    add.set_defaults(run=cmd_user_add)
    user_commands.add_parser("list", help="every user: role, customer, state").set_defaults(run=cmd_user_list)
    for name, (_, done) in CHANGES.items():
        change = user_commands.add_parser(name, help=f"{name} a user ({done})")
        change.add_argument("email", metavar="EMAIL")
        change.set_defaults(run=cmd_user_change)
    reset = user_commands.add_parser("reset-password", help="reset a user's password: prints a temporary one "
                                                            "(unless --password-stdin), to change at next sign-in")
    reset.add_argument("email", metavar="EMAIL")
    reset.add_argument("--password-stdin", action="store_true", help="read the temporary password from standard input")
    reset.set_defaults(run=cmd_user_reset_password)

    audit = commands.add_parser("audit", help="the audit log")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True, metavar="COMMAND")
    audit_commands.add_parser("verify", help="check the hash chain; exit 1 at the first edited, inserted or "
                                             "deleted entry, or where it disagrees with its signed anchors"
                              ).set_defaults(run=cmd_audit_verify)
    audit_commands.add_parser("anchor", help="sign the chain's head into the environment's anchor file now "
                                             "(closes and issues do it too)").set_defaults(run=cmd_audit_anchor)

    demo = commands.add_parser("demo", help="build a demonstration database (example contracts, months of usage, "
                                             "issued invoices, a user of every role) and serve the portal on it")
    demo.add_argument("--database", default="billing-demo.db", metavar="PATH",
                      help="the SQLite file to create (default billing-demo.db)")
    demo.add_argument("--replace", action="store_true", help="build it again if the file exists")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--no-serve", action="store_true", help="only build the database")
    demo.add_argument("--today", help=argparse.SUPPRESS)   # YYYY-MM-DD: the day the demonstration is built for
    demo.set_defaults(run=cmd_demo)
