"""/api/v1/incidents: intake, queries, timeline and lifecycle actions."""

from __future__ import annotations

from typing import Annotated, Any, get_args

from fastapi import APIRouter, Depends, Header, Query, Response
from fastapi.responses import Response as RawResponse

from app.api.deps import Allow, CtxDep, ReadSessionDep, SessionDep
from app.api.instants import utc
from app.api.openapi import conflict
from app.api.pagination import DEFAULT_LIMIT, Cursor, Limit
from app.auth.principal import Principal
from app.dispatch import intake, operator
from app.errors import Unprocessable
from app.events.log import event_json
from app.incidents import service
from app.incidents.schemas import (
    AssignmentOut,
    AssignRequest,
    Category,
    EventOut,
    IncidentAction,
    IncidentCreate,
    IncidentDetail,
    IncidentOut,
    OfferOut,
    Source,
    Status,
)
from app.integrations import cap, eido
from app.integrations.versions import versions
from app.schemas import Instant, Page

router = APIRouter(prefix="/incidents", tags=["incidents"])
REUSED = conflict(
    "`idempotency_key_reused`, `external_ref_reused`: the key or reference names an incident "
    "with a different body"
)
ENDED = conflict("`invalid_transition`: not allowed in the incident's status (in details)")
ASSIGN = conflict(
    "`invalid_transition`: the incident has ended; `guard_not_dispatchable`, `guard_busy`, "
    "`already_assigned`: the guard cannot take it"
)
OFFER_CLOSED = conflict("`offer_closed`: the offer was answered, expired or withdrawn")
SENDER_NAME = "Police–guard linkage dispatch"

IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$"),
]


@router.post("", status_code=201, response_model=IncidentOut, responses=REUSED)
async def create_incident(
    principal: Annotated[Principal, Depends(Allow("incidents:write"))],
    body: IncidentCreate,
    response: Response,
    session: SessionDep,
    ctx: CtxDep,
    idempotency_key: IdempotencyKey = None,
) -> object:
    """Report an incident. Durable before the 201; a repeated Idempotency-Key or
    (source, external_ref) answers with the incident already created."""
    incident, created = await intake.receive(
        session, ctx, principal, body, idempotency_key=idempotency_key
    )
    response.headers["Location"] = f"/api/v1/incidents/{incident.id}"
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return incident


def _csv(value: str | None, field: str, allowed: tuple[Any, ...], cast: type = str) -> list[Any]:
    if not value:
        return []
    items = []
    for raw in value.split(","):
        try:
            item = cast(raw.strip())
        except ValueError:
            raise Unprocessable(field, f"'{raw}' is not one of {list(allowed)}") from None
        if item not in allowed:
            raise Unprocessable(field, f"'{raw}' is not one of {list(allowed)}")
        items.append(item)
    return items


def _near(value: str | None) -> tuple[float, float] | None:
    if value is None:
        return None
    try:
        lat_s, lon_s = value.split(",")
        lat, lon = float(lat_s), float(lon_s)
    except ValueError:
        raise Unprocessable("near", "must be 'lat,lon'") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise Unprocessable("near", "lat must be within ±90 and lon within ±180")
    return lat, lon


@router.get("", response_model=Page[IncidentOut])
async def list_incidents(
    principal: Annotated[Principal, Depends(Allow("incidents:read"))],
    session: ReadSessionDep,
    status: Annotated[str | None, Query(description="comma-separated statuses")] = None,
    priority: Annotated[str | None, Query(description="comma-separated priorities 1-4")] = None,
    station_id: str | None = None,
    category: Category | None = None,
    source: Source | None = None,
    exercise: Annotated[
        bool | None, Query(description="only drills (true) or only real incidents (false)")
    ] = None,
    near: Annotated[str | None, Query(description="lat,lon")] = None,
    radius_m: Annotated[float, Query(gt=0, le=100_000)] = 1000.0,
    since: Instant | None = None,
    until: Instant | None = None,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
) -> object:
    items, next_cursor = await service.list_incidents(
        session,
        principal,
        statuses=_csv(status, "status", get_args(Status)),
        priorities=_csv(priority, "priority", (1, 2, 3, 4), int),
        station_id=station_id,
        category=category,
        source=source,
        exercise=exercise,
        near=_near(near),
        radius_m=radius_m,
        since=utc(since, "since"),
        until=utc(until, "until"),
        cursor=cursor,
        limit=limit,
    )
    return {"items": items, "next_cursor": next_cursor}


