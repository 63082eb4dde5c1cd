"""Accounts: names, passwords (argon2id hashes), API keys and browser sessions.

API keys and session tokens are 32 random bytes, shown once; the database keeps only their
SHA-256 (enough for secrets of that strength, and fast to look up on every request).
Passwords are hashed with argon2id (``argon2-cffi``), made to be slow to guess.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from kinetoscope.studio.db import ApiKey, BrowserSession, User, utcnow
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


def create_account(
    settings: Settings, name: str, tier: str, password: str | None, admin: bool
) -> str:
    """Make an account in the data folder's database (``kinetoscope users create``);
    returns its first API key."""
    from kinetoscope.studio.db import Database
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
