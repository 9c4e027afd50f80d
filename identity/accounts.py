"""Portal accounts: users with one role each, and the changes an administrator makes to them.

    who = Actor("cli:root", environment="test")
    user, password = add_user(session, who, "ana@example.com", "customer_finance", customer="acme-health")
    disable_user(session, who, user)       # also ends the user's sessions
    unlock_user(session, who, user)        # lifts a lockout after repeated failures
    reset_mfa(session, who, user)          # the next sign-in enrols a new authenticator
    password = reset_password(session, who, user)   # a temporary one: changed at the next sign-in
    change_role(session, who, user, "finance")

Every change is recorded in the audit log by the function that makes it, so the
command line and the portal record the same things. A `customer_finance` user
is bound to one customer (a contract id); no other role is. Users are versioned
by sqlalchemy-continuum (table users_version), without their secrets: the
password hash, the TOTP secret and the sign-in counters stay out of the history.
Sign-in itself (passwords, TOTP, lockout, sessions) is store/signin.py.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, String, delete, false, func, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column
from werkzeug.security import generate_password_hash

from audit.log import Actor, record
from engine.refusal import Refusal, Refused
from ledger.models import Contract
from storage.base import Base, RowId

UTC = dt.timezone.utc
ROLES = ("admin", "deal_desk", "finance", "customer_finance")
CUSTOMER_ROLE = "customer_finance"
PASSWORD_METHOD = "scrypt"       # werkzeug's scrypt (n=2**15, r=8, p=1), salted
MIN_PASSWORD_LENGTH = 12
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


class User(Base):
    __tablename__ = "users"
    __versioned__ = {"exclude": ["password_hash", "totp_secret", "last_totp_step", "failed_attempts",
                                 "locked_until", "must_change_password"]}
    __table_args__ = (
        CheckConstraint(f"role IN {ROLES}", name="users_role"),
        CheckConstraint(f"(role = '{CUSTOMER_ROLE}') = (customer IS NOT NULL)", name="users_customer_role"),
    )

    id: Mapped[int] = mapped_column(RowId, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)    # kept in lower case
    password_hash: Mapped[str]
    role: Mapped[str] = mapped_column(String(20))
    customer: Mapped[str | None] = mapped_column(ForeignKey("contracts.id"))
    totp_secret: Mapped[str | None] = mapped_column(String(64))     # set at enrolment's start, None after a reset
    enrolled: Mapped[bool] = mapped_column(default=False)           # a TOTP code confirmed the secret
    last_totp_step: Mapped[int | None] = mapped_column(BigInteger)  # the last accepted code's time step
    failed_attempts: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[dt.datetime | None]
    disabled: Mapped[bool] = mapped_column(default=False)
    must_change_password: Mapped[bool] = mapped_column(default=False, server_default=false())   # an admin's reset
    created_at: Mapped[dt.datetime]

    @property
    def name(self) -> str:
        return self.email

    def locked(self, now: dt.datetime) -> bool:
        return self.locked_until is not None and self.locked_until > now


class RecoveryCode(Base):
    """A one-time code that stands in for a TOTP code; only a salted hash is kept."""

    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(RowId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    salt: Mapped[str] = mapped_column(String(32))
    code_hash: Mapped[str] = mapped_column(String(64))
    used_at: Mapped[dt.datetime | None]


class UserSession(Base):
    """A signed-in browser session; the cookie holds a token whose SHA-256 is `token_hash`."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(RowId, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime]
    last_seen_at: Mapped[dt.datetime]
    ended_at: Mapped[dt.datetime | None]
    ended_because: Mapped[str | None] = mapped_column(String(20))   # logout | idle | lifetime | disabled | …
    ip: Mapped[str | None] = mapped_column(String(45))


def _refused(code: str, field: str, message: str) -> Refused:
    """The change cannot be made; `field` names the form field the reason belongs to."""
    return Refused(Refusal(code, message, field=field))


def normalised_email(email: str) -> str:
    return email.strip().lower()


def hash_password(password: str) -> str:
    return generate_password_hash(password, method=PASSWORD_METHOD)


def new_password() -> str:
    """A password to hand over once: 16 characters from a 54-character alphabet (about 92 bits)."""
    alphabet = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "".join(secrets.choice(alphabet) for _ in range(16))


def find_user(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(User.email == normalised_email(email)))


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.email)))


def user_resource(user: User) -> str:
    return f"user:{user.email}"


