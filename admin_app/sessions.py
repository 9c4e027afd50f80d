"""Who is signed in: flask-login over server-side sessions (store/signin.py).

Flask's signed session cookie holds a random token; the `user_sessions` row
with its hash says whose session it is, when it began and when it was last
used. A session ends at logout, after SESSION_IDLE_MINUTES without a request,
PERMANENT_SESSION_LIFETIME after sign-in (however busy), and when its user is
disabled or has MFA reset; a copy of the cookie is worth nothing after that.
Signing in clears the Flask session and starts a new token, so nothing from
before sign-in (a planted cookie included) carries over.

`authenticate` is what admin_app/access.py calls for every route that is not
public: the signed-in user (who has passed both steps), or a redirect to the
sign-in page.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import Flask, abort, current_app, flash, g, redirect, request, session, url_for
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user

from admin_app import auditing
from admin_app.database import db_session
from identity.accounts import User, UserSession, user_resource
from identity.signin import SessionLimits, end_session, open_session, resume_session

UTC = dt.timezone.utc
ENDED = {
    "idle": "Your session ended after {idle} minutes without activity. Please sign in again.",
    "lifetime": "Your session reached its time limit. Please sign in again.",
    "disabled": "Your session was ended by an administrator.",
}

login_manager = LoginManager()


@dataclass(frozen=True)
class SignedIn(UserMixin):
    """The user behind the current request, as views need it (never the ORM row: no secrets in templates)."""

    token: str
    session_id: int
    user_id: int
    email: str
    role: str
    customer: str | None

    def get_id(self) -> str:
        return self.token


def init_app(app: Flask) -> None:
    app.config.setdefault("PORTAL_CLOCK", lambda: dt.datetime.now(UTC))
    login_manager.session_protection = None   # the server-side session is the protection
    login_manager.init_app(app)
    app.extensions["billing.authenticate"] = authenticate


def now() -> dt.datetime:
    return current_app.config["PORTAL_CLOCK"]()


@login_manager.user_loader
def _load(token: str) -> SignedIn | None:
    config = current_app.config
    limits = SessionLimits(dt.timedelta(minutes=config["SESSION_IDLE_MINUTES"]), config["PERMANENT_SESSION_LIFETIME"])
    database = db_session()
    resumed = resume_session(database, token, limits, now())
    if resumed.ended_because:
        auditing.record("session.end", user_resource(resumed.user), actor_name=resumed.user.email,
                        details={"reason": resumed.ended_because})
        g.session_ended = resumed.ended_because
    database.commit()
    if resumed.row is None:
        return None
    user = resumed.user
    return SignedIn(token, resumed.row.id, user.id, user.email, user.role, user.customer)


def authenticate() -> SignedIn:
    if current_user.is_authenticated:
        return current_user._get_current_object()
    ended = g.pop("session_ended", None)
    if "_user_id" in session:   # a session that is over: drop it whole (a sign-in under way is kept)
        session.clear()
    if ended in ENDED:
        flash(ENDED[ended].format(idle=current_app.config["SESSION_IDLE_MINUTES"]), "notice")
    target = request.full_path.rstrip("?") if request.method == "GET" else None
    abort(redirect(url_for("auth.login", next=target)))


def sign_in(user: User) -> None:
    """Both steps passed: a new session, a new token, nothing kept from before."""
    token, row = open_session(db_session(), user, request.remote_addr, now())
    session.clear()
    session.permanent = True
    login_user(SignedIn(token, row.id, user.id, user.email, user.role, user.customer), fresh=True)


def sign_out(because: str = "logout") -> None:
    row = db_session().get(UserSession, current_user.session_id)
    end_session(db_session(), row, because, now())
    logout_user()
    session.clear()


def safe_next(target: str | None) -> str | None:
    """`target` if it is a path on this site (never another host: no open redirect), else None."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    return target
