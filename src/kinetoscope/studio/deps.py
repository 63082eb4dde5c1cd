"""What the routes depend on: the studio's parts, a database session, and the caller.

A caller is known by an API key (``Authorization: Bearer KEY``) or by a browser session
cookie (`SESSION_COOKIE`, set by ``POST /api/auth/login``; SameSite=Strict, so another site
cannot make the browser send it). A wrong key is an error, not an anonymous call.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from kinetoscope.pipeline import ModelIndex
from kinetoscope.studio import auth
from kinetoscope.studio.db import Database, User
from kinetoscope.studio.errors import ForbiddenError, UnauthorizedError
from kinetoscope.studio.queue import JobQueue
from kinetoscope.studio.settings import Settings
from kinetoscope.studio.storage import Storage

SESSION_COOKIE = "kinetoscope_session"


@dataclass(frozen=True)
class Studio:
    """The parts one app shares between requests."""

    settings: Settings
    db: Database
    storage: Storage
    queue: JobQueue
    index: ModelIndex  # what the model makes (its weights stay in the workers)


def get_studio(request: Request) -> Studio:
    return request.app.state.studio


def get_session(studio: Annotated[Studio, Depends(get_studio)]) -> Iterator[Session]:
    """A session committed when the route returns, before the answer is sent (its scope is
    the route function's): a client that reads right after a write sees it."""
    with studio.db.sessions() as session:
        yield session
        session.commit()


StudioDep = Annotated[Studio, Depends(get_studio)]
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def optional_user(request: Request, session: SessionDep) -> User | None:
    """The caller, or None for an anonymous one."""
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise UnauthorizedError("the Authorization header must be 'Bearer KEY'")
        user = auth.user_for_api_key(session, key.strip())
        if user is None:
            raise UnauthorizedError("unknown API key")
        return user
    token = request.cookies.get(SESSION_COOKIE)
    return None if token is None else auth.user_for_session(session, token)


def current_user(user: Annotated[User | None, Depends(optional_user)]) -> User:
    if user is None:
        raise UnauthorizedError(
            "sign in, or pass an API key as 'Authorization: Bearer KEY' "
            "(`kinetoscope users create` prints one)"
        )
    return user


def admin_user(user: Annotated[User, Depends(current_user)]) -> User:
    if not user.is_admin:
        raise ForbiddenError("only an admin may do that")
    return user


OptionalUser = Annotated[User | None, Depends(optional_user)]
CurrentUser = Annotated[User, Depends(current_user)]
AdminUser = Annotated[User, Depends(admin_user)]
