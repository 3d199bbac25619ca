"""/api/v1/guards (registry and device tokens; /guards/nearby and /guards/positions read
the live index)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from app.api.deps import Allow, CtxDep, ReadSessionDep, SessionDep
from app.api.openapi import conflict
from app.api.pagination import DEFAULT_LIMIT, MAX_LIMIT, Cursor, Limit
from app.auth.principal import Principal
from app.dispatch import roster
from app.dispatch.guard_state import GuardState
from app.errors import Unprocessable
from app.geo.bbox import parse_bbox
from app.realtime import positions_view
from app.realtime.positions_view import Viewer, company_scope
from app.registry import service
from app.registry.schemas import GuardCreate, GuardOut, GuardStatus, GuardTokenOut, GuardUpdate
from app.schemas import LocationOut, Page, Skill, UtcDateTime

router = APIRouter(prefix="/guards", tags=["registry"])
BADGE_TAKEN = conflict("`already_exists`: another guard has this badge_no")


@router.post("", status_code=201, response_model=GuardOut, responses=BADGE_TAKEN)
async def create_guard(
    principal: Annotated[Principal, Depends(Allow("guards:write"))],
    body: GuardCreate,
    session: SessionDep,
    ctx: CtxDep,
) -> object:
    return await service.create_guard(session, ctx, principal, body)


@router.get("", response_model=Page[GuardOut])
async def list_guards(
    principal: Annotated[Principal, Depends(Allow("registry:read"))],
    session: ReadSessionDep,
    company_id: str | None = None,
    status: GuardStatus | None = None,
    skill: Skill | None = None,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
) -> object:
    items, next_cursor = await service.list_guards(
        session,
        principal,
        company_id=company_id,
        status=status,
        skill=skill,
        cursor=cursor,
        limit=limit,
    )
    return {"items": items, "next_cursor": next_cursor}


class NearbyGuard(BaseModel):
    guard: GuardOut
    distance_m: float
    eta_s: float
    position: LocationOut
    seen_at: UtcDateTime


@router.get("/nearby", response_model=Page[NearbyGuard])
async def nearby_guards(
    principal: Annotated[Principal, Depends(Allow("guards:locate"))],
    session: ReadSessionDep,
    ctx: CtxDep,
    lat: Annotated[float, Query(ge=-90, le=90, allow_inf_nan=False)],
    lon: Annotated[float, Query(ge=-180, le=180, allow_inf_nan=False)],
    radius_m: Annotated[float, Query(gt=0, le=50_000, allow_inf_nan=False)] = 3000.0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 10,
) -> object:
    """Dispatchable guards nearest first, from the live index (fresh, on duty, free)."""
    items = await roster.nearby(session, ctx, lat, lon, radius_m, limit)
    return {"items": items, "next_cursor": None}


class GuardPositionOut(BaseModel):
    guard_id: str
    name: str
    badge_no: str
    company_id: str
    position: LocationOut
    accuracy_m: float | None
    seen_at: str = Field(description="ISO 8601 UTC: when the server received the position")
    state: GuardState
    incident_id: str | None = Field(description="the incident of its offer or assignment")


class GuardPositionsOut(BaseModel):
    items: list[GuardPositionOut]
    at: str = Field(description="server time of the snapshot, ISO 8601 UTC")


# Declared before /{guard_id}, which would otherwise take "positions" for an id.
@router.get("/positions", response_model=GuardPositionsOut)
async def guard_positions(
    principal: Annotated[Principal, Depends(Allow("positions:read"))],
    session: ReadSessionDep,
    ctx: CtxDep,
    bbox: Annotated[
        str | None,
        Query(description="west,south,east,north (GeoJSON order); west > east crosses 180°"),
    ] = None,
) -> object:
    """Every on-duty guard in view with position and state, from the live index.

    Company managers see their own company's guards only. States: available, offered,
    en_route, on_scene, stale, offline, unavailable.
    """
    try:
        box = parse_bbox(bbox) if bbox is not None else None
    except ValueError as exc:
        raise Unprocessable("bbox", str(exc)) from None
    return await positions_view.snapshot(session, ctx, Viewer(box, company_scope(principal)))


@router.get("/{guard_id}", response_model=GuardOut)
async def get_guard(
    principal: Annotated[Principal, Depends(Allow("registry:read"))],
    guard_id: str,
    session: ReadSessionDep,
) -> object:
    return await service.get_guard(session, principal, guard_id)


@router.patch("/{guard_id}", response_model=GuardOut, responses=BADGE_TAKEN)
async def update_guard(
    principal: Annotated[Principal, Depends(Allow("guards:write"))],
    guard_id: str,
    body: GuardUpdate,
    session: SessionDep,
    ctx: CtxDep,
) -> object:
    return await service.update_guard(session, ctx, principal, guard_id, body)


@router.post("/{guard_id}/tokens", status_code=201, response_model=GuardTokenOut)
async def issue_guard_token(
    principal: Annotated[Principal, Depends(Allow("guards:tokens"))],
    guard_id: str,
    session: SessionDep,
    ctx: CtxDep,
) -> object:
    token, plaintext = await service.issue_guard_token(session, ctx, principal, guard_id)
    return {"token": plaintext, "token_id": token.id, "guard_id": token.guard_id}


@router.delete("/{guard_id}/tokens/{token_id}", status_code=204)
async def revoke_guard_token(
    principal: Annotated[Principal, Depends(Allow("guards:tokens"))],
    guard_id: str,
    token_id: str,
    session: SessionDep,
    ctx: CtxDep,
) -> None:
    await service.revoke_guard_token(session, ctx, principal, guard_id, token_id)
