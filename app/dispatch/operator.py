"""Console actions on an incident: cancel, resolve, close, assign a guard, withdraw an offer."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.principal import Principal
from app.dispatch import assignments, closing, engagement, engine, escalation, offers
from app.errors import Conflict, InvalidTransition, NotFound, Unprocessable
from app.incidents import lifecycle
from app.incidents.service import lock_incident
from app.models import Assignment, Escalation, Guard, Incident, Offer, SecurityCompany
from app.models.status import EngagementKind

if TYPE_CHECKING:
    from app.context import AppContext


async def apply_action(
    session: AsyncSession,
    ctx: AppContext,
    principal: Principal,
    incident_id: str,
    action: str,
    note: str | None,
) -> Incident:
    """cancel / resolve / close: check the transition, stand guards down, record the event."""
    incident = await lock_incident(session, principal, incident_id)
    target = lifecycle.after_action(action, incident.status)
    await closing.end(
        session, ctx, incident, target, principal.actor, note=note, data={"note": note}
    )
    return incident


def check_dispatchable(guard: Guard, company: SecurityCompany, today: dt.date) -> None:
    """The registry half of "dispatchable": active, certified, with a licensed company."""
    problems = []
    if guard.status != "active":
        problems.append(f"guard is {guard.status}")
    if guard.certificate_expires_on < today:
        problems.append("certificate expired")
    if company.status != "active":
        problems.append(f"company is {company.status}")
    if company.licence_expires_on < today:
        problems.append("company licence expired")
    if problems:
        raise Conflict(
            f"guard '{guard.id}' cannot be dispatched: {', '.join(problems)}",
            code="guard_not_dispatchable",
        )


async def assign(
    session: AsyncSession,
    ctx: AppContext,
    principal: Principal,
    incident_id: str,
    guard_id: str,
    note: str | None,
) -> Assignment:
    """Override matching: put this guard on the incident now.

    A pending offer of the same incident is accepted on the guard's behalf; an offer of
    another incident is withdrawn first; a guard already assigned elsewhere is a 409.
    """
    incident = await lock_incident(session, principal, incident_id)
    if incident.status not in lifecycle.OPEN:
        raise InvalidTransition("assign a guard to", "incident", incident.status)
    guard = await session.get(Guard, guard_id)
    if guard is None:
        raise Unprocessable("guard_id", f"no such guard '{guard_id}'")
    company = await session.get(SecurityCompany, guard.company_id)
    assert company is not None
    check_dispatchable(guard, company, ctx.clock.now().date())

    held = await engagement.current(session, guard_id)
    if held is not None and held.kind == EngagementKind.ASSIGNMENT:
        if held.incident_id == incident.id:
            raise Conflict(
                f"guard '{guard_id}' is already assigned to this incident", code="already_assigned"
            )
        raise Conflict(
            f"guard '{guard_id}' is assigned to incident '{held.incident_id}'", code="guard_busy"
        )
    if held is not None:
        pending = await session.get(Offer, held.ref_id)
        assert pending is not None
        other = (
            incident
            if held.incident_id == incident.id
            else await session.get(Incident, held.incident_id)
        )
        assert other is not None
        await offers.withdraw(session, ctx, other, pending, "reassigned", principal.actor)
        if other is not incident:
            await engine.advance(session, ctx, other)
    await assignments.take_seat(session, incident, grow=True)
    assignment = await assignments.create(
        session, ctx, incident, guard_id, source="operator", actor=principal.actor, note=note
    )
    if incident.assigned_count >= incident.required_guards:
        await offers.withdraw_open(session, ctx, incident, reason="filled", actor=principal.actor)
    return assignment


async def withdraw_offer(
    session: AsyncSession, ctx: AppContext, principal: Principal, incident_id: str, offer_id: str
) -> Offer:
    """Take an offer back from a guard; the next wave goes out if nothing else is pending."""
    incident = await lock_incident(session, principal, incident_id)
    offer = await session.get(Offer, offer_id)
    if offer is None or offer.incident_id != incident.id:
        raise NotFound(f"offer '{offer_id}' not found on incident '{incident_id}'")
    if not await offers.withdraw(session, ctx, incident, offer, "operator", principal.actor):
        raise Conflict(f"offer '{offer_id}' is already {offer.outcome}", code="offer_closed")
    await engine.advance(session, ctx, incident)
    return offer


async def escalate(
    session: AsyncSession,
    ctx: AppContext,
    principal: Principal,
    incident_id: str,
    note: str | None,
    station_id: str | None,
) -> Escalation:
    """An operator escalates any open incident (to its station unless told otherwise)."""
    incident = await lock_incident(session, principal, incident_id)
    if incident.status not in lifecycle.OPEN:
        raise InvalidTransition("escalate", "incident", incident.status)
    return await escalation.escalate(
        session, ctx, incident, "operator", principal.actor, note=note, station_id=station_id
    )
