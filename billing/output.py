"""Exit codes and output helpers shared by every command."""

from __future__ import annotations

import sys
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