def check_role(session: Session, role: str, customer: str | None) -> str | None:
    """The customer to store for `role`; Refused when the pair is not allowed."""
    if role not in ROLES:
        raise _refused("unknown-role", "role", f"the role must be one of {', '.join(ROLES)}")
    if role != CUSTOMER_ROLE:
        if customer:
            raise _refused("customer-not-allowed", "customer",
                       "only a customer finance user sees one customer: leave the customer empty for this role")
        return None
    if not customer:
        raise _refused("customer-needed", "customer",
                       "choose the customer whose invoices and usage this customer finance user may see")
    if session.get(Contract, customer) is None:
        raise _refused("unknown-customer", "customer", f"there is no contract '{customer}'")
    return customer


def check_password_rules(password: str, email: str | None = None) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise _refused("password-too-short", "password", f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if email and password.strip().lower() in (email.lower(), email.lower().split("@")[0]):
        raise _refused("password-is-email", "password", "a password must not be your email address")


def add_user(session: Session, who: Actor, email: str, role: str, *, customer: str | None = None,
             password: str | None = None, now: dt.datetime | None = None) -> tuple[User, str]:
    """The new user and its password (the one given, or a new one to hand over once)."""
    email = normalised_email(email)
    if not EMAIL.fullmatch(email) or len(email) > 254:
        raise _refused("not-an-email", "email", "this is not an email address")
    if find_user(session, email) is not None:
        raise _refused("email-taken", "email", "a user with this email already exists")
    customer = check_role(session, role, customer)
    password = password if password is not None else new_password()
    check_password_rules(password, email)
    user = User(email=email, password_hash=hash_password(password), role=role, customer=customer,
                enrolled=False, failed_attempts=0, disabled=False, created_at=now or dt.datetime.now(UTC))
    session.add(user)
    session.flush()
    record(session, who, "user.add", user_resource(user), details={"role": role, "customer": customer}, at=now)
    return user, password


def disable_user(session: Session, who: Actor, user: User, *, now: dt.datetime | None = None) -> None:
    _keep_an_admin(session, user, "disable")
    user.disabled = True
    end_sessions(session, user, "disabled", now=now)
    record(session, who, "user.disable", user_resource(user), at=now)


def enable_user(session: Session, who: Actor, user: User, *, now: dt.datetime | None = None) -> None:
    user.disabled = False
    record(session, who, "user.enable", user_resource(user), at=now)


def unlock_user(session: Session, who: Actor, user: User, *, now: dt.datetime | None = None) -> None:
    was = user.locked_until
    user.failed_attempts = 0
    user.locked_until = None
    record(session, who, "user.unlock", user_resource(user),
           details={"locked_until": was.isoformat() if was else None}, at=now)


def reset_mfa(session: Session, who: Actor, user: User, *, now: dt.datetime | None = None) -> None:
    """Forgets the authenticator and the recovery codes; the next sign-in enrols again."""
    user.totp_secret = None
    user.enrolled = False
    user.last_totp_step = None
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    end_sessions(session, user, "mfa reset", now=now)
    record(session, who, "user.reset_mfa", user_resource(user), at=now)


def reset_password(session: Session, who: Actor, user: User, password: str | None = None, *,
                   now: dt.datetime | None = None) -> str:
    """A temporary password (the one given, or a new one to hand over once) that the user must change at the next
    sign-in, before anything else; the user's sessions end."""
    typed = password is not None
    password = password if typed else new_password()
    check_password_rules(password, user.email)
    user.password_hash = hash_password(password)
    user.must_change_password = True
    ended = end_sessions(session, user, "password reset", now=now)
    record(session, who, "user.reset_password", user_resource(user),
           details={"password": "typed by the admin" if typed else "generated", "sessions_ended": ended}, at=now)
    return password


def change_role(session: Session, who: Actor, user: User, role: str, customer: str | None = None, *,
                now: dt.datetime | None = None) -> None:
    customer = check_role(session, role, customer)
    if role != "admin":
        _keep_an_admin(session, user, "take the admin role from")
    before = {"role": user.role, "customer": user.customer}
    user.role, user.customer = role, customer
    record(session, who, "user.role", user_resource(user),
           details={"before": before, "after": {"role": role, "customer": customer}}, at=now)


def end_sessions(session: Session, user: User, because: str, *, now: dt.datetime | None = None) -> int:
    result = session.execute(
        update(UserSession).where(UserSession.user_id == user.id, UserSession.ended_at.is_(None))
        .values(ended_at=now or dt.datetime.now(UTC), ended_because=because)
    )
    return result.rowcount


def _keep_an_admin(session: Session, user: User, verb: str) -> None:
    """Nobody may lock everyone out of user administration."""
    if user.role != "admin" or user.disabled:
        return
    others = session.scalar(select(func.count()).select_from(User).where(
        User.role == "admin", User.disabled.is_(False), User.id != user.id))
    if not others:
        raise _refused("last-admin", "role", f"cannot {verb} the last active admin")
