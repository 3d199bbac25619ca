"""Guards working an incident: en_route → on_scene → cleared, driving the incident's status."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.dispatch import closing, engagement, escalation
from app.errors import Conflict, InvalidTransition, NotFound
from app.ids import new_id
from app.incidents.lifecycle import OPEN, staffing_status
from app.incidents.service import change_status
from app.models import Assignment, Incident
from app.models.status import AssignmentStatus, EngagementKind, IncidentStatus
from app.realtime import outbox
from app.realtime.frames import assignment_frame, incident_update_frame

if TYPE_CHECKING:
    from app.context import AppContext

ACTIVE = (AssignmentStatus.EN_ROUTE, AssignmentStatus.ON_SCENE)
_NEXT: dict[str, set[str]] = {
    AssignmentStatus.EN_ROUTE: {AssignmentStatus.ON_SCENE, AssignmentStatus.CLEARED},
    AssignmentStatus.ON_SCENE: {AssignmentStatus.CLEARED},
    AssignmentStatus.CLEARED: set(),
}


async def take_seat(session: AsyncSession, incident: Incident, *, grow: bool = False) -> bool:
    """Count one more guard on the incident if a seat is free (or `grow` adds one).

    The conditional UPDATE is the arbiter when several guards accept at once.
    """
    stmt = update(Incident).where(Incident.id == incident.id, Incident.status.in_(OPEN))
    # A guard on it means it is staffed again, even if the waves had run out before.
    if grow:
        values = {
            "unstaffed": False,
            "assigned_count": Incident.assigned_count + 1,
            "required_guards": func.max(Incident.required_guards, Incident.assigned_count + 1)
            if session.get_bind().dialect.name == "sqlite"
            else func.greatest(Incident.required_guards, Incident.assigned_count + 1),
        }
    else:
        stmt = stmt.where(Incident.assigned_count < Incident.required_guards)
        values = {"unstaffed": False, "assigned_count": Incident.assigned_count + 1}
    result = await session.execute(
        stmt.values(**values).execution_options(synchronize_session=False)
    )
    await session.refresh(incident, ["assigned_count", "required_guards", "unstaffed"])
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def create(
    session: AsyncSession,
    ctx: AppContext,
    incident: Incident,
    guard_id: str,
    *,
    source: str,
    actor: str,
    offer_id: str | None = None,
    status: str = AssignmentStatus.EN_ROUTE,
    note: str | None = None,
) -> Assignment:
    """Record the assignment (the seat is already taken), tell the guard, update the incident."""
    now = ctx.clock.now()
    assignment = Assignment(
        id=new_id("asg"),
        incident_id=incident.id,
        guard_id=guard_id,
        offer_id=offer_id,
        source=source,
        status=status,
        assigned_at=now,
        on_scene_at=now if status == AssignmentStatus.ON_SCENE else None,
        note=note,
    )
    session.add(assignment)
    if offer_id is not None:
        await engagement.convert_to_assignment(
            session, ctx, guard_id, offer_id, assignment.id, incident.id
        )
    elif not await engagement.claim(
        session, ctx, guard_id, incident.id, EngagementKind.ASSIGNMENT, assignment.id, now
    ):
        raise Conflict(f"guard '{guard_id}' is engaged on another incident", code="guard_busy")
    if status != AssignmentStatus.EN_ROUTE:  # a guard's own report starts on scene
        engagement.show(session, ctx, guard_id, status, incident.id)
    await ctx.events.record(
        session,
        type="incident.assigned",
        actor=actor,
        at=now,
        incident_id=incident.id,
        station_id=incident.station_id,
        data={
            "assignment_id": assignment.id,
            "guard_id": guard_id,
            "source": source,
            "offer_id": offer_id,
            "status": status,
            "assigned": incident.assigned_count,
            "required": incident.required_guards,
        },
    )
    await sync_status(session, ctx, incident, actor)
    await outbox.enqueue(session, ctx, guard_id, assignment_frame(assignment, incident))
    return assignment


async def update_status(
    session: AsyncSession,
    ctx: AppContext,
    guard_id: str,
    assignment_id: str,
    status: str,
    note: str | None,
) -> Assignment:
    """A guard reports progress. Repeating the current status is a harmless no-op."""
    assignment = await session.get(Assignment, assignment_id)
    if assignment is None or assignment.guard_id != guard_id:
        raise NotFound(f"assignment '{assignment_id}' not found")
    # The incident first, then its assignment (the order every writer keeps), and the
    # status read again under the lock.
    incident = await session.get(Incident, assignment.incident_id, with_for_update=True)
    assert incident is not None
    await session.refresh(assignment, with_for_update=True)
    if assignment.status == status:
        return assignment
    if status not in _NEXT[assignment.status]:
        raise InvalidTransition(f"set {status} on", "assignment", assignment.status)
    now = ctx.clock.now()
    assignment.status = status
    if note:
        assignment.note = note
    if status == AssignmentStatus.ON_SCENE:
        assignment.on_scene_at = now
        engagement.show(session, ctx, guard_id, AssignmentStatus.ON_SCENE, incident.id)
    elif status == AssignmentStatus.CLEARED:
        assignment.cleared_at = now
        await engagement.release(session, ctx, guard_id, assignment.id)
    actor = f"guard:{guard_id}"
    await ctx.events.record(
        session,
        type=f"assignment.{status}",
        actor=actor,
        at=now,
        incident_id=incident.id,
        station_id=incident.station_id,
        data={"assignment_id": assignment.id, "guard_id": guard_id, "note": note},
    )
    await sync_status(session, ctx, incident, actor)
    return assignment


async def sync_status(
    session: AsyncSession, ctx: AppContext, incident: Incident, actor: str
) -> None:
    """Derive the open incident's status from its assignments; all cleared means resolved."""
    if incident.status not in OPEN:
        return
    await session.flush()
    counts = dict(
        (
            await session.execute(
                select(Assignment.status, func.count())
                .where(Assignment.incident_id == incident.id)
                .group_by(Assignment.status)
            )
        ).all()
    )
    active = sum(counts.get(status, 0) for status in ACTIVE)
    if active == 0 and counts.get(AssignmentStatus.CLEARED, 0) > 0:
        data = {"reason": "all guards cleared"}
        await closing.end(session, ctx, incident, IncidentStatus.RESOLVED, actor, data=data)
        return
    target = staffing_status(incident.status, active, counts.get(AssignmentStatus.ON_SCENE, 0))
    if target == IncidentStatus.ASSIGNED and incident.status != IncidentStatus.ASSIGNED:
        # `incident.assigned` is each assignment's own event (one per guard, and the
        # webhook of that name); the status it implies gets no second one.
        incident.status = target
        incident.updated_at = ctx.clock.now()
        return
    await change_status(session, ctx, incident, target, actor)


