"""/api/v1/units"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from app.api.deps import Allow, CtxDep, ReadSessionDep, SessionDep
from app.api.openapi import conflict
from app.api.pagination import DEFAULT_LIMIT, Cursor, Limit
from app.auth.principal import Principal
from app.models import PoliceUnit
from app.registry import service
from app.registry.schemas import UnitCreate, UnitKind, UnitOut, UnitStatus, UnitUpdate
from app.schemas import Page

router = APIRouter(prefix="/units", tags=["registry"])
CALL_SIGN_TAKEN = conflict("`already_exists`: another unit has this call_sign")


def as_seen_by(principal: Principal, unit: PoliceUnit) -> object:
    """Where police units are is for the police and dispatch side: a company manager sees
    the unit (call sign, station, status), never its position."""
    if principal.role != "company_manager":
        return unit
    return UnitOut.model_validate(unit).model_copy(update={"location": None, "located_at": None})


@router.post("", status_code=201, response_model=UnitOut, responses=CALL_SIGN_TAKEN)
async def create_unit(
    principal: Annotated[Principal, Depends(Allow("units:write"))],
    body: UnitCreate,
    session: SessionDep,
    ctx: CtxDep,
) -> object:
    return await service.create_unit(session, ctx, principal, body)


@router.get("", response_model=Page[UnitOut])
async def list_units(
    principal: Annotated[Principal, Depends(Allow("registry:read"))],
    session: ReadSessionDep,
    station_id: str | None = None,
    status: UnitStatus | None = None,
    kind: UnitKind | None = None,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
) -> object:
    items, next_cursor = await service.list_units(
        session, station_id=station_id, status=status, kind=kind, cursor=cursor, limit=limit
    )
    return {"items": [as_seen_by(principal, u) for u in items], "next_cursor": next_cursor}


@router.get("/{unit_id}", response_model=UnitOut)
async def get_unit(
    principal: Annotated[Principal, Depends(Allow("registry:read"))],
    unit_id: str,
    session: ReadSessionDep,
) -> object:
    return as_seen_by(principal, await service.get_or_404(session, PoliceUnit, unit_id, "unit"))


@router.patch("/{unit_id}", response_model=UnitOut, responses=CALL_SIGN_TAKEN)
async def update_unit(
    principal: Annotated[Principal, Depends(Allow("units:write"))],
    unit_id: str,
    body: UnitUpdate,
    session: SessionDep,
    ctx: CtxDep,
) -> object:
    return await service.update_unit(session, ctx, principal, unit_id, body)
