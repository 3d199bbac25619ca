"""/api/v1/stations"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from app.api.deps import Allow, CtxDep, ReadSessionDep, SessionDep
from app.api.openapi import conflict
from app.api.pagination import DEFAULT_LIMIT, Cursor, Limit
from app.auth.principal import Principal
from app.models import PoliceStation
from app.registry import service
from app.registry.schemas import StationCreate, StationOut, StationUpdate
from app.schemas import Page

router = APIRouter(prefix="/stations", tags=["registry"])
NAME_TAKEN = conflict("`already_exists`: another station has this name")


@router.post("", status_code=201, response_model=StationOut, responses=NAME_TAKEN)
async def create_station(
    principal: Annotated[Principal, Depends(Allow("stations:write"))],
    body: StationCreate,
    session: SessionDep,
    ctx: CtxDep,
) -> object:
    return await service.create_station(session, ctx, principal, body)


@router.get("", response_model=Page[StationOut])
async def list_stations(
    principal: Annotated[Principal, Depends(Allow("registry:read"))],
    session: ReadSessionDep,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
) -> object:
    items, next_cursor = await service.list_stations(session, cursor, limit)
    return {"items": items, "next_cursor": next_cursor}


@router.get("/{station_id}", response_model=StationOut)
async def get_station(
    principal: Annotated[Principal, Depends(Allow("registry:read"))],
    station_id: str,
    session: ReadSessionDep,
) -> object:
    return await service.get_or_404(session, PoliceStation, station_id, "station")


@router.patch("/{station_id}", response_model=StationOut, responses=NAME_TAKEN)
async def update_station(
    principal: Annotated[Principal, Depends(Allow("stations:write"))],
    station_id: str,
    body: StationUpdate,
    session: SessionDep,
    ctx: CtxDep,
) -> object:
    return await service.update_station(session, ctx, principal, station_id, body)
