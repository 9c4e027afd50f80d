"""Signing in to the portal: a password, then a TOTP code (or a one-time recovery code), then a session.

    step = check_password(session, who, "ana@example.com", password, policy, now)
    if isinstance(step, Refusal): …          # step.field, step.message: what the form says, and where
    secret = start_enrolment(session, user)   # first sign-in: show it (and its QR code), then
    codes = finish_enrolment(session, who, user, "492039", policy, now)   # the recovery codes, shown once
    step = check_second_factor(session, who, user, "492039", policy, now)
    token, row = open_session(session, user, who.ip, now)
    ended = change_password(session, who, user, current, new, policy, now, keep=row)   # other sessions ended
    user.must_change_password                 # after an admin's reset_password: the portal asks for a change first

Every attempt, good or bad, is recorded in the audit log. The password step
answers alike whether the email names an account or not (OWASP Authentication
Cheat Sheet), and no stranger can lock an account out:

- an address (the client's, behind the trusted proxy) with
  `Lockout.address_max_failures` failed attempts within `Lockout.minutes` is
  refused before any password is checked, whichever accounts it tried;
- an email with `Lockout.max_failures` failed passwords within `Lockout.minutes`
  slows down, known or not (the count is the audit log's, by resource): each
  further attempt waits `Lockout.delay_seconds`, doubled per failure, at most
  `Lockout.minutes`, from the last failure. A delay is not a lock: it runs out;
- a wrong TOTP or recovery code, which only someone with the password can send,
  counts against the account: after `Lockout.max_failures` in a row it is locked
  for `Lockout.minutes` (an admin may unlock it sooner). A lock is said only
  after the right password.

A TOTP code (RFC 6238, 30-second steps) is accepted for the step before, the
step of, or the step after `now`, and only if its step is later than the last
accepted one: a code is good once, and an older code never comes back. The
check and the new step are one conditional UPDATE, so two requests racing
with the same code cannot both succeed.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, replace

import pyotp
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash

from audit.log import FAILURE, Actor, AuditEntry, record
from engine.refusal import Refusal, Refused
from identity import accounts
from identity.accounts import RecoveryCode, User, UserSession, find_user, hash_password, user_resource
from telemetry.metrics import LOCKOUTS, SIGN_IN_FAILED, count_on_commit

UTC = dt.timezone.utc
RECOVERY_CODES = 10
RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"   # 31 letters and digits that cannot be misread
TOTP_CODE = re.compile(r"\d{6}")
SIGN_IN_FAILURES = ("login.password", "login.mfa", "mfa.enrol")

WRONG_CREDENTIALS = "The email or password is not right."
LOCKED = "This account is locked after repeated failed attempts. Try again later, or ask an administrator."
DISABLED = "This account is disabled. Ask an administrator."
TOO_MANY = "Too many failed attempts from your address. Wait a few minutes, then try again."
SLOW_DOWN = "Too many failed attempts for this email address. Wait a minute or two, then try again."
WRONG_CODE = "This code is not right. Check the time on your device, or use a recovery code."
USED_CODE = "This code was already used. Wait for the next one."
WRONG_CURRENT_PASSWORD = "This is not your current password."
SAME_PASSWORD = "The new password must differ from the current one."



@dataclass(frozen=True)
class Lockout:
    max_failures: int = 5
    minutes: int = 15
    address_max_failures: int = 20
    delay_seconds: int = 30     # the wait after `max_failures` failed passwords for one email; doubles per failure


@dataclass(frozen=True)
class SessionLimits:
    idle: dt.timedelta
    lifetime: dt.timedelta


@dataclass(frozen=True)
class Resumed:
    row: UserSession | None
    user: User | None
    ended_because: str | None = None    # set when the token named a session that is over now


def check_password(session: Session, who: Actor, email: str, password: str, policy: Lockout,
                   now: dt.datetime) -> User | Refusal:
    """The first step: the user whose password this is, or why not."""
    if _address_failures(session, who.ip, policy, now) >= policy.address_max_failures:
        count_on_commit(session, SIGN_IN_FAILED.labels("login.password", "too many attempts").inc)
        record(session, who, "login.password", f"user:{email}", outcome=FAILURE,
               details={"reason": "too many failures from this address"}, at=now)
        return Refusal("too-many-attempts", TOO_MANY, field="password")
    wait = _email_wait(session, email, policy, now)
    if wait:   # not a password attempt: not counted, so hammering does not lengthen the wait
        count_on_commit(session, SIGN_IN_FAILED.labels("login.password", "slowed down").inc)
        record(session, who, "login.throttled", f"user:{email}", outcome=FAILURE,
               details={"wait_seconds": round(wait.total_seconds())}, at=now)
        return Refusal("slow-down", SLOW_DOWN, field="password")
    user = find_user(session, email)
    if user is None:
        check_password_hash(_unknown_user_hash(accounts.PASSWORD_METHOD), password)   # as long as a real check
    if user is None or not check_password_hash(user.password_hash, password):
        reason = "unknown email" if user is None else "wrong password"
        count_on_commit(session, SIGN_IN_FAILED.labels("login.password", reason).inc)
        record(session, who, "login.password", f"user:{email}", outcome=FAILURE, details={"reason": reason}, at=now)
        return Refusal("wrong-credentials", WRONG_CREDENTIALS, field="password")
    if user.locked(now):   # by wrong codes, after this same password: told to whoever knows it only
        count_on_commit(session, SIGN_IN_FAILED.labels("login.password", "locked").inc)
        record(session, who, "login.password", user_resource(user), outcome=FAILURE,
               details={"reason": "locked", "locked_until": user.locked_until.isoformat()}, at=now)
        return Refusal("locked", LOCKED, field="email")
    if user.disabled:
        count_on_commit(session, SIGN_IN_FAILED.labels("login.password", "disabled").inc)
        record(session, who, "login.password", user_resource(user), outcome=FAILURE,
               details={"reason": "disabled"}, at=now)
        return Refusal("disabled", DISABLED, field="email")
    record(session, who, "login.password", user_resource(user), at=now)
    return user


def start_enrolment(session: Session, user: User) -> str:
    """The secret to enrol (kept until a code confirms it, so a reload shows the same QR code)."""
    if user.totp_secret is None or user.enrolled:
        user.totp_secret = pyotp.random_base32()   # 32 base32 characters: 160 bits
        user.enrolled = False
        user.last_totp_step = None
    return user.totp_secret


def provisioning_uri(user: User, issuer: str) -> str:
    return pyotp.TOTP(user.totp_secret).provisioning_uri(name=user.email, issuer_name=issuer)


def finish_enrolment(session: Session, who: Actor, user: User, code: str, policy: Lockout,
                     now: dt.datetime) -> list[str] | Refusal:
    """The recovery codes (to show once) once `code` proves the authenticator holds the secret."""
    refused = _refuse_locked_or_disabled(session, who, user, "mfa.enrol", now)
    if refused:
        return refused
    problem = _accept_totp(session, user, code.strip(), now)
    if problem:
        return _failed(session, who, user, "mfa.enrol", problem, policy, now,
                       _wrong_code(problem))
    user.enrolled = True
    codes = new_recovery_codes(session, user)
    _signed_in(user)
    record(session, who, "mfa.enrol", user_resource(user), details={"recovery_codes": len(codes)}, at=now)
    return codes


def check_second_factor(session: Session, who: Actor, user: User, code: str, policy: Lockout,
                        now: dt.datetime) -> str | Refusal:
    """The method that passed ("totp" or "recovery code"), or why not."""
    refused = _refuse_locked_or_disabled(session, who, user, "login.mfa", now)
    if refused:
        return refused
    code = "".join(code.split())
    if TOTP_CODE.fullmatch(code):
        method, problem = "totp", _accept_totp(session, user, code, now)
    else:
        method, problem = "recovery code", None if _use_recovery_code(session, user, code, now) else \
            "wrong or used recovery code"
    if problem:
        return _failed(session, who, user, "login.mfa", problem, policy, now,
                       _wrong_code(problem))
    _signed_in(user)
    details = {"method": method}
    if method == "recovery code":
        details["recovery_codes_left"] = recovery_codes_left(session, user)
    record(session, who, "login.mfa", user_resource(user), details=details, at=now)
    return method


def change_password(session: Session, who: Actor, user: User, current: str, new: str, policy: Lockout,
                    now: dt.datetime, *, keep: UserSession | None = None) -> int | Refusal:
    """A signed-in user's own change: the number of their other sessions it ended, or why not.

    The new password is checked first (that changes nothing); a wrong current password then counts
    against the account like a failed sign-in, and the lock it may bring ends every session, this one
    included: whoever holds a session that keeps guessing is not taken for its user."""
    try:
        accounts.check_password_rules(new, user.email)
    except Refused as exc:
        return replace(exc.refusal, field="new_password")
    if user.locked(now):
        count_on_commit(session, SIGN_IN_FAILED.labels("user.password", "locked").inc)
        record(session, who, "user.password", user_resource(user), outcome=FAILURE,
               details={"reason": "locked", "locked_until": user.locked_until.isoformat()}, at=now)
        return Refusal("locked", LOCKED, field="current_password")
    if not check_password_hash(user.password_hash, current):
        refused = _failed(session, who, user, "user.password", "wrong current password", policy, now,
                          Refusal("wrong-current-password", WRONG_CURRENT_PASSWORD, field="current_password"))
        if user.locked(now):
            accounts.end_sessions(session, user, "locked", now=now)
        return refused
    if new == current:
        return Refusal("same-password", SAME_PASSWORD, field="new_password")
    user.password_hash = hash_password(new)
    forced = user.must_change_password
    user.must_change_password = False
    _signed_in(user)
    others = update(UserSession).where(UserSession.user_id == user.id, UserSession.ended_at.is_(None))
    if keep is not None:
        others = others.where(UserSession.id != keep.id)
    ended = session.execute(others.values(ended_at=now, ended_because="password change")
                            .execution_options(synchronize_session=False)).rowcount
    record(session, who, "user.password", user_resource(user),
           details={"other_sessions_ended": ended, **({"after_reset": True} if forced else {})}, at=now)
    return ended


def new_recovery_codes(session: Session, user: User) -> list[str]:
    """Replaces the user's recovery codes; the plain codes are returned once and never stored."""
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = []
    for _ in range(RECOVERY_CODES):   # 12 characters of 31: about 59 bits each
        plain = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(12))
        salt = secrets.token_hex(16)
        session.add(RecoveryCode(user_id=user.id, salt=salt, code_hash=_code_hash(salt, plain)))
        codes.append("-".join((plain[:4], plain[4:8], plain[8:])))
    session.flush()
    return codes


