"""/api/v1/auth/token (OAuth2 password flow), and admin management of users and API keys."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import Field, StringConstraints

from app.api.deps import Allow, CtxDep, ReadSessionDep, SessionDep
from app.api.openapi import conflict
from app.api.pagination import DEFAULT_LIMIT, Cursor, Limit
from app.auth import service, signin
from app.auth.address import client_address
from app.auth.permissions import PERMISSIONS, ROLES
from app.auth.principal import Principal
from app.auth.secrets import issue_access_token
from app.context import AppContext
from app.errors import TooManyRequests, Unauthorized
from app.models import User
from app.schemas import Input, ObjectId, Output, Page, UtcDateTime

router = APIRouter(tags=["auth"])

Username = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[\w.@-]+$")]


class TokenOut(Output):
    access_token: str
    token_type: str = "bearer"
    expires_in: int


@router.post(
    "/auth/token",
    response_model=TokenOut,
    responses={
        401: {"description": "wrong username or password (or a locked account)"},
        429: {"description": "too many failed sign-ins, or too many in progress; see Retry-After"},
    },
)
async def issue_token(
    request: Request,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    ctx: CtxDep,
    response: Response,
) -> object:
    """Exchange a username and password for a short-lived bearer access token.

    Failed sign-ins are throttled per username and per address (429 with Retry-After), and
    an account with too many recent failures is locked for a while: it then answers like a
    wrong password (admins see `locked_until` on the user and may unlock it)."""
    address = client_address(request, ctx.settings.trusted_proxy_networks)
    throttle = ctx.login_throttle
    wait = throttle.retry_after(address, form.username)
    if wait > 0:
        ctx.audit.sign_in_throttled(address, form.username, wait)
        raise TooManyRequests(f"too many failed sign-ins; retry in {wait} s", retry_after_s=wait)
    throttle.started(address, form.username)
    try:
        result = await signin.sign_in(ctx, form.username, form.password)
    except BaseException:
        throttle.finished(address, form.username, "abandoned")
        raise
    throttle.finished(address, form.username, "succeeded" if result.succeeded else "failed")
    ctx.audit.sign_in(address, result, ctx.settings.access_token_ttl_s)
    if not result.succeeded or result.user_id is None or result.role is None:
        raise Unauthorized("wrong username or password", code="invalid_credentials")
    ttl = ctx.settings.access_token_ttl_s
    # Wall time, not the service clock: PyJWT checks iat/exp against the real clock.
    token = issue_access_token(
        result.user_id,
        result.role,
        ctx.settings.secret_key.get_secret_value(),
        ttl,
        dt.datetime.now(dt.UTC),
    )
    response.headers["Cache-Control"] = "no-store"
    return {"access_token": token, "token_type": "bearer", "expires_in": ttl}


class Me(Output):
    kind: str
    id: str
    name: str
    role: str
    permissions: list[str]
    company_id: str | None
    station_id: str | None


@router.get("/auth/me", response_model=Me)
async def me(principal: Annotated[Principal, Depends(Allow(*PERMISSIONS))]) -> object:
    """Who this token speaks for and what it may do (the console shows only those actions)."""
    return {
        "kind": principal.kind,
        "id": principal.id,
        "name": principal.name,
        "role": principal.role,
        "permissions": sorted(principal.permissions),
        "company_id": principal.company_id,
        "station_id": principal.station_id,
    }


class UserCreate(Input):
    username: Username
    password: Annotated[str, Field(min_length=8, max_length=256)]
    role: str = Field(json_schema_extra={"enum": list(ROLES)})
    company_id: ObjectId | None = None
    station_id: ObjectId | None = None


class UserOut(Output):
    id: str
    username: str
    role: str
    company_id: str | None
    station_id: str | None
    active: bool
    created_at: UtcDateTime
    # Sign-in lockout: when the lock lifts by itself (null when not locked), and the
    # failed sign-ins counted towards one (within the lockout window).
    locked_until: UtcDateTime | None
    failed_logins: int


def user_out(ctx: AppContext, user: User) -> dict[str, object]:
    now = ctx.clock.now()
    return {
        "id": user.id,
        "username": user.username,
        "role": user.role,
        "company_id": user.company_id,
        "station_id": user.station_id,
        "active": user.active,
        "created_at": user.created_at,
        "locked_until": signin.locked_until(user, now),
        "failed_logins": signin.recent_failures(user, now, ctx.settings.lockout_window_s),
    }


@router.post(
    "/users",
    status_code=201,
    response_model=UserOut,
    tags=["admin"],
    responses=conflict("`already_exists`: the username is taken"),
)
async def create_user(
    principal: Annotated[Principal, Depends(Allow("users:manage"))],
    body: UserCreate,
    session: SessionDep,
    ctx: CtxDep,
) -> object:
    return user_out(ctx, await service.create_user(session, ctx, principal, **body.model_dump()))


@router.get("/users", response_model=Page[UserOut], tags=["admin"])
async def list_users(
    principal: Annotated[Principal, Depends(Allow("users:manage"))],
    session: ReadSessionDep,
    ctx: CtxDep,
    locked: Annotated[bool | None, Query(description="only locked (or unlocked) accounts")] = None,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
) -> object:
    users, next_cursor = await service.list_users(
        session, ctx.clock.now(), locked=locked, cursor=cursor, limit=limit
    )
    return {"items": [user_out(ctx, user) for user in users], "next_cursor": next_cursor}


@router.get("/users/{user_id}", response_model=UserOut, tags=["admin"])
async def get_user(
    principal: Annotated[Principal, Depends(Allow("users:manage"))],
    user_id: str,
    session: ReadSessionDep,
    ctx: CtxDep,
) -> object:
    return user_out(ctx, await service.get_user(session, user_id))


@router.post("/users/{user_id}/unlock", response_model=UserOut, tags=["admin"])
async def unlock_user(
    principal: Annotated[Principal, Depends(Allow("users:manage"))],
    user_id: str,
    session: SessionDep,
    ctx: CtxDep,
) -> object:
    """Lift a sign-in lockout now (it also lifts by itself at `locked_until`) and forget
    the failed sign-ins counted towards one."""
    return user_out(ctx, await service.unlock_user(session, ctx, principal, user_id))


class ApiKeyCreate(Input):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    scopes: Annotated[list[str], Field(min_length=1, max_length=16)]
    station_id: ObjectId | None = None


class ApiKeyOut(Output):
    id: str
    name: str
    scopes: list[str]
    station_id: str | None
    created_at: UtcDateTime
    revoked_at: UtcDateTime | None


class ApiKeyCreated(ApiKeyOut):
    key: str


@router.post("/api-keys", status_code=201, response_model=ApiKeyCreated, tags=["admin"])
async def create_api_key(
    principal: Annotated[Principal, Depends(Allow("users:manage"))],
    body: ApiKeyCreate,
    session: SessionDep,
    ctx: CtxDep,
) -> object:
    """Create an integration key; `key` is shown once."""
    key, plaintext = await service.create_api_key(session, ctx, principal, **body.model_dump())
    return {**ApiKeyOut.model_validate(key).model_dump(), "key": plaintext}


@router.delete("/api-keys/{key_id}", status_code=204, tags=["admin"])
async def revoke_api_key(
    principal: Annotated[Principal, Depends(Allow("users:manage"))],
    key_id: str,
    session: SessionDep,
    ctx: CtxDep,
) -> None:
    await service.revoke_api_key(session, ctx, principal, key_id)
