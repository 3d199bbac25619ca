"""A keyholder's cancel or a false alarm: the alarm's incident ends as `cancelled` through
the one ending path (app/dispatch/closing.py), which withdraws its offers and stands its
guards down; the alarm keeps who cancelled it and why."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from app.alarms import queries
from app.alarms.schemas import AlarmCancel
from app.auth.principal import Principal
from app.dispatch import closing
from app.errors import Conflict
from app.incidents import lifecycle
from app.incidents.service import lock_incident
from app.models import Alarm

if TYPE_CHECKING:
    from app.context import AppContext


async def cancel(
    session: AsyncSession, ctx: AppContext, principal: Principal, alarm_id: str, body: AlarmCancel
) -> Alarm:
    """Cancel the alarm's incident. A repeated cancel answers the cancelled alarm again;
    a rejected alarm, or one whose incident already ended otherwise, is a 409."""
    alarm = await queries.get(session, principal, alarm_id)
    if alarm.outcome != "accepted" or alarm.incident_id is None:
        raise Conflict(
            f"alarm '{alarm.id}' was rejected ({alarm.reason}); there is no incident to cancel",
            code="invalid_transition",
            details={"outcome": alarm.outcome, "reason": alarm.reason},
        )
    # The incident's row lock orders racing cancels; the second finds the alarm cancelled.
    incident = await lock_incident(session, principal, alarm.incident_id)
    await session.refresh(alarm)
    if alarm.cancelled_at is not None:
        return alarm
    target = lifecycle.after_action("cancel", incident.status)
    await closing.end(
        session,
        ctx,
        incident,
        target,
        principal.actor,
        note=body.note or body.reason,
        data={"note": body.note, "reason": body.reason, "alarm_id": alarm.id},
    )
    now = ctx.clock.now()
    alarm.cancelled_at = now
    alarm.cancel_reason = body.reason
    alarm.cancelled_by = principal.actor
    alarm.latched = False  # the site may alarm again at once: that is a new alarm
    await ctx.events.record(
        session,
        type="alarm.cancelled",
        actor=principal.actor,
        at=now,
        incident_id=incident.id,
        station_id=incident.station_id,
        data={
            "alarm_id": alarm.id,
            "account": alarm.account,
            "reason": body.reason,
            "note": body.note,
        },
    )
    return alarm
