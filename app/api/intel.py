"""/api/v1/intel: the police triage queue of guards' intelligence reports."""

from __future__ import annotations

from typing import Annotated, get_args

from fastapi import APIRouter, Depends, Query

from app.api.deps import Allow, CtxDep, ReadSessionDep, SessionDep
from app.api.openapi import conflict
from app.api.pagination import DEFAULT_LIMIT, Cursor, Limit
from app.auth.principal import Principal
from app.errors import Unprocessable
from app.intel import service
from app.intel.schemas import IntelOut, IntelState, TriageRequest
from app.schemas import Page

router = APIRouter(prefix="/intel", tags=["intel"])
TRIAGED = conflict("`invalid_transition`: the report was triaged already")

READ = Allow("police:act", "incidents:read")

STATES: tuple[str, ...] = get_args(IntelState)


def _states(value: str | None) -> list[str]:
    if not value:
        return []
    states = [part.strip() for part in value.split(",")]
    unknown = [s for s in states if s not in STATES]
    if unknown:
        raise Unprocessable("state", f"{unknown} not among {list(STATES)}")
    return states


@router.get("", response_model=Page[IntelOut])
async def list_intel(
    principal: Annotated[Principal, Depends(READ)],
    session: ReadSessionDep,
    station_id: Annotated[str | None, Query(max_length=40)] = None,
    state: Annotated[str | None, Query(description="comma-separated states")] = None,
    guard_id: Annotated[str | None, Query(max_length=40)] = None,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
) -> object:
    """Guards' intel reports, newest first, by station (jurisdiction) and state."""
    items, next_cursor = await service.list_intel(
        session,
        principal,
        station_id=station_id,
        states=_states(state),
        guard_id=guard_id,
        cursor=cursor,
        limit=limit,
    )
    return {"items": items, "next_cursor": next_cursor}


@router.get("/{intel_id}", response_model=IntelOut)
async def get_intel(
    principal: Annotated[Principal, Depends(READ)], intel_id: str, session: ReadSessionDep
) -> object:
    return await service.get_intel(session, principal, intel_id)


@router.post("/{intel_id}/triage", response_model=IntelOut, responses=TRIAGED)
async def triage_intel(
    principal: Annotated[Principal, Depends(Allow("police:act"))],
    intel_id: str,
    body: TriageRequest,
    session: SessionDep,
    ctx: CtxDep,
) -> object:
    """Mark the report useful, not_useful or acted_on; the guard gets the note."""
    return await service.triage(session, ctx, principal, intel_id, body.state, body.note)
