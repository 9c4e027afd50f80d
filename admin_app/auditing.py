"""Recording what happens in the portal: the web side of store/audit.py.

    record("invoice.view", f"invoice:{invoice.id}", details={"customer": …, "period": …})
    db_session().commit()     # with the change it describes; a view commits the entry alone

The actor is the signed-in user's email (or the name given, for sign-in
attempts, or "anonymous"), the address is the request's, and the environment is
the app's.
"""

from __future__ import annotations

from flask import current_app, request
from flask_login import current_user

from admin_app.database import db_session
from audit import log as audit
from audit.log import FAILURE, SUCCESS, Actor, AuditEntry, refusal_details
from engine.refusal import Refusal


def actor(name: str | None = None) -> Actor:
    if name is None:
        name = current_user.email if current_user.is_authenticated else "anonymous"
    return Actor(printable(name)[:254], current_app.config["BILLING_ENVIRONMENT"].name, request.remote_addr)


def record(action: str, resource: str = "", *, outcome: str = SUCCESS, details: dict | None = None,
           actor_name: str | None = None) -> AuditEntry:
    return audit.record(db_session(), actor(actor_name), action, resource, outcome=outcome, details=details,
                        at=current_app.config["PORTAL_CLOCK"]())


def record_refusal(action: str, resource: str, refusal: Refusal) -> None:
    """A refused step, after its own changes were rolled back: recorded as a failure in its action's vocabulary
    (the command line's words for the same refusal), and committed."""
    db_session().rollback()
    record(action, resource, outcome=FAILURE, details=refusal_details(action, refusal.message, refusal.code))
    db_session().commit()


def printable(text: str) -> str:
    """Without control characters: a name someone typed must not forge lines in a log viewer (nor hold a NUL)."""
    return "".join(ch for ch in text if ch.isprintable())
