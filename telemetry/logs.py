"""Log lines as JSON, one per line, with nothing secret in them.

    install("us-prod", "/var/log/billing/billing.jsonl")   # the root logger writes JSON there (else stderr)
    log.info("request", extra={"route": "/login", "status": 302, "actor": "ana@example.com"})
    {"time": "2026-12-05T15:30:02.123Z", "level": "INFO", "logger": "billing.http", "message": "request",
     "environment": "us-prod", "request_id": "9f…", "route": "/login", "status": 302, "actor": "ana@example.com"}

A field whose name says it holds a secret (password, code, token, key, secret,
cookie, session, authorization…) is written "[redacted]", whatever its value; and
every string value, the message and a traceback's text included, is scanned for
what looks like a secret by its shape (an API key `bk_…`, an `Authorization:`
header's credentials, a database URL's password), which is cut to its public
part. `REQUEST_ID` holds the id of the request being served (admin_app sets it),
so that any line logged while serving it, an error's included, carries it;
`stamp_request_id`, a logger's filter, keeps it on the record when it is made.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sys
from contextvars import ContextVar
from logging.handlers import WatchedFileHandler

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
REDACTED = "[redacted]"
SECRET_NAME = re.compile(r"pass(word)?|secret|token|(^|_)(api_?)?key$|(^|(?<!status)(?<!exit)_)code$|totp|otp|"
                         r"recovery|cookie|session(_id)?$|authori[sz]ation|credential", re.IGNORECASE)
SECRET_SHAPES = (
    (re.compile(r"\b(Bearer|Basic|Token)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE), r"\1 " + REDACTED),
    (re.compile(r"\b(bk_[0-9a-f]{12})_[A-Za-z0-9_-]+"), r"\1_" + REDACTED),          # identity/apikeys.py
    (re.compile(r"(postgres(?:ql)?(?:\+\w+)?://[^:/@\s]+):[^@\s]+@"), r"\1:" + REDACTED + "@"),   # URL password
)
# The attributes every LogRecord has: anything else on a record came from `extra`, and is a field of the line.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


def stamp_request_id(record: logging.LogRecord) -> bool:
    """A logger's filter: the record keeps the request id of when it was made (a handler may format it later)."""
    record.request_id = REQUEST_ID.get()
    return True


def scrub(text: str) -> str:
    """`text` with whatever looks like a secret by its shape cut to its public part."""
    for shape, replacement in SECRET_SHAPES:
        text = shape.sub(replacement, text)
    return text


def redacted(value, name: str = ""):
    """The value as a log line may carry it: secret by its name → REDACTED; strings scrubbed; containers walked."""
    if name and SECRET_NAME.search(name):
        return REDACTED
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {str(key): redacted(item, str(key)) for key, item in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [redacted(item) for item in value]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return scrub(str(value))


class JsonFormatter(logging.Formatter):
    def __init__(self, environment: str):
        super().__init__()
        self.environment = environment

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": scrub(record.getMessage()),
            "environment": self.environment,
        }
        request_id = getattr(record, "request_id", None) or REQUEST_ID.get()
        if request_id:
            line["request_id"] = request_id
        for name, value in vars(record).items():
            if name not in _STANDARD and name not in line and name != "request_id":
                line[name] = redacted(value, name)
        if record.exc_info:
            line["traceback"] = scrub(self.formatException(record.exc_info))
        return json.dumps(line, ensure_ascii=False, default=str)


def install(environment: str, path: str | None = None, level: int = logging.INFO) -> logging.Handler:
    """The root logger's one handler: JSON lines appended to the file `path` (reopened when logrotate moves it),
    else written to standard error. Replaces the handlers it had, so that waitress's and Flask's lines come out
    as JSON too."""
    handler = WatchedFileHandler(path, encoding="utf-8") if path else logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(environment))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler
