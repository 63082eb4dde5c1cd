"""Accounts: sign in and out (browser sessions), the caller's account and API keys, and
accounts made by an admin."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from sqlalchemy import select

from kinetoscope.studio import auth, jobs
from kinetoscope.studio.db import ApiKey, User
from kinetoscope.studio.deps import (
    SESSION_COOKIE,
    AdminUser,
    CurrentUser,
    SessionDep,
    StudioDep,
)
from kinetoscope.studio.errors import NotFoundError, UnauthorizedError
from kinetoscope.studio.plans import plan_for
from kinetoscope.studio.schemas import (
    KeyCreate,
    KeyOut,
    Login,
    ModelOut,
    NewKey,
    NewUser,
    PlanOut,
    UserCreate,
    UserOut,
)

router = APIRouter(prefix="/api", tags=["users"])


def user_out(session: SessionDep, user: User) -> UserOut:
    plan = plan_for(user.tier)
    used = jobs.usage(session, user)
    return UserOut(
        id=user.id,
        name=user.name,
        tier=user.tier,
        admin=user.is_admin,
        plan=PlanOut(**plan.to_dict()),
        credits_used=used.credits_used,
        credits_left=max(0, plan.monthly_credits - used.credits_used),
        active_jobs=used.active_jobs,
    )


def key_out(row: ApiKey) -> KeyOut:
    return KeyOut(
        id=row.id,
        prefix=row.prefix,
        label=row.label,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
    )


@router.post("/auth/login", response_model=UserOut)
def login(
    body: Login, request: Request, response: Response, session: SessionDep, studio: StudioDep
) -> UserOut:
    """Sign in with a name and password: sets the session cookie. Failed sign-ins are limited
    per account and per client address (429 past the limit, with Retry-After)."""
    client = request.client.host if request.client is not None else "unknown"
    auth.begin_sign_in(studio.db, body.name, client, studio.settings)
    user = auth.authenticate(session, body.name, body.password)
    if user is None:
        raise UnauthorizedError("wrong user name or password")  # it stays a failure
    auth.sign_in_succeeded(studio.db, body.name)
    token = auth.open_session(session, user, studio.settings.session_days)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=studio.settings.session_days * 86400,
        httponly=True,
        samesite="strict",
    )
    return user_out(session, user)


@router.post("/auth/logout", status_code=204)
def logout(request: Request, response: Response, session: SessionDep) -> None:
    token = request.cookies.get(SESSION_COOKIE)
    if token is not None:
        auth.close_session(session, token)
    response.delete_cookie(SESSION_COOKIE)


@router.get("/users/me", response_model=UserOut)
def me(user: CurrentUser, session: SessionDep) -> UserOut:
    """The caller's account, plan and this month's usage."""
    return user_out(session, user)


@router.get("/users/me/keys", response_model=list[KeyOut])
def list_keys(user: CurrentUser, session: SessionDep) -> list[KeyOut]:
    rows = session.scalars(select(ApiKey).where(ApiKey.user_id == user.id).order_by(ApiKey.id))
    return [key_out(row) for row in rows]


@router.post("/users/me/keys", response_model=NewKey, status_code=201)
def create_key(body: KeyCreate, user: CurrentUser, session: SessionDep) -> NewKey:
    """A new API key (shown once)."""
    row, key = auth.issue_api_key(session, user, body.label)
    return NewKey(**key_out(row).model_dump(), key=key)


@router.delete("/users/me/keys/{key_id}", status_code=204)
def delete_key(key_id: int, user: CurrentUser, session: SessionDep) -> None:
    row = session.get(ApiKey, key_id)
    if row is None or row.user_id != user.id:
        raise NotFoundError(f"no API key {key_id}")
    session.delete(row)


@router.post("/users", response_model=NewUser, status_code=201)
def create_user(body: UserCreate, _admin: AdminUser, session: SessionDep) -> NewUser:
    """An admin makes an account; the answer holds its first API key."""
    user = auth.create_user(session, body.name, body.tier, body.password, body.admin)
    _, key = auth.issue_api_key(session, user, "first key")
    return NewUser(user=user_out(session, user), key=key)


@router.get("/model", response_model=ModelOut, tags=["model"])
def model(studio: StudioDep) -> ModelOut:
    """What the studio's model makes: the choices of the create form."""
    index = studio.index
    return ModelOut(
        fps=index.fps,
        short_side=index.short_side,
        sizes=list(range(64, 2 * index.short_side + 1, 16)),
        aspects=list(index.aspects),
        min_seconds=index.min_seconds,
        max_seconds=index.max_seconds,
        steps=index.steps,
        guidance=index.guidance,
    )
