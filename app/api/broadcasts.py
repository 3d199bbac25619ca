"""/api/v1/broadcasts: a message to every on-duty guard inside a circle until it expires."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from app.api.deps import Allow, CtxDep, ReadSessionDep, SessionDep
from app.api.pagination import DEFAULT_LIMIT, Cursor, Limit
from app.auth.principal import Principal
from app.broadcasts import service
from app.broadcasts.schemas import BroadcastCreate, BroadcastOut
from app.schemas import Page

router = APIRouter(prefix="/broadcasts", tags=["broadcasts"])

READ = Allow("incidents:read", "police:act")


@router.post("", status_code=201, response_model=BroadcastOut)
async def create_broadcast(
    principal: Annotated[Principal, Depends(Allow("incidents:operate", "police:act"))],
    body: BroadcastCreate,
    response: Response,
    session: SessionDep,
    ctx: CtxDep,
) -> object:
    """Queue the message for every on-duty guard inside the circle now, and for each one
    who connects, comes on duty or moves inside before it expires (once per guard)."""
    broadcast = await service.create(session, ctx, principal, body)
    response.headers["Location"] = f"/api/v1/broadcasts/{broadcast.id}"
    await session.flush()
    tally = (await service.counts(session, [broadcast.id])).get(broadcast.id)
    return service.out(broadcast, tally, ctx.clock.now())


@router.get("", response_model=Page[BroadcastOut])
async def list_broadcasts(
    principal: Annotated[Principal, Depends(READ)],
    session: ReadSessionDep,
    ctx: CtxDep,
    station_id: str | None = None,
    active: bool | None = None,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
) -> object:
    """Broadcasts, newest first, with their delivered and acknowledged counts."""
    items, next_cursor = await service.list_broadcasts(
        session,
        ctx,
        principal,
        station_id=station_id,
        active=active,
        cursor=cursor,
        limit=limit,
    )
    return {"items": items, "next_cursor": next_cursor}


@router.get("/{broadcast_id}", response_model=BroadcastOut)
async def get_broadcast(
    principal: Annotated[Principal, Depends(READ)],
    broadcast_id: str,
    session: ReadSessionDep,
    ctx: CtxDep,
) -> object:
    """The broadcast with how many guards it was queued for, delivered to and acked by."""
    return await service.get(session, ctx, principal, broadcast_id)
