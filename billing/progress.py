"""A progress bar on standard error, drawn only when standard error is a terminal.

    progress = Progress.for_file("may.jsonl")     # None when stderr is not a terminal
    progress.update(line_number, events_done)     # redraws at most a few times a second
    progress.close()
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

WIDTH = 30
EVERY_SECONDS = 0.2


def count_lines(path: str) -> int:
    lines = 0
    with open(path, "rb") as stream:
        while block := stream.read(1 << 20):
            lines += block.count(b"\n")
    return max(lines, 1)


class Progress:
    def __init__(self, name: str, lines: int):
        self.name, self.lines = name, lines
        self.started = self.drawn = time.monotonic()

    @classmethod
    def for_file(cls, path: str) -> "Progress | None":
        if not sys.stderr.isatty():
            return None
        return cls(Path(path).name, count_lines(path))

    def update(self, line: int, events: int) -> None:
        now = time.monotonic()
        if now - self.drawn < EVERY_SECONDS:
            return
        self.drawn = now
        share = min(line / self.lines, 1.0)
        bar = "#" * int(share * WIDTH)
        rate = events / max(now - self.started, 1e-9)
        sys.stderr.write(f"\r{self.name} [{bar:<{WIDTH}}] {share:4.0%}  {events:,} events  {rate:,.0f}/s ")
        sys.stderr.flush()

    def close(self) -> None:
        sys.stderr.write("\r\033[K")
        sys.stderr.flush()
