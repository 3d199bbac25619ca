"""Supervisors' side of incidents and guards: commendations, complaints, points ledgers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from app.api.deps import Allow, CtxDep, ReadSessionDep, SessionDep
from app.api.openapi import conflict
from app.api.pagination import DEFAULT_LIMIT, Cursor, Limit
from app.api.reports import PeriodDep
from app.auth.principal import Principal
from app.registry.service import get_guard
from app.schemas import Page
from app.supervision import feedback, ledger
from app.supervision.schemas import FeedbackCreate, FeedbackOut, PointsPage

router = APIRouter(tags=["supervision"])
WRITE = Allow("supervision:write")
READ = Allow("reports:read")
NOT_ON_INCIDENT = conflict("`guard_not_on_incident`: the guard held no assignment on it")


def _feedback_route(kind: str, path: str, doc: str) -> None:
    """POST /incidents/{id}/<path>: the same body and rules for both kinds of feedback."""

    async def record(
        principal: Annotated[Principal, Depends(WRITE)],
        incident_id: str,
        body: FeedbackCreate,
        session: SessionDep,
        ctx: CtxDep,
    ) -> object:
        return await feedback.add(
            session,
            ctx.events,
            principal,
            incident_id,
            kind,
            body.guard_id,
            body.text,
            ctx.clock.now(),
        )

    record.__doc__ = doc
    router.add_api_route(
        f"/incidents/{{incident_id}}/{path}",
        record,
        methods=["POST"],
        name=f"record_{kind}",
        status_code=201,
        response_model=FeedbackOut,
        responses=NOT_ON_INCIDENT,
    )


_feedback_route(
    "commendation",
    "commendations",
    "The police commend a guard for their part in the incident (earns points).",
)
_feedback_route(
    "complaint",
    "complaints",
    "The police complain about a guard's conduct on the incident (costs points).",
)


@router.get("/incidents/{incident_id}/feedback", response_model=Page[FeedbackOut])
async def incident_feedback(
    principal: Annotated[Principal, Depends(READ)], incident_id: str, session: ReadSessionDep
) -> object:
    """The commendations and complaints recorded on the incident, oldest first."""
    items = await feedback.for_incident(session, principal, incident_id)
    return {"items": items, "next_cursor": None}


@router.get("/guards/{guard_id}/points", response_model=PointsPage)
async def guard_points(
    principal: Annotated[Principal, Depends(READ)],
    guard_id: str,
    session: ReadSessionDep,
    period: PeriodDep,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
) -> object:
    """The guard's recognition ledger in the period, newest first, with the all-time total
    and the period's."""
    guard = await get_guard(session, principal, guard_id)
    return await ledger.guard_points(
        session, guard.id, period, cursor, limit, station_id=principal.station_id
    )
