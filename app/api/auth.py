"""/api/v1/auth/token (OAuth2 password flow), and admin management of users and API keys."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import Field, StringConstraints

from app.api.deps import Allow, CtxDep, ReadSessionDep, SessionDep
from app.auth import service
from app.auth.permissions import PERMISSIONS, ROLES
from app.auth.principal import Principal
from app.auth.secrets import issue_access_token
from app.errors import TooManyRequests, Unauthorized
from app.schemas import Input, ObjectId, Output, UtcDateTime

router = APIRouter(tags=["auth"])

Username = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[\w.@-]+$")]


class TokenOut(Output):
    access_token: str
    token_type: str = "bearer"
    expires_in: int


@router.post("/auth/token", response_model=TokenOut)
async def issue_token(
    request: Request,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    session: ReadSessionDep,
    ctx: CtxDep,
    response: Response,
) -> object:
    """Exchange a username and password for a short-lived bearer access token."""
    client = request.client.host if request.client else "unknown"
    wait = ctx.login_throttle.retry_after(client, form.username)
    if wait > 0:
        raise TooManyRequests(
            f"too many failed logins; retry in {int(wait) + 1} s",
            details={"retry_after_s": int(wait) + 1},
        )
    user = await service.login(session, form.username, form.password)
    if user is None:
        ctx.login_throttle.failed(client, form.username)
        raise Unauthorized("wrong username or password", code="invalid_credentials")
    ctx.login_throttle.succeeded(client, form.username)
    ttl = ctx.settings.access_token_ttl_s
    # Wall time, not the service clock: PyJWT checks iat/exp against the real clock.
    token = issue_access_token(
        user.id, user.role, ctx.settings.secret_key.get_secret_value(), ttl, dt.datetime.now(dt.UTC)
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


@router.post("/users", status_code=201, response_model=UserOut, tags=["admin"])
async def create_user(
    principal: Annotated[Principal, Depends(Allow("users:manage"))],
    body: UserCreate,
    session: SessionDep,
    ctx: CtxDep,
) -> object:
    return await service.create_user(session, ctx, principal, **body.model_dump())


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
