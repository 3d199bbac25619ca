"""An incident arrives: store it, then start dispatch in the same transaction."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.principal import Principal
from app.dispatch import assignments, engagement, engine, escalation
from app.incidents.schemas import IncidentCreate
from app.incidents.service import create_incident
from app.models import Incident
from app.models.status import AssignmentStatus

if TYPE_CHECKING:
    from app.context import AppContext


async def receive(
    session: AsyncSession,
    ctx: AppContext,
    principal: Principal,
    body: IncidentCreate,
    *,
    idempotency_key: str | None = None,
) -> tuple[Incident, bool]:
    """Store the incident (idempotently) and send its first wave; both commit together."""
    incident, created = await create_incident(
        session, ctx, principal, body, idempotency_key=idempotency_key
    )
    if created:
        await escalation.on_intake(session, ctx, incident)
        if principal.guard_id is not None:
            await _assign_reporter(session, ctx, incident, principal.guard_id)
        await engine.start(session, ctx, incident)
    return incident, created


async def _assign_reporter(
    session: AsyncSession, ctx: AppContext, incident: Incident, guard_id: str
) -> None:
    """A guard's own report: they are on the scene already, unless engaged elsewhere."""
    if await engagement.current(session, guard_id) is not None:
        return
    await assignments.take_seat(session, incident)
    await assignments.create(
        session,
        ctx,
        incident,
        guard_id,
        source="report",
        actor=f"guard:{guard_id}",
        status=AssignmentStatus.ON_SCENE,
    )
