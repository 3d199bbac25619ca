"""Incident intake (durable, idempotent), lifecycle actions and queries."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.principal import Principal
from app.context import AppContext
from app.dispatch.policy import policy_for
from app.errors import Conflict, NotFound, Unprocessable
from app.geo.sql import within_radius
from app.geo.zones import Jurisdiction
from app.ids import new_id
from app.incidents.schemas import IncidentCreate, IncidentOut
from app.models import Assignment, Escalation, Event, Incident, Offer
from app.paging import paginate

# The channel each kind of credential reports through. `source` follows the caller: a CAD
# key cannot file a report as a guard on scene or as the console. `alarm` is for alarm
# intake, which sets it itself; no credential may claim it.
CHANNEL = {"user": "console", "system": "console", "api_key": "police", "guard": "guard"}


def source_for(principal: Principal, claimed: str | None) -> str:
    """The caller's channel; 422 naming `source` when the body claims another."""
    source = CHANNEL[principal.kind]
    if claimed is not None and claimed != source:
        raise Unprocessable(
            "source", f"must be '{source}' for this credential (it follows the caller) or left out"
        )
    return source


def _reporter(body: IncidentCreate) -> dict[str, Any] | None:
    if body.reporter is None:
        return None
    if isinstance(body.reporter, str):
        return {"name": body.reporter}
    return body.reporter.model_dump(exclude_none=True)


