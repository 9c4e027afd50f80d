"""One JSON log line per command: which, in which environment, by whom, its exit status and how long it took.

    started = command_log.start(args)      # installs the JSON log (telemetry/logs.py) where it goes
    command_log.finished(args, status, started)

The lines go to the environment's log file (BILLING_LOG_FILE) when there is one;
without it only `billing serve` writes them, to standard error (a service's log,
for journald); the other commands write none, their standard error being the
person's at the terminal. The line names the command, never its arguments' values:
one may be a password or a key.
"""

from __future__ import annotations

import logging
import time

from settings.environment import UnknownEnvironment, load
from telemetry.logs import install

log = logging.getLogger("billing.command")
log.addHandler(logging.NullHandler())   # without the JSON log installed, nothing: not Python's last-resort stderr
QUIET = ("weasyprint", "fontTools")   # a line per step of every PDF: their warnings are enough


def start(args) -> float:
    global _installed
    try:
        env = load()
    except UnknownEnvironment:   # the command says so itself, as a misuse
        return time.perf_counter()
    if env.log_file or args.command == "serve":
        install(env.name, env.log_file)
        _installed = True
        for name in QUIET:
            logging.getLogger(name).setLevel(logging.WARNING)
    return time.perf_counter()


_installed = False   # whether start() installed the JSON log: without it there is no line to write


def finished(args, status: int, started: float) -> None:
    if not _installed:   # nothing to write, and nothing to load (the file mode never loads the database's code)
        return
    from ledger.contracts import author_name

    log.info("command", extra={"command": _name(args), "status": status,
                               "actor": f"cli:{author_name()}",   # as the audit log names it
                               "latency_ms": round((time.perf_counter() - started) * 1000, 3)})


def failed(args) -> None:
    """An unexpected error: its traceback goes to the log (the command line shows it too, as Python does)."""
    log.exception("command failed", extra={"command": _name(args)})


def _name(args) -> str:
    """`apikey create`, `user add`, `db upgrade`, `serve`: the command and its subcommand, as typed."""
    words = [args.command] + [value for name, value in sorted(vars(args).items())
                              if name.endswith("_command") and isinstance(value, str)]
    return " ".join(words)
