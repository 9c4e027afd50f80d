"""The `billing` command (interfaces §2). Exit status: 0 success, 1 the input is wrong, 2 misuse.

Each area adds its commands from its own module in billing/commands/ (a
`register(subparsers)` function); a user's mistake is one clear line naming the
file, the line and the reason, never a traceback. A refusal of the layers below
(engine/refusal.py) is said as billing/refusals.py words it, and exits 1.
"""

from __future__ import annotations

import argparse

from billing import command_log
from billing.commands import (
    credit,
    customer,
    db,
    file_mode,
    fx,
    grant,
    journal,
    lifecycle,
    portal,
    reconcile,
    web,
)
from billing.contracts import InputError, UsageError
from billing.output import MISUSE, WRONG_INPUT, say
from billing.refusals import refusal_text
from engine.evaluate import OutsideContract
from engine.refusal import Refused

COMMAND_MODULES = (file_mode, db, lifecycle, web, portal, credit, reconcile, customer, fx, grant, journal)
# Commands that only work on what is already recorded: on a SQLite file that is not there they say so (exit 2)
# rather than create an empty database and find nothing in it (issue 14). `invoice` when it reads (--customer).
NEED_RECORDS = (
    db.cmd_contract_history, customer.cmd_show, customer.cmd_set, grant.cmd_list, grant.cmd_add, grant.cmd_revoke,
    lifecycle.cmd_close, lifecycle.cmd_approve, lifecycle.cmd_issue, lifecycle.cmd_void, credit.cmd_credit, credit.cmd_show,
    reconcile.cmd_reconcile, portal.cmd_user_list, portal.cmd_user_change, portal.cmd_audit_verify,
    web.cmd_apikey_list, web.cmd_apikey_revoke, journal.cmd_journal,
)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="billing", description="Enterprise billing engine: contracts, usage, invoices.")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(commands)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    started = command_log.start(args)
    status = _run(args)
    command_log.finished(args, status, started)
    return status


def _run(args) -> int:
    try:
        if args.run in NEED_RECORDS or (args.run is file_mode.cmd_invoice and args.customer):
            _require_database()
        return args.run(args)
    except UsageError as exc:
        say(f"billing {args.command}: {exc}")
        return MISUSE
    except (InputError, OutsideContract) as exc:
        say(f"billing {args.command}: {exc}")
        return WRONG_INPUT
    except Refused as exc:
        say(f"billing {args.command}: {refusal_text(exc.refusal)}")
        return WRONG_INPUT
    except KeyboardInterrupt:
        say("billing: interrupted")
        return 130
    except Exception:
        command_log.failed(args)
        raise


def _require_database() -> None:
    """A SQLite file that is not there: which one was looked for, and how to make one."""
    from pathlib import Path

    from storage.db import shown, sqlite_file

    url = portal.cli_environment().database_url
    path = sqlite_file(url)
    if path is not None and not Path(path).exists():
        raise UsageError(f"there is no database {shown(url)} (no file {Path(path).resolve()}; the URL is "
                         "BILLING_DATABASE_URL, else the environment's): create one with `billing db upgrade`, or "
                         "build the demonstration with `billing demo` and run commands on it with "
                         "BILLING_DATABASE_URL=sqlite:///billing-demo.db before them")