@router.get("/{incident_id}", response_model=IncidentDetail)
async def get_incident(
    principal: Annotated[Principal, Depends(Allow("incidents:read"))],
    incident_id: str,
    session: ReadSessionDep,
) -> object:
    """The incident with its offers, assignments and escalations."""
    incident = await service.get_incident(session, principal, incident_id)
    return await service.detail(session, incident)


@router.get(
    "/{incident_id}/cap",
    response_class=RawResponse,
    responses={200: {"content": {"application/cap+xml": {}}, "description": "OASIS CAP 1.2 alert"}},
)
async def incident_as_cap(
    principal: Annotated[Principal, Depends(Allow("incidents:read"))],
    incident_id: str,
    session: ReadSessionDep,
    ctx: CtxDep,
) -> RawResponse:
    """The incident's latest CAP 1.2 message (Alert, Update or Cancel), referencing the
    earlier ones."""
    incident = await service.get_incident(session, principal, incident_id)
    history = await versions(session, incident.id)
    body = cap.render(incident, ctx.settings.cap_sender, SENDER_NAME, history)
    return RawResponse(body, media_type="application/cap+xml")


@router.get("/{incident_id}/eido")
async def incident_as_eido(
    principal: Annotated[Principal, Depends(Allow("incidents:read"))],
    incident_id: str,
    session: ReadSessionDep,
    ctx: CtxDep,
) -> dict[str, Any]:
    """The incident as a NENA EIDO (NENA-STA-021) JSON object, its latest version."""
    incident = await service.get_incident(session, principal, incident_id)
    return await eido.document(session, incident, ctx.settings.cap_sender)


@router.get("/{incident_id}/events", response_model=Page[EventOut])
async def list_incident_events(
    principal: Annotated[Principal, Depends(Allow("incidents:read"))],
    incident_id: str,
    session: ReadSessionDep,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
) -> object:
    events, next_cursor = await service.list_events(session, principal, incident_id, cursor, limit)
    return {"items": [event_json(e) for e in events], "next_cursor": next_cursor}


@router.post("/{incident_id}/cancel", response_model=IncidentOut, responses=ENDED)
async def cancel_incident(
    principal: Annotated[Principal, Depends(Allow("incidents:operate"))],
    incident_id: str,
    session: SessionDep,
    ctx: CtxDep,
    body: IncidentAction | None = None,
) -> object:
    note = body.note if body else None
    return await operator.apply_action(session, ctx, principal, incident_id, "cancel", note)


@router.post("/{incident_id}/resolve", response_model=IncidentOut, responses=ENDED)
async def resolve_incident(
    principal: Annotated[Principal, Depends(Allow("incidents:operate", "police:act"))],
    incident_id: str,
    session: SessionDep,
    ctx: CtxDep,
    body: IncidentAction | None = None,
) -> object:
    note = body.note if body else None
    return await operator.apply_action(session, ctx, principal, incident_id, "resolve", note)


@router.post("/{incident_id}/close", response_model=IncidentOut, responses=ENDED)
async def close_incident(
    principal: Annotated[Principal, Depends(Allow("incidents:operate", "police:act"))],
    incident_id: str,
    session: SessionDep,
    ctx: CtxDep,
    body: IncidentAction | None = None,
) -> object:
    note = body.note if body else None
    return await operator.apply_action(session, ctx, principal, incident_id, "close", note)


@router.post(
    "/{incident_id}/assign", status_code=201, response_model=AssignmentOut, responses=ASSIGN
)
async def assign_guard(
    principal: Annotated[Principal, Depends(Allow("incidents:operate"))],
    incident_id: str,
    body: AssignRequest,
    session: SessionDep,
    ctx: CtxDep,
) -> object:
    """Operator override: assign this guard now, whatever matching would have chosen."""
    return await operator.assign(session, ctx, principal, incident_id, body.guard_id, body.note)


@router.post(
    "/{incident_id}/offers/{offer_id}/withdraw", response_model=OfferOut, responses=OFFER_CLOSED
)
async def withdraw_offer(
    principal: Annotated[Principal, Depends(Allow("incidents:operate"))],
    incident_id: str,
    offer_id: str,
    session: SessionDep,
    ctx: CtxDep,
) -> object:
    return await operator.withdraw_offer(session, ctx, principal, incident_id, offer_id)
