"""Escalation to the police: when the policy says so, tell the responsible station.

One escalation per incident and station (a unique key); a repeated trigger adds an
`escalation.retriggered` event instead of a second escalation. Deadlines are durable
timers, so a restart between trigger and deadline still escalates on time.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import after_commit
from app.dispatch import decisions, timers
from app.dispatch.policy import Policy, policy_for
from app.errors import Conflict
from app.geo.distance import haversine_m
from app.ids import new_id
from app.incidents.lifecycle import OPEN
from app.models import Escalation, Incident, PoliceStation, PoliceUnit
from app.models.status import EscalationStatus, IncidentStatus

if TYPE_CHECKING:
    from app.context import AppContext

ON_SCENE_DEADLINE = "on_scene_deadline"
REASONS = ("policy", "no_guard", "backup_request", "operator")


def recommend_units(
    units: list[PoliceUnit], lat: float, lon: float, limit: int = 5
) -> list[dict[str, Any]]:
    """Available units, nearest first where a position is known, then by call sign."""
    ranked = []
    for unit in units:
        if unit.status != "available":
            continue
        distance = (
            haversine_m(lat, lon, unit.lat, unit.lon)
            if unit.lat is not None and unit.lon is not None
            else None
        )
        ranked.append((distance is None, distance or 0.0, unit.call_sign, unit, distance))
    ranked.sort(key=lambda item: item[:3])
    return [
        {
            "unit_id": unit.id,
            "call_sign": unit.call_sign,
            "kind": unit.kind,
            "distance_m": None if distance is None else round(distance, 1),
        }
        for *_, unit, distance in ranked[:limit]
    ]


async def escalate(
    session: AsyncSession,
    ctx: AppContext,
    incident: Incident,
    reason: str,
    actor: str,
    *,
    note: str | None = None,
    station_id: str | None = None,
    rule: str | None = None,
) -> Escalation:
    """Escalate to the responsible (or the given) station; idempotent per station."""
    station_id = station_id or incident.station_id
    if station_id is None:
        raise Conflict("no police station is configured to escalate to", code="no_station")
    now = ctx.clock.now()
    existing = await _existing(session, incident.id, station_id)
    if existing is not None:
        await _event(
            session,
            ctx,
            incident,
            existing,
            "escalation.retriggered",
            actor,
            reason=reason,
            rule=rule,
            note=note,
        )
        return existing
    station = await session.get(PoliceStation, station_id)
    if station is None:
        raise Conflict(f"no such station '{station_id}'", code="no_station")
    units = list(
        (await session.scalars(select(PoliceUnit).where(PoliceUnit.station_id == station_id))).all()
    )
    outside = station_id == incident.station_id and incident.station_match == "nearest"
    distance = None
    if outside:
        located = ctx.jurisdictions.locate(incident.lat, incident.lon)
        distance = round(located.distance_m, 1) if located else None
    values = {
        "id": new_id("esc"),
        "incident_id": incident.id,
        "station_id": station_id,
        "reason": reason,
        "status": EscalationStatus.SENT,
        "outside_jurisdiction": outside,
        "distance_to_jurisdiction_m": distance,
        "recommended_units": recommend_units(units, incident.lat, incident.lon),
        "note": note,
        "created_at": now,
        "updated_at": now,
    }
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    inserted = (
        await session.execute(
            insert(Escalation).values(values).on_conflict_do_nothing().returning(Escalation.id)
        )
    ).scalar_one_or_none()
    escalation = await _existing(session, incident.id, station_id)
    assert escalation is not None
    if inserted is None:
        await _event(
            session,
            ctx,
            incident,
            escalation,
            "escalation.retriggered",
            actor,
            reason=reason,
            rule=rule,
        )
        return escalation
    await _event(
        session,
        ctx,
        incident,
        escalation,
        "escalation.sent",
        actor,
        reason=reason,
        rule=rule,
        note=note,
        station_name=station.name,
        outside_jurisdiction=outside,
        distance_to_jurisdiction_m=distance,
        recommended_units=escalation.recommended_units,
        snapshot={
            "category": incident.category,
            "priority": incident.priority,
            "location": incident.location,
            "address": incident.address,
            "description": incident.description,
            "status": incident.status,
        },
    )
    waited = max(0.0, (now - incident.created_at).total_seconds())
    after_commit(session, lambda: ctx.metrics.received_to_escalated.observe(waited))
    return escalation


async def _existing(session: AsyncSession, incident_id: str, station_id: str) -> Escalation | None:
    return await session.scalar(
        select(Escalation).where(
            Escalation.incident_id == incident_id, Escalation.station_id == station_id
        )
    )


async def _event(
    session: AsyncSession,
    ctx: AppContext,
    incident: Incident,
    escalation: Escalation,
    kind: str,
    actor: str,
    **data: Any,
) -> None:
    await ctx.events.record(
        session,
        type=kind,
        actor=actor,
        at=ctx.clock.now(),
        incident_id=incident.id,
        station_id=escalation.station_id,
        data={
            "escalation_id": escalation.id,
            "station_id": escalation.station_id,
            "status": escalation.status,
            **data,
        },
    )


# Policy triggers ---------------------------------------------------------------------


def _policy(ctx: AppContext, incident: Incident) -> Policy:
    return policy_for(incident.category, incident.priority, ctx.settings.policy)


async def on_intake(session: AsyncSession, ctx: AppContext, incident: Incident) -> None:
    """Priority-1-like policies escalate at once; on-scene deadlines start ticking."""
    policy = _policy(ctx, incident)
    if policy.escalate_immediately and incident.station_id:
        # Beyond guard powers (armed robbery, weapons, hostage: see policy.py) says why.
        rule = "beyond_guard_powers" if policy.beyond_guard_powers else "immediate"
        await escalate(session, ctx, incident, "policy", "system:policy", rule=rule)
    if policy.on_scene_deadline_s is not None:
        due = incident.created_at + dt.timedelta(seconds=policy.on_scene_deadline_s)
        await timers.schedule(session, ctx, ON_SCENE_DEADLINE, incident.id, due)


async def before_wave(
    session: AsyncSession, ctx: AppContext, incident: Incident, wave: int
) -> None:
    """Escalate when the policy's number of waves passed with no guard accepting."""
    call = decisions.escalation_before_wave(_policy(ctx, incident), wave, incident.assigned_count)
    if call is not None and incident.station_id:
        await escalate(session, ctx, incident, call.reason, "system:policy", rule=call.rule)


