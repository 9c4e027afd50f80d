"""The `billing` command (interfaces §2). Exit status: 0 success, 1 the input is wrong, 2 misuse.

Each area adds its commands from its own module in billing/commands/ (a
`register(subparsers)` function); a user's mistake is one clear line naming the
file, the line and the reason, never a traceback. A refusal of the layers below
(engine/refusal.py) is said as billing/refusals.py words it, and exits 1.
"""

from __future__ import annotations

import argparse

from billing import command_log
from billing.commands import credit, customer, db, file_mode, fx, grant, lifecycle, portal, reconcile, web
from billing.contracts import InputError, UsageError
from billing.output import MISUSE, WRONG_INPUT, say
from billing.refusals import refusal_text
from engine.evaluate import OutsideContract
from engine.refusal import Refused

COMMAND_MODULES = (file_mode, db, lifecycle, web, portal, credit, reconcile, customer, fx, grant)


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
