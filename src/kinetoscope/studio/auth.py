"""Accounts: names, passwords (argon2id hashes), API keys and browser sessions.

API keys and session tokens are 32 random bytes, shown once; the database keeps only their
SHA-256 (enough for secrets of that strength, and fast to look up on every request).
Passwords are hashed with argon2id (``argon2-cffi``), made to be slow to guess, and password
sign-ins are limited: `begin_sign_in` refuses one when the account, or the client, has
failed `Settings.sign_in_failures` times within `Settings.sign_in_window_seconds` (counted in
the database, so the limit holds across restarts and processes).
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from kinetoscope.studio.db import ApiKey, BrowserSession, Database, SignInFailure, User, utcnow
from kinetoscope.studio.errors import ConflictError, StudioError
from kinetoscope.studio.plans import PLANS, TIERS
from kinetoscope.studio.settings import Settings

KEY_PREFIX = "ks_"
NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{1,39}")
MIN_PASSWORD = 8
MAX_PASSWORD = 200
KEY_USE_RESOLUTION = timedelta(minutes=1)  # how fresh an API key's last_used_at is kept
_hasher = PasswordHasher()


class AccountError(StudioError):
    """A user name, password or tier that cannot be used."""

    status = 422


class TooManySignInsError(StudioError):
    """Too many failed sign-ins of one account, or from one client, lately."""

    status = 429


def secret_hash(secret: str) -> str:
    """The SHA-256 of an API key or session token, as stored."""
    return hashlib.sha256(secret.encode()).hexdigest()


def hash_password(password: str) -> str:
    check_password(password)
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches; False for an account without a password."""
    if password_hash is None or len(password) > MAX_PASSWORD:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def check_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise AccountError(
            f"user name {name!r} must be 2 to 40 letters, digits, '_', '.' or '-' (not "
            "starting with '.' or '-')"
        )
    return name


def check_password(password: str) -> None:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise AccountError(f"a password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters long")


def create_user(
    session: Session,
    name: str,
    tier: str = "free",
    password: str | None = None,
    admin: bool = False,
) -> User:
    """A new account (a name no one has), checked; flushed so that it has an id."""
    check_name(name)
    if tier not in PLANS:
        raise AccountError(f"unknown tier {tier!r}; tiers: {', '.join(TIERS)}")
    if session.scalar(select(User).where(User.name == name)) is not None:
        raise ConflictError(f"the user name {name!r} is taken")
    user = User(
        name=name,
        tier=tier,
        is_admin=admin,
        password_hash=None if password is None else hash_password(password),
    )
    session.add(user)
    session.flush()
    return user


def issue_api_key(session: Session, user: User, label: str = "") -> tuple[ApiKey, str]:
    """A new API key for ``user``: its row and the key itself (shown once, never stored)."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(user_id=user.id, prefix=key[:10], key_hash=secret_hash(key), label=label[:80])
    session.add(row)
    session.flush()
    return row, key


def user_for_api_key(session: Session, key: str) -> User | None:
    row = session.scalar(select(ApiKey).where(ApiKey.key_hash == secret_hash(key)))
    if row is None:
        return None
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at > KEY_USE_RESOLUTION:
        row.last_used_at = now  # not on every request: a write per request would contend
    return session.get(User, row.user_id)


def open_session(session: Session, user: User, days: int) -> str:
    """A new browser session for ``user``; returns the token for the cookie."""
    token = secrets.token_urlsafe(32)
    expires = utcnow() + timedelta(days=days)
    session.add(BrowserSession(token_hash=secret_hash(token), user_id=user.id, expires_at=expires))
    return token


def user_for_session(session: Session, token: str) -> User | None:
    row = session.get(BrowserSession, secret_hash(token))
    if row is None or row.expires_at < utcnow():
        return None
    return session.get(User, row.user_id)


def close_session(session: Session, token: str) -> None:
    row = session.get(BrowserSession, secret_hash(token))
    if row is not None:
        session.delete(row)


def authenticate(session: Session, name: str, password: str) -> User | None:
    """The user with this name and password, or None (the same for either mistake)."""
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        _hasher.hash("a password to spend the same time as a real check")
        return None
    return user if verify_password(user.password_hash, password) else None


def begin_sign_in(db: Database, name: str, client: str, settings: Settings) -> None:
    """Record a password sign-in of ``name`` from the address ``client`` before the password
    is checked, or refuse it with a `TooManySignInsError` (429, and it is not recorded) when
    the account or the client already has ``settings.sign_in_failures`` failures in the last
    ``settings.sign_in_window_seconds``. A recorded sign-in counts as failed until
    `sign_in_succeeded`; it is stored before anything is counted, so sign-ins made at the
    same moment see each other and the limit holds for them too."""
    now = utcnow()
    window = timedelta(seconds=settings.sign_in_window_seconds)
    client = client[:64]
    # 1. stored first (and the failures now out of the window forgotten)
    with db.session() as session:
        session.execute(delete(SignInFailure).where(SignInFailure.created_at < now - window))
        attempt = SignInFailure(name=name, client=client, created_at=now)
        session.add(attempt)
        session.flush()
        attempt_id = attempt.id
    # 2. then the failures before it, per account and per client
    refusal: TooManySignInsError | None = None
    with db.session() as session:
        for column, value, whose in (
            (SignInFailure.name, name, "of this account"),
            (SignInFailure.client, client, "from your address"),
        ):
            failed = session.scalars(
                select(SignInFailure.created_at)
                .where(column == value, SignInFailure.created_at >= now - window)
                .where(SignInFailure.id != attempt_id)
                .order_by(SignInFailure.created_at)
            ).all()
            if len(failed) >= settings.sign_in_failures:
                # free again once enough of them are older than the window
                free_at = failed[len(failed) - settings.sign_in_failures] + window
                refusal = _too_many(whose, free_at, now, settings)
                break
        if refusal is not None:
            session.execute(delete(SignInFailure).where(SignInFailure.id == attempt_id))
    if refusal is not None:
        raise refusal


def sign_in_succeeded(db: Database, name: str) -> None:
    """A right password: the account's failed sign-ins are forgotten (this one's included)."""
    with db.session() as session:
        session.execute(delete(SignInFailure).where(SignInFailure.name == name))


def _too_many(
    whose: str, free_at: datetime, now: datetime, settings: Settings
) -> TooManySignInsError:
    seconds = max(1, math.ceil((free_at - now).total_seconds()))
    minutes = math.ceil(seconds / 60)
    return TooManySignInsError(
        f"too many failed sign-ins {whose}: {settings.sign_in_failures} in "
        f"{settings.sign_in_window_seconds / 60:g} minutes; try again in {minutes} "
        f"minute{'s' if minutes != 1 else ''}",
        headers={"Retry-After": str(seconds)},
    )


def create_account(
    settings: Settings, name: str, tier: str, password: str | None, admin: bool
) -> str:
    """Make an account in the data folder's database (``kinetoscope users create``);
    returns its first API key."""
    from kinetoscope.studio.storage import Storage

    Storage(settings.data_dir).prepare()
    database = Database(settings.db_url)
    try:
        database.upgrade()
        with database.session() as session:
            user = create_user(session, name, tier, password, admin)
            _, key = issue_api_key(session, user, "first key")
    finally:
        database.dispose()
    return key
