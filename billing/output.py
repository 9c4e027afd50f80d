"""Exit codes and output helpers shared by every command.

Money in a command's text output is written one way, by `money(amount, currency)`: engine.money.display in
the environment's locale (BILLING_ENV), as the portal and the documents write it (`£7,802.00`). JSON output
keeps plain decimal strings (`"7802.00"`): its format is the interface's.
"""

from __future__ import annotations

import sys
from decimal import Decimal
from pathlib import Path

from billing.contracts import UsageError

OK, WRONG_INPUT, MISUSE = 0, 1, 2


def say(message: str) -> None:
    print(message, file=sys.stderr)


def emit(content: str | bytes, output: str | None) -> None:
    """Write to standard output, or to `output`; a path that cannot be written is a usage error."""
    if output is None or output == "-":
        if isinstance(content, bytes):
            sys.stdout.buffer.write(content)
        else:
            sys.stdout.write(content)
        return
    try:
        Path(output).write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    except OSError as exc:
        raise UsageError(f"{output}: cannot write the output: {exc.strerror or exc}") from None


def locale() -> str:
    """The environment's locale (BILLING_ENV's settings), en_GB when no environment can be read."""
    from settings.environment import UnknownEnvironment, load

    try:
        return load().locale or "en_GB"
    except (UnknownEnvironment, OSError, ValueError):
        return "en_GB"


def money(amount, currency: str | None) -> str:
    """An amount as people read it (`£7,802.00`, `$1,000.00` in en_US); without a currency, the plain amount."""
    from engine.money import display, is_currency

    value = Decimal(str(amount))
    if not currency or not is_currency(currency):
        return f"{value:f}"
    return display(value, currency, locale())
