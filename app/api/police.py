"""Escalation and the police side: /api/v1/incidents/{id}/escalate, /police/*, /instructions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from app.api.deps import Allow, CtxDep, SessionDep
from app.api.openapi import conflict
from app.auth.principal import Principal
from app.dispatch import operator, police
from app.incidents.schemas import (
    EscalateRequest,
    EscalationOut,
    InstructionIn,
    InstructionOut,
    PoliceAction,
)
from app.incidents.service import check_police_access

router = APIRouter(prefix="/incidents", tags=["police"])
ESCALATE = conflict(
    "`invalid_transition`: the incident has ended; `no_station`: no police station to send to"
)
POLICE_STEP = conflict(
    "`not_escalated`: not escalated to this station; "
    "`invalid_transition`: the escalation is past this step"
)
INSTRUCT = conflict(
    "`tier_not_allowed`: the incident does not allow the tier; `no_guards`: no guard to instruct"
)


@router.post("/{incident_id}/escalate", response_model=EscalationOut, responses=ESCALATE)
async def escalate(
    principal: Annotated[Principal, Depends(Allow("incidents:operate"))],
    incident_id: str,
    session: SessionDep,
    ctx: CtxDep,
    body: EscalateRequest | None = None,
) -> object:
    """Escalate to the police now; a repeat returns the same escalation (one per station)."""
    body = body or EscalateRequest()
    return await operator.escalate(session, ctx, principal, incident_id, body.note, body.station_id)


async def _step(
    action: str,
    principal: Principal,
    incident_id: str,
    body: PoliceAction | None,
    session: SessionDep,
    ctx: CtxDep,
) -> object:
    body = body or PoliceAction()
    await check_police_access(session, principal, incident_id)
    return await police.step(
        session,
        ctx,
        principal,
        incident_id,
        action,
        unit_id=body.unit_id,
        note=body.note,
        station_id=body.station_id,
    )


@router.post("/{incident_id}/police/ack", response_model=EscalationOut, responses=POLICE_STEP)
async def police_ack(
    principal: Annotated[Principal, Depends(Allow("police:act"))],
    incident_id: str,
    session: SessionDep,
    ctx: CtxDep,
    body: PoliceAction | None = None,
) -> object:
    """The station acknowledges the escalation, optionally naming the unit it sends."""
    return await _step("ack", principal, incident_id, body, session, ctx)


@router.post("/{incident_id}/police/arrived", response_model=EscalationOut, responses=POLICE_STEP)
async def police_arrived(
    principal: Annotated[Principal, Depends(Allow("police:act"))],
    incident_id: str,
    session: SessionDep,
    ctx: CtxDep,
    body: PoliceAction | None = None,
) -> object:
    return await _step("arrived", principal, incident_id, body, session, ctx)


@router.post("/{incident_id}/police/handover", response_model=EscalationOut, responses=POLICE_STEP)
async def police_handover(
    principal: Annotated[Principal, Depends(Allow("police:act"))],
    incident_id: str,
    session: SessionDep,
    ctx: CtxDep,
    body: PoliceAction | None = None,
) -> object:
    """Police take over: guards are stood down with a handover note; the incident resolves."""
    return await _step("handover", principal, incident_id, body, session, ctx)


@router.post(
    "/{incident_id}/instructions",
    status_code=201,
    response_model=InstructionOut,
    responses=INSTRUCT,
)
async def send_instruction(
    principal: Annotated[Principal, Depends(Allow("police:act", "incidents:operate"))],
    incident_id: str,
    body: InstructionIn,
    session: SessionDep,
    ctx: CtxDep,
) -> object:
    """An instruction to the guards on the incident, delivered like offers (acked, replayed).

    An optional `tier` names the risk tier it asks for; a tier the incident does not allow
    answers 409 `tier_not_allowed` and nothing is sent."""
    await check_police_access(session, principal, incident_id)
    guards = await police.instruct(
        session, ctx, principal, incident_id, body.text, body.guard_id, body.tier
    )
    return {"incident_id": incident_id, "guards": guards, "tier": body.tier}
