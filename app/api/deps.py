"""FastAPI dependencies: the app context, request-scoped transactions and the access rule."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.log import bind_request
from app.auth.cache import authenticate_token
from app.auth.principal import Principal
from app.context import AppContext
from app.errors import Forbidden, Unauthorized


def get_ctx(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


CtxDep = Annotated[AppContext, Depends(get_ctx)]


async def _write_session(ctx: CtxDep) -> AsyncIterator[AsyncSession]:
    async with ctx.db.transaction() as session:
        yield session


async def _read_session(ctx: CtxDep) -> AsyncIterator[AsyncSession]:
    async with ctx.db.transaction(readonly=True) as session:
        yield session


async def _long_read_session(ctx: CtxDep) -> AsyncIterator[AsyncSession]:
    async with ctx.db.long_read() as session:
        yield session


# scope="function": the transaction commits before the response is sent, so a 201
# means the row is durable.
SessionDep = Annotated[AsyncSession, Depends(_write_session, scope="function")]
ReadSessionDep = Annotated[AsyncSession, Depends(_read_session, scope="function")]
# Reports: seconds of aggregation, off the event loop's thread on SQLite (Database.long_read).
LongReadSessionDep = Annotated[AsyncSession, Depends(_long_read_session, scope="function")]


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def authenticate(ctx: AppContext, token: str | None) -> Principal:
    """The caller behind a bearer token; 401 when there is none or it is not valid."""
    if token is None:
        raise Unauthorized("missing bearer token", code="unauthorized")
    principal = await authenticate_token(ctx, token)
    if principal is None:
        raise Unauthorized("invalid, expired or revoked token", code="invalid_token")
    return principal


class Allow:
    """A route's access rule: the caller must hold one of `permissions`.

    Used as `principal: Annotated[Principal, Depends(Allow("incidents:read"))]`.
    Every route but /healthz, /readyz and the token endpoint declares one; the auth matrix
    test finds it on the route and fails for a route that has none.
    """

    def __init__(self, *permissions: str) -> None:
        self.permissions = frozenset(permissions)

    async def __call__(self, request: Request) -> Principal:
        ctx = get_ctx(request)
        principal = await authenticate(ctx, bearer_token(request.headers.get("authorization")))
        request.state.principal = principal  # a 403 is audited with its actor
        bind_request(request)  # audit records of this request carry the client's address
        if not self.permissions & principal.permissions:
            needed = " or ".join(sorted(self.permissions))
            raise Forbidden(f"role '{principal.role}' may not do this (needs {needed})")
        return principal