def _request_hash(body: IncidentCreate, source: str) -> str:
    fields = body.model_dump(mode="json")
    if not fields["exercise"]:
        # Hashes stored before drills existed had no such key: a repeat still matches.
        del fields["exercise"]
    canonical = json.dumps({**fields, "source": source}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


async def create_incident(
    session: AsyncSession,
    ctx: AppContext,
    principal: Principal,
    body: IncidentCreate,
    *,
    idempotency_key: str | None = None,
) -> tuple[Incident, bool]:
    """Store a new incident, or return the one these idempotency keys already created.

    The database settles duplicates: the insert skips on either unique key, and the loser
    of a race reads the winner's row.
    """
    source = source_for(principal, body.source)
    caller = principal.actor[:64]
    scope = caller if idempotency_key else None
    request_hash = _request_hash(body, source)

    existing = await _existing(session, caller, source, body.external_ref, idempotency_key)
    if existing is not None:
        return _replay(existing, idempotency_key, request_hash), False

    now = ctx.clock.now()
    jurisdiction = ctx.jurisdictions.locate(body.location.lat, body.location.lon)
    policy = policy_for(body.category, body.priority, ctx.settings.policy)
    values: dict[str, Any] = {
        "id": new_id("inc"),
        "source": source,
        "category": body.category,
        "priority": body.priority,
        "lat": body.location.lat,
        "lon": body.location.lon,
        "address": body.address,
        "description": body.description,
        "reporter": _reporter(body),
        "external_ref": body.external_ref,
        "caller": caller,
        "idempotency_scope": scope,
        "idempotency_key": idempotency_key,
        "request_hash": request_hash,
        "required_guards": body.required_guards or policy.guards,
        "status": "new",
        "station_id": jurisdiction.station_id if jurisdiction else None,
        "station_match": jurisdiction.match if jurisdiction else None,
        "unstaffed": False,
        "exercise": body.exercise,
        "created_by": principal.actor,
        "created_at": now,
        "updated_at": now,
    }
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    # ORM-enabled: the new row comes back as an Incident in the session, no second read.
    stmt = insert(Incident).values(values).on_conflict_do_nothing().returning(Incident)
    incident = await session.scalar(stmt)
    if incident is None:
        existing = await _existing(session, caller, source, body.external_ref, idempotency_key)
        if existing is None:  # pragma: no cover - a conflict always leaves the winner's row
            raise Conflict("incident could not be stored; retry")
        return _replay(existing, idempotency_key, request_hash), False

    await ctx.events.record(
        session,
        type="incident.created",
        actor=principal.actor,
        at=now,
        incident_id=incident.id,
        station_id=incident.station_id,
        data=created_data(incident, source, jurisdiction),
    )
    return incident, True


def created_data(
    incident: Incident, source: str, jurisdiction: Jurisdiction | None
) -> dict[str, Any]:
    """The `incident.created` event's data, whichever way the incident came in."""
    return {
        "source": source,
        "category": incident.category,
        "priority": incident.priority,
        "location": incident.location,
        "address": incident.address,
        "description": incident.description,
        "external_ref": incident.external_ref,
        "required_guards": incident.required_guards,
        "station_id": incident.station_id,
        "station_match": incident.station_match,
        "distance_to_jurisdiction_m": round(jurisdiction.distance_m, 1) if jurisdiction else None,
    }


async def _existing(
    session: AsyncSession,
    caller: str,
    source: str,
    external_ref: str | None,
    idempotency_key: str | None,
) -> Incident | None:
    """The incident this caller already created with this Idempotency-Key or external_ref."""
    if idempotency_key is not None:
        found = await session.scalar(
            select(Incident).where(
                Incident.idempotency_scope == caller, Incident.idempotency_key == idempotency_key
            )
        )
        if found is not None:
            return found
    if external_ref is not None:
        return await session.scalar(
            select(Incident).where(
                Incident.caller == caller,
                Incident.source == source,
                Incident.external_ref == external_ref,
            )
        )
    return None


def _replay(incident: Incident, idempotency_key: str | None, request_hash: str) -> Incident:
    """The stored incident for an exact repeat; 409 when the repeat carries a changed body."""
    if incident.request_hash is None or incident.request_hash == request_hash:
        return incident
    if idempotency_key is not None and incident.idempotency_key == idempotency_key:
        raise Conflict(
            "Idempotency-Key was already used with a different request body",
            code="idempotency_key_reused",
            details={"incident_id": incident.id},
        )
    # Answering the old incident would tell the caller its change was taken; it was not.
    raise Conflict(
        f"external_ref '{incident.external_ref}' already names an incident with a different "
        "body; post a new reference for a new incident",
        code="external_ref_reused",
        details={"incident_id": incident.id, "external_ref": incident.external_ref},
    )


def _not_found(incident_id: str) -> NotFound:
    return NotFound(f"incident '{incident_id}' not found")


def _visible(principal: Principal, incident: Incident) -> bool:
    """Station-scoped callers see and act on their own station's incidents only; to them
    another station's incident answers 404 exactly as a missing one."""
    return principal.station_id in (None, incident.station_id)


async def get_incident(session: AsyncSession, principal: Principal, incident_id: str) -> Incident:
    incident = await session.get(Incident, incident_id)
    if incident is None or not _visible(principal, incident):
        raise _not_found(incident_id)
    return incident


async def check_police_access(
    session: AsyncSession, principal: Principal, incident_id: str
) -> None:
    """The police side of a station-scoped caller reaches its station's incidents and those
    escalated to it; any other answers 404 exactly as a missing one."""
    if principal.station_id is None:
        return
    # Columns, not the entity: the action that follows locks the row and loads it then.
    found = await session.execute(select(Incident.station_id).where(Incident.id == incident_id))
    row = found.first()
    if row is None:
        raise _not_found(incident_id)
    if row.station_id == principal.station_id:
        return
    escalated = await session.scalar(
        select(Escalation.id).where(
            Escalation.incident_id == incident_id, Escalation.station_id == principal.station_id
        )
    )
    if escalated is None:
        raise _not_found(incident_id)


async def lock_incident(session: AsyncSession, principal: Principal, incident_id: str) -> Incident:
    """The incident, row-locked for a state change (FOR UPDATE; SQLite holds the write lock)."""
    incident = await session.scalar(
        select(Incident).where(Incident.id == incident_id).with_for_update()
    )
    if incident is None or not _visible(principal, incident):
        raise _not_found(incident_id)
    return incident


async def change_status(
    session: AsyncSession,
    ctx: AppContext,
    incident: Incident,
    target: str,
    actor: str,
    data: dict[str, Any] | None = None,
) -> None:
    """Move the incident to `target` and record `incident.<target>`; no-op if already there."""
    if incident.status == target:
        return
    now = ctx.clock.now()
    previous = incident.status
    incident.status = target
    incident.updated_at = now
    if target in ("resolved", "closed", "cancelled"):
        setattr(incident, f"{target}_at", now)
    await ctx.events.record(
        session,
        type=f"incident.{target}",
        actor=actor,
        at=now,
        incident_id=incident.id,
        station_id=incident.station_id,
        data={"from": previous, **(data or {})},
    )


async def list_incidents(
    session: AsyncSession,
    principal: Principal,
    *,
    statuses: list[str],
    priorities: list[int],
    station_id: str | None,
    category: str | None,
    source: str | None,
    exercise: bool | None = None,
    near: tuple[float, float] | None,
    radius_m: float,
    since: dt.datetime | None,
    until: dt.datetime | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[Incident], str | None]:
    stmt: Select[Any] = select(Incident)
    station_id = principal.own_station(station_id)
    conditions: list[ColumnElement[bool]] = []
    if statuses:
        conditions.append(Incident.status.in_(statuses))
    if priorities:
        conditions.append(Incident.priority.in_(priorities))
    if station_id:
        conditions.append(Incident.station_id == station_id)
    if category:
        conditions.append(Incident.category == category)
    if source:
        conditions.append(Incident.source == source)
    if exercise is not None:
        conditions.append(Incident.exercise.is_(exercise))
    if since:
        conditions.append(Incident.created_at >= since)
    if until:
        conditions.append(Incident.created_at < until)
    if near is not None:
        conditions.append(within_radius(Incident.lat, Incident.lon, near[0], near[1], radius_m))
    if conditions:
        stmt = stmt.where(and_(*conditions))
    return await paginate(session, stmt, Incident.id, cursor, limit, newest_first=True)


async def list_events(
    session: AsyncSession, principal: Principal, incident_id: str, cursor: str | None, limit: int
) -> tuple[list[Event], str | None]:
    await get_incident(session, principal, incident_id)
    stmt = select(Event).where(Event.incident_id == incident_id)
    return await paginate(session, stmt, Event.id, cursor, limit)


async def detail(session: AsyncSession, incident: Incident) -> dict[str, Any]:
    """The incident with its offers, assignments and escalations, oldest first."""
    offers = (
        await session.scalars(
            select(Offer).where(Offer.incident_id == incident.id).order_by(Offer.id)
        )
    ).all()
    assignments = (
        await session.scalars(
            select(Assignment).where(Assignment.incident_id == incident.id).order_by(Assignment.id)
        )
    ).all()
    escalations = (
        await session.scalars(
            select(Escalation).where(Escalation.incident_id == incident.id).order_by(Escalation.id)
        )
    ).all()
    return {
        **IncidentOut.model_validate(incident).model_dump(),
        "assigned_count": incident.assigned_count,
        "wave": incident.wave,
        "offers": offers,
        "assignments": assignments,
        "escalations": escalations,
    }