async def on_unstaffed(session: AsyncSession, ctx: AppContext, incident: Incident) -> None:
    """Waves ran out: `no_guard`, unless the policy leaves the police to operators."""
    call = decisions.escalation_when_unstaffed(_policy(ctx, incident))
    if call is not None and incident.station_id:
        await escalate(session, ctx, incident, call.reason, "system:policy", rule=call.rule)


async def on_backup_request(
    session: AsyncSession, ctx: AppContext, incident: Incident, guard_id: str
) -> bool:
    """A guard on the scene asks for backup; escalates unless the policy leaves it to operators."""
    if not _policy(ctx, incident).escalate_on_backup or not incident.station_id:
        return False
    await escalate(session, ctx, incident, "backup_request", f"guard:{guard_id}")
    return True


async def on_scene_deadline(session: AsyncSession, ctx: AppContext, incident_id: str) -> None:
    """Timer handler: no guard on scene in time escalates (if still open and not on scene)."""
    incident = await session.get(Incident, incident_id, with_for_update=True)
    if (
        incident is None
        or incident.status not in OPEN
        or incident.status == IncidentStatus.ON_SCENE
    ):
        return
    if incident.station_id:
        await escalate(
            session, ctx, incident, "policy", "system:policy", rule="no_guard_on_scene_in_time"
        )