async def clear_all(
    session: AsyncSession, ctx: AppContext, incident: Incident, note: str, actor: str
) -> int:
    """Stand every active guard down (cancel, resolve, handover) and tell each of them."""
    active = (
        await session.scalars(
            select(Assignment)
            .where(Assignment.incident_id == incident.id, Assignment.status.in_(ACTIVE))
            .order_by(Assignment.id)
        )
    ).all()
    now = ctx.clock.now()
    for assignment in active:
        assignment.status = AssignmentStatus.CLEARED
        assignment.cleared_at = now
        assignment.note = note
        await engagement.release(session, ctx, assignment.guard_id, assignment.id)
        await ctx.events.record(
            session,
            type="assignment.cleared",
            actor=actor,
            at=now,
            incident_id=incident.id,
            station_id=incident.station_id,
            data={"assignment_id": assignment.id, "guard_id": assignment.guard_id, "note": note},
        )
        await outbox.enqueue(
            session, ctx, assignment.guard_id, incident_update_frame(incident, note)
        )
    return len(active)


async def active_for_guard(
    session: AsyncSession, guard_id: str, incident_id: str
) -> Assignment | None:
    return await session.scalar(
        select(Assignment).where(
            Assignment.guard_id == guard_id,
            Assignment.incident_id == incident_id,
            Assignment.status.in_(ACTIVE),
        )
    )


async def request_backup(
    session: AsyncSession, ctx: AppContext, guard_id: str, incident_id: str
) -> Incident:
    """An assigned guard asks for backup; recorded on the timeline (and escalated by policy)."""
    incident = await session.get(Incident, incident_id, with_for_update=True)
    if incident is None:
        raise NotFound(f"incident '{incident_id}' not found")
    assignment = await active_for_guard(session, guard_id, incident_id)
    if assignment is None:
        raise Conflict(f"you are not assigned to incident '{incident_id}'", code="not_assigned")
    await ctx.events.record(
        session,
        type="assignment.backup_requested",
        actor=f"guard:{guard_id}",
        at=ctx.clock.now(),
        incident_id=incident.id,
        station_id=incident.station_id,
        data={"assignment_id": assignment.id, "guard_id": guard_id},
    )
    await escalation.on_backup_request(session, ctx, incident, guard_id)
    return incident
