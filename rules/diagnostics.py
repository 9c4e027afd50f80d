"""Diagnostics as data: every problem the compiler finds, with where it is.

The compiler never stops at the first problem. Each pass returns diagnostics;
the command line and the web editor render them the same way, like a compiler:

    contract.pricing:12:5: error: minimum on 'standard' straddles cap ... [minimum-straddles-cap]
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from functools import lru_cache


@dataclass(frozen=True, order=True)
class Span:
    """A stretch of contract text; lines and columns count from 1."""

    line: int
    column: int
    end_line: int
    end_column: int

    @classmethod
    def of(cls, item) -> "Span":
        """The span of a lark Token or Tree (built with propagate_positions)."""
        meta = getattr(item, "meta", item)
        return cls(meta.line, meta.column, meta.end_line, meta.end_column)

    def text(self, source: str) -> str:
        """The contract text this span covers, on one line, without comments or runs of spaces."""
        lines = list(_lines(source)[self.line - 1 : self.end_line])
        if not lines:
            return ""
        lines[-1] = lines[-1][: self.end_column - 1]
        lines[0] = lines[0][self.column - 1 :]
        return " ".join(" ".join(_uncommented(line).split()) for line in lines).strip()


@lru_cache(maxsize=4)
def _lines(source: str) -> tuple[str, ...]:
    """The source's lines, split once: the compiler quotes a rule for every step of every site."""
    return tuple(source.splitlines())


def _uncommented(line: str) -> str:
    return line.split("#", 1)[0] if '"' not in line else line


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Diagnostic:
    code: str
    severity: Severity
    span: Span
    message: str

    def render(self, filename: str) -> str:
        return f"{filename}:{self.span.line}:{self.span.column}: {self.severity.value}: {self.message} [{self.code}]"

    def as_dict(self) -> dict:
        return {
            "code": self.code,
            "severity": self.severity.value,
            "line": self.span.line,
            "column": self.span.column,
            "end_line": self.span.end_line,
            "end_column": self.span.end_column,
            "message": self.message,
        }


def error(code: str, span: Span, message: str) -> Diagnostic:
    return Diagnostic(code, Severity.ERROR, span, message)


def warning(code: str, span: Span, message: str) -> Diagnostic:
    return Diagnostic(code, Severity.WARNING, span, message)


def later(a, b) -> Span:
    """Where a problem between two nodes is reported: at the later one."""
    return max(a.span, b.span)


def has_errors(diagnostics) -> bool:
    return any(d.severity is Severity.ERROR for d in diagnostics)


def ordered(diagnostics) -> list[Diagnostic]:
    """Unique diagnostics in the order of the text (a default seen through several sites is said once)."""
    return sorted(set(diagnostics), key=lambda d: (d.span, d.severity != Severity.ERROR, d.code, d.message))
