"""The one way an incident ends: every ending (cancel, resolve, close, police handover,
the last guard clearing) stands its open offers down and its guards down here."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.db import after_commit
from app.dispatch import assignments, decisions, escalation, offers, timers
from app.incidents.service import change_status
from app.models import Incident

if TYPE_CHECKING:
    from app.context import AppContext


async def end(
    session: AsyncSession,
    ctx: AppContext,
    incident: Incident,
    target: str,
    actor: str,
    *,
    note: str | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """Move the incident to an ended status; open offers are withdrawn with that status as
    the reason (frame, engagement released, event), active guards are stood down."""
    reason = decisions.withdraw_reason(target)
    if reason is None:
        raise ValueError(f"'{target}' does not end an incident")
    await offers.withdraw_open(session, ctx, incident, reason=reason, actor=actor)
    await change_status(session, ctx, incident, target, actor, data)
    await assignments.clear_all(session, ctx, incident, note=note or target, actor=actor)
    # Nothing is left to escalate for: the on-scene deadline would only add noise.
    await timers.cancel(session, escalation.ON_SCENE_DEADLINE, incident.id)
    incident_id = incident.id
    after_commit(session, lambda: ctx.availability.forget(incident_id))