def recovery_codes_left(session: Session, user: User) -> int:
    return session.scalar(select(func.count()).select_from(RecoveryCode).where(
        RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None)))


def open_session(session: Session, user: User, ip: str | None, now: dt.datetime) -> tuple[str, UserSession]:
    """A new session for a user who passed both steps; the token goes into the cookie, its hash into the row."""
    token = secrets.token_urlsafe(32)
    row = UserSession(token_hash=_token_hash(token), user_id=user.id, created_at=now, last_seen_at=now,
                      ip=(ip or "")[:45] or None)
    session.add(row)
    session.flush()
    return token, row


def resume_session(session: Session, token: str, limits: SessionLimits, now: dt.datetime) -> Resumed:
    """The live session of `token` and its user, marked seen; a session past its limits is ended here."""
    row = session.scalar(select(UserSession).where(UserSession.token_hash == _token_hash(token)))
    if row is None or row.ended_at is not None:
        return Resumed(None, None)
    user = session.get(User, row.user_id)
    because = None
    if user is None or user.disabled or not user.enrolled:
        because = "disabled"
    elif now - row.created_at > limits.lifetime:
        because = "lifetime"
    elif now - row.last_seen_at > limits.idle:
        because = "idle"
    if because:
        end_session(session, row, because, now)
        return Resumed(None, user, because)
    if now - row.last_seen_at > dt.timedelta(minutes=1):   # enough for an idle limit counted in minutes
        row.last_seen_at = now
    return Resumed(row, user)


