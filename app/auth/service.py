"""Console users and integration API keys: creation, lockout release, revocation (signing
in is app/auth/signin.py)."""

from __future__ import annotations

import asyncio
import datetime as dt

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import signin
from app.auth.permissions import INTEGRATION_SCOPES, ROLES
from app.auth.principal import Principal
from app.auth.secrets import hash_password, hash_secret, new_bearer_secret
from app.context import AppContext
from app.db import after_commit
from app.errors import Conflict, NotFound, Unprocessable
from app.ids import new_id
from app.models import ApiKey, PoliceStation, SecurityCompany, User
from app.paging import paginate

MIN_PASSWORD_LENGTH = 8


async def create_user(
    session: AsyncSession,
    ctx: AppContext,
    principal: Principal,
    *,
    username: str,
    password: str,
    role: str,
    company_id: str | None = None,
    station_id: str | None = None,
) -> User:
    if role not in ROLES:
        raise Unprocessable("role", f"must be one of {list(ROLES)}")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise Unprocessable("password", f"must be at least {MIN_PASSWORD_LENGTH} characters")
    if role == "company_manager" and company_id is None:
        raise Unprocessable("company_id", "is required for a company_manager")
    if company_id is not None and await session.get(SecurityCompany, company_id) is None:
        raise Unprocessable("company_id", f"no such company '{company_id}'")
    if station_id is not None and await session.get(PoliceStation, station_id) is None:
        raise Unprocessable("station_id", f"no such station '{station_id}'")
    user = User(
        id=new_id("usr"),
        username=username,
        # argon2 takes ~50 ms of CPU by design: off the event loop.
        password_hash=await asyncio.to_thread(hash_password, password),
        role=role,
        company_id=company_id,
        station_id=station_id,
        active=True,
        created_at=ctx.clock.now(),
    )
    session.add(user)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(f"user '{username}' already exists", code="already_exists") from None
    await ctx.events.record(
        session,
        type="user.created",
        actor=principal.actor,
        at=user.created_at,
        data={"user_id": user.id, "username": username, "role": role},
    )
    return user


async def get_user(session: AsyncSession, user_id: str) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound(f"user '{user_id}' not found")
    return user


async def list_users(
    session: AsyncSession,
    now: dt.datetime,
    *,
    locked: bool | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[User], str | None]:
    stmt = select(User)
    if locked is True:
        stmt = stmt.where(User.locked_until > now)
    elif locked is False:
        stmt = stmt.where(or_(User.locked_until.is_(None), User.locked_until <= now))
    return await paginate(session, stmt, User.id, cursor, limit)


async def unlock_user(
    session: AsyncSession, ctx: AppContext, principal: Principal, user_id: str
) -> User:
    """Lift a sign-in lockout (and forget the failures counted towards one) before it
    lifts by itself; nothing to do is not an error."""
    user = await get_user(session, user_id)
    was_locked = signin.locked_until(user, ctx.clock.now()) is not None
    if signin.clear_lock(user):
        username = user.username
        after_commit(session, lambda: ctx.login_throttle.forget_username(username))
        await ctx.events.record(
            session,
            type="user.unlocked",
            actor=principal.actor,
            at=ctx.clock.now(),
            data={"user_id": user.id, "username": username, "was_locked": was_locked},
        )
    return user


async def create_api_key(
    session: AsyncSession,
    ctx: AppContext,
    principal: Principal,
    *,
    name: str,
    scopes: list[str],
    station_id: str | None = None,
) -> tuple[ApiKey, str]:
    """A new integration key; the plaintext `key_….secret` is returned once, stored hashed."""
    unknown = sorted(set(scopes) - INTEGRATION_SCOPES)
    if unknown or not scopes:
        raise Unprocessable(
            "scopes", f"unknown scopes {unknown}; choose from {sorted(INTEGRATION_SCOPES)}"
        )
    if station_id is not None and await session.get(PoliceStation, station_id) is None:
        raise Unprocessable("station_id", f"no such station '{station_id}'")
    secret = new_bearer_secret()
    key = ApiKey(
        id=new_id("key"),
        name=name,
        secret_hash=hash_secret(secret),
        scopes=sorted(set(scopes)),
        station_id=station_id,
        created_at=ctx.clock.now(),
    )
    session.add(key)
    await session.flush()
    await ctx.events.record(
        session,
        type="api_key.created",
        actor=principal.actor,
        at=key.created_at,
        station_id=station_id,
        data={"api_key_id": key.id, "name": name, "scopes": key.scopes},
    )
    return key, f"{key.id}.{secret}"


async def revoke_api_key(
    session: AsyncSession, ctx: AppContext, principal: Principal, key_id: str
) -> ApiKey:
    key = await session.get(ApiKey, key_id)
    if key is None:
        raise NotFound(f"api key '{key_id}' not found")
    if key.revoked_at is None:
        key.revoked_at = ctx.clock.now()
        after_commit(session, ctx.principals.clear)
        await ctx.events.record(
            session,
            type="api_key.revoked",
            actor=principal.actor,
            at=key.revoked_at,
            data={"api_key_id": key.id},
        )
    return key
