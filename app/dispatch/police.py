"""The police side of an escalation: acknowledge, arrive, take over; instruct the guards."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.principal import Principal
from app.dispatch import assignments, closing, decisions
from app.errors import Conflict, Forbidden, InvalidTransition, NotFound, Unprocessable
from app.incidents.lifecycle import OPEN
from app.models import Assignment, Escalation, Incident, PoliceUnit
from app.models.status import EscalationStatus, IncidentStatus
from app.realtime import outbox
from app.realtime.frames import incident_update_frame, instruction_frame

if TYPE_CHECKING:
    from app.context import AppContext

# action: (statuses it may start from, status it leads to, timestamp column)
_STEPS = {
    "ack": ({EscalationStatus.SENT}, EscalationStatus.ACKNOWLEDGED, "acknowledged_at"),
    "arrived": (
        {EscalationStatus.SENT, EscalationStatus.ACKNOWLEDGED},
        EscalationStatus.POLICE_ON_SCENE,
        "police_on_scene_at",
    ),
    "handover": (
        {EscalationStatus.POLICE_ON_SCENE},
        EscalationStatus.HANDED_OVER,
        "handed_over_at",
    ),
}
_NOTICE = {
    "ack": "police acknowledged",
    "arrived": "police on scene",
    "handover": "handed over to police",
}


async def _incident(session: AsyncSession, incident_id: str) -> Incident:
    incident = await session.get(Incident, incident_id, with_for_update=True)
    if incident is None:
        raise NotFound(f"incident '{incident_id}' not found")
    return incident


async def _escalation(
    session: AsyncSession, principal: Principal, incident: Incident, station_id: str | None
) -> Escalation:
    if principal.station_id is not None:
        if station_id is not None and station_id != principal.station_id:
            raise Forbidden(f"this credential is scoped to station '{principal.station_id}'")
        station_id = principal.station_id
    station_id = station_id or incident.station_id
    escalation = await session.scalar(
        select(Escalation).where(
            Escalation.incident_id == incident.id, Escalation.station_id == station_id
        )
    )
    if escalation is None:
        if principal.station_id is not None and incident.station_id != principal.station_id:
            raise Forbidden(f"incident '{incident.id}' belongs to another station")
        raise Conflict(
            f"incident '{incident.id}' has not been escalated to station '{station_id}'",
            code="not_escalated",
        )
    return escalation


async def step(
    session: AsyncSession,
    ctx: AppContext,
    principal: Principal,
    incident_id: str,
    action: str,
    *,
    unit_id: str | None = None,
    note: str | None = None,
    station_id: str | None = None,
) -> Escalation:
    """ack / arrived / handover on the incident's escalation to the caller's station."""
    incident = await _incident(session, incident_id)
    escalation = await _escalation(session, principal, incident, station_id)
    allowed, target, stamp = _STEPS[action]
    if escalation.status not in allowed:
        raise InvalidTransition(action, "escalation", escalation.status)
    unit = None
    if unit_id is not None:
        unit = await session.get(PoliceUnit, unit_id)
        if unit is None or unit.station_id != escalation.station_id:
            raise Unprocessable(
                "unit_id", f"no unit '{unit_id}' at station '{escalation.station_id}'"
            )
        escalation.unit_id = unit.id
        if action == "ack":
            await _set_unit_status(session, ctx, unit, "busy", principal.actor)
    now = ctx.clock.now()
    escalation.status = target
    escalation.updated_at = now
    setattr(escalation, stamp, now)
    if note:
        escalation.note = note
    await ctx.events.record(
        session,
        type=f"escalation.{target}",
        actor=principal.actor,
        at=now,
        incident_id=incident.id,
        station_id=escalation.station_id,
        data={
            "escalation_id": escalation.id,
            "station_id": escalation.station_id,
            "unit_id": escalation.unit_id,
            "call_sign": unit.call_sign if unit else None,
            "note": note,
        },
    )
    notice = (
        _NOTICE[action] + (f" ({unit.call_sign})" if unit else "") + (f": {note}" if note else "")
    )
    if action == "handover":
        await _hand_over(session, ctx, incident, notice, principal.actor)
        released = unit or await _unit(session, escalation.unit_id)
        if released is not None and released.status == "busy":
            await _set_unit_status(session, ctx, released, "available", principal.actor)
    else:
        for assignment in await _active(session, incident.id):
            await outbox.enqueue(
                session, ctx, assignment.guard_id, incident_update_frame(incident, notice)
            )
    return escalation


async def _hand_over(
    session: AsyncSession,
    ctx: AppContext,
    incident: Incident,
    notice: str,
    actor: str,
) -> None:
    """The police take over: the incident ends resolved (offers and guards stood down)."""
    if incident.status in OPEN:
        data = {"reason": "handed over to police"}
        await closing.end(
            session, ctx, incident, IncidentStatus.RESOLVED, actor, note=notice, data=data
        )
    else:
        await assignments.clear_all(session, ctx, incident, note=notice, actor=actor)


async def _unit(session: AsyncSession, unit_id: str | None) -> PoliceUnit | None:
    return None if unit_id is None else await session.get(PoliceUnit, unit_id)


async def _set_unit_status(
    session: AsyncSession, ctx: AppContext, unit: PoliceUnit, status: str, actor: str
) -> None:
    """Busy from acknowledgement until handover, then available again; both recorded."""
    now = ctx.clock.now()
    unit.status = status
    unit.updated_at = now
    await ctx.events.record(
        session,
        type="unit.updated",
        actor=actor,
        at=now,
        station_id=unit.station_id,
        data={
            "unit_id": unit.id,
            "status": status,
            "location": unit.location,
            "fields": ["status"],
        },
    )


async def _active(session: AsyncSession, incident_id: str) -> list[Assignment]:
    rows = await session.scalars(
        select(Assignment)
        .where(Assignment.incident_id == incident_id, Assignment.status.in_(assignments.ACTIVE))
        .order_by(Assignment.id)
    )
    return list(rows.all())


async def instruct(
    session: AsyncSession,
    ctx: AppContext,
    principal: Principal,
    incident_id: str,
    text: str,
    guard_id: str | None = None,
    tier: str | None = None,
) -> list[str]:
    """Send an instruction to the guards working the incident (durable, like offers).

    An instruction naming a risk tier the incident does not allow is refused (409
    `tier_not_allowed`) before anything is sent: guards are never asked beyond their powers.
    """
    incident = await _incident(session, incident_id)
    if principal.station_id is not None and incident.station_id != principal.station_id:
        await _escalation(session, principal, incident, None)  # allowed if escalated to us
    if not decisions.tier_allowed(tier, incident.allowed_tiers):
        raise Conflict(
            f"tier '{tier}' is not allowed for incident '{incident.id}' "
            f"({incident.category}, priority {incident.priority}); allowed: "
            + ", ".join(incident.allowed_tiers),
            code="tier_not_allowed",
            details={"tier": tier, "allowed_tiers": list(incident.allowed_tiers)},
        )
    targets = [
        a.guard_id for a in await _active(session, incident.id) if guard_id in (None, a.guard_id)
    ]
    if not targets:
        raise Conflict(
            f"no guard is working incident '{incident.id}'"
            + (f" as '{guard_id}'" if guard_id else ""),
            code="no_guards",
        )
    sender = principal.name
    for target in targets:
        frame = instruction_frame(incident.id, text, sender, tier, incident.exercise)
        await outbox.enqueue(session, ctx, target, frame)
    await ctx.events.record(
        session,
        type="incident.instruction",
        actor=principal.actor,
        at=ctx.clock.now(),
        incident_id=incident.id,
        station_id=incident.station_id,
        data={"text": text, "from": sender, "guards": targets, "tier": tier},
    )
    return targets