def end_session(session: Session, row: UserSession, because: str, now: dt.datetime) -> None:
    row.ended_at = now
    row.ended_because = because


@functools.cache
def _unknown_user_hash(method: str) -> str:
    return hash_password(secrets.token_hex(16))


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _code_hash(salt: str, plain: str) -> str:
    return hashlib.sha256(f"{salt}:{plain}".encode()).hexdigest()


def _accept_totp(session: Session, user: User, code: str, now: dt.datetime) -> str | None:
    """None when the code is accepted (and its step recorded), else why not."""
    if user.totp_secret is None or not TOTP_CODE.fullmatch(code):
        return "wrong code"
    totp = pyotp.TOTP(user.totp_secret)
    current = totp.timecode(now)
    step = next((s for s in (current - 1, current, current + 1)
                 if hmac.compare_digest(totp.generate_otp(s), code)), None)
    if step is None:
        return "wrong code"
    accepted = session.execute(
        update(User).where(User.id == user.id, or_(User.last_totp_step.is_(None), User.last_totp_step < step))
        .values(last_totp_step=step).execution_options(synchronize_session=False)
    ).rowcount
    if accepted != 1:
        return "code already used"
    user.last_totp_step = step
    return None


def _use_recovery_code(session: Session, user: User, code: str, now: dt.datetime) -> bool:
    plain = code.lower().replace("-", "")
    unused = session.scalars(select(RecoveryCode).where(RecoveryCode.user_id == user.id,
                                                        RecoveryCode.used_at.is_(None)))
    for row in unused:
        if hmac.compare_digest(row.code_hash, _code_hash(row.salt, plain)):
            return session.execute(
                update(RecoveryCode).where(RecoveryCode.id == row.id, RecoveryCode.used_at.is_(None))
                .values(used_at=now).execution_options(synchronize_session=False)
            ).rowcount == 1
    return False


