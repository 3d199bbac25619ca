"""Police commendations and complaints about a guard's part in an incident."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.principal import Principal
from app.errors import Conflict, Unprocessable
from app.events.log import EventLog
from app.ids import new_id
from app.incidents.service import get_incident
from app.models import Assignment, Feedback, Guard

KINDS = ("commendation", "complaint")


async def add(
    session: AsyncSession,
    events: EventLog,
    principal: Principal,
    incident_id: str,
    kind: str,
    guard_id: str,
    text: str,
    now: dt.datetime,
) -> Feedback:
    """Record it (and its event, which earns or costs the guard points).

    Only a guard who worked the incident (held an assignment on it) can be commended or
    complained about: 409 `guard_not_on_incident` otherwise.
    """
    incident = await get_incident(session, principal, incident_id)
    guard = await session.get(Guard, guard_id)
    if guard is None:
        raise Unprocessable("guard_id", f"no guard '{guard_id}'")
    worked = await session.scalar(
        select(Assignment.id)
        .where(Assignment.incident_id == incident.id, Assignment.guard_id == guard.id)
        .limit(1)
    )
    if worked is None:
        raise Conflict(
            f"guard '{guard.id}' did not work incident '{incident.id}'",
            code="guard_not_on_incident",
        )
    feedback = Feedback(
        id=new_id("fbk"),
        incident_id=incident.id,
        guard_id=guard.id,
        company_id=guard.company_id,
        kind=kind,
        text=text,
        created_by=principal.actor,
        created_at=now,
    )
    session.add(feedback)
    await events.record(
        session,
        type=f"incident.{kind}",
        actor=principal.actor,
        at=now,
        incident_id=incident.id,
        station_id=incident.station_id,
        data={"feedback_id": feedback.id, "guard_id": guard.id, "company_id": guard.company_id},
    )
    return feedback


async def for_incident(
    session: AsyncSession, principal: Principal, incident_id: str
) -> list[Feedback]:
    incident = await get_incident(session, principal, incident_id)
    stmt = select(Feedback).where(Feedback.incident_id == incident.id)
    if principal.role == "company_manager":
        stmt = stmt.where(Feedback.company_id == principal.company_id)
    return list((await session.scalars(stmt.order_by(Feedback.id))).all())