def _refuse_locked_or_disabled(session: Session, who: Actor, user: User, action: str,
                               now: dt.datetime) -> Refusal | None:
    if user.disabled or user.locked(now):
        reason = "disabled" if user.disabled else "locked"
        count_on_commit(session, SIGN_IN_FAILED.labels(action, reason).inc)
        record(session, who, action, user_resource(user), outcome=FAILURE, details={"reason": reason}, at=now)
        return Refusal("disabled", DISABLED, field="code") if user.disabled else \
            Refusal("locked", LOCKED, field="code")
    return None


def _wrong_code(problem: str) -> Refusal:
    if problem == "code already used":
        return Refusal("used-code", USED_CODE, field="code")
    return Refusal("wrong-code", WRONG_CODE, field="code")


def _failed(session: Session, who: Actor, user: User, action: str, reason: str, policy: Lockout,
            now: dt.datetime, refused: Refusal) -> Refusal:
    """Counts the failure against the account, locks it at the limit, records both."""
    if user.locked_until is not None and user.locked_until <= now:   # a lock that ran out starts a new count
        user.failed_attempts, user.locked_until = 0, None
    user.failed_attempts += 1
    count_on_commit(session, SIGN_IN_FAILED.labels(action, reason).inc)
    record(session, who, action, user_resource(user), outcome=FAILURE,
           details={"reason": reason, "failed_attempts": user.failed_attempts}, at=now)
    if user.failed_attempts >= policy.max_failures:
        user.locked_until = now + dt.timedelta(minutes=policy.minutes)
        count_on_commit(session, LOCKOUTS.inc)
        record(session, who, "login.locked", user_resource(user), outcome=FAILURE,
               details={"failed_attempts": user.failed_attempts, "locked_until": user.locked_until.isoformat()},
               at=now)
        return Refusal("locked", LOCKED, field=refused.field)
    return refused


def _signed_in(user: User) -> None:
    user.failed_attempts, user.locked_until = 0, None


def _email_wait(session: Session, email: str, policy: Lockout, now: dt.datetime) -> dt.timedelta | None:
    """How long the email must still wait before its password is checked again: the same for an account and an
    unknown email, from the failed passwords the audit log holds for it."""
    failures, last = session.execute(select(func.count(), func.max(AuditEntry.at)).where(
        AuditEntry.resource == f"user:{email}", AuditEntry.outcome == FAILURE,
        AuditEntry.action == "login.password", AuditEntry.at >= now - dt.timedelta(minutes=policy.minutes))).one()
    if failures < policy.max_failures:
        return None
    delay = min(dt.timedelta(seconds=policy.delay_seconds * 2 ** (failures - policy.max_failures)),
                dt.timedelta(minutes=policy.minutes))
    return last + delay - now if last + delay > now else None


def _address_failures(session: Session, ip: str | None, policy: Lockout, now: dt.datetime) -> int:
    if not ip:
        return 0
    return session.scalar(select(func.count()).select_from(AuditEntry).where(
        AuditEntry.ip == ip, AuditEntry.outcome == FAILURE, AuditEntry.action.in_(SIGN_IN_FAILURES),
        AuditEntry.at >= now - dt.timedelta(minutes=policy.minutes)))
