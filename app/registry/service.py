"""Registry operations: create, read, update companies, guards, stations and units."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import Select, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.principal import Principal
from app.auth.secrets import hash_secret, new_bearer_secret
from app.context import AppContext
from app.db import after_commit
from app.dispatch import roster
from app.errors import Conflict, Forbidden, NotFound, Unprocessable
from app.geo.zones import InvalidGeometry, parse_jurisdiction
from app.ids import new_id
from app.models import Guard, GuardToken, PoliceStation, PoliceUnit, SecurityCompany
from app.models.base import Base
from app.paging import paginate
from app.realtime.close_codes import CloseCode
from app.registry import schemas
from app.supervision.period import local_today

M = TypeVar("M", bound=Base)


async def get_or_404(
    session: AsyncSession,
    model: type[M],
    object_id: str,
    kind: str,
    visible: Callable[[M], bool] | None = None,
) -> M:
    """The row; 404 when there is none or the caller may not know of it (the same answer)."""
    found = await session.get(model, object_id)
    if found is None or (visible is not None and not visible(found)):
        raise NotFound(f"{kind} '{object_id}' not found")
    return found


async def _reference(
    session: AsyncSession,
    model: type[M],
    object_id: str,
    field: str,
    visible: Callable[[M], bool] | None = None,
) -> M:
    found = await session.get(model, object_id)
    if found is None or (visible is not None and not visible(found)):
        raise Unprocessable(field, f"no such {field.removesuffix('_id')} '{object_id}'")
    return found


async def _flush_unique(session: AsyncSession, what: str) -> None:
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(f"{what} already exists", code="already_exists") from None


def _patch(target: Any, changes: dict[str, Any], required: set[str]) -> dict[str, Any]:
    """Apply a PATCH body; explicit nulls are refused for required fields."""
    for field, value in changes.items():
        if value is None and field in required:
            raise Unprocessable(field, "may not be null")
        setattr(target, field, value)
    return changes


def _own_company(principal: Principal, company_id: str) -> bool:
    """Company managers see and act on their own company only. To them another company's
    companies and guards do not exist: 404 (422 as a reference) exactly as a missing one,
    so a manager cannot learn which ids are taken elsewhere."""
    return principal.role != "company_manager" or principal.company_id == company_id


def _check_station(principal: Principal, station_id: str | None) -> None:
    """A station-scoped caller acts only on its own station."""
    if principal.station_id is not None and principal.station_id != station_id:
        raise Forbidden(f"this credential is scoped to station '{principal.station_id}'")


# Companies ---------------------------------------------------------------------------


async def create_company(
    session: AsyncSession, ctx: AppContext, principal: Principal, body: schemas.CompanyCreate
) -> SecurityCompany:
    now = ctx.clock.now()
    company = SecurityCompany(id=new_id("cmp"), created_at=now, updated_at=now, **body.model_dump())
    session.add(company)
    await _flush_unique(session, f"a company with licence_no '{body.licence_no}'")
    await ctx.events.record(
        session,
        type="company.created",
        actor=principal.actor,
        at=now,
        data={"company_id": company.id},
    )
    return company


async def list_companies(
    session: AsyncSession, principal: Principal, status: str | None, cursor: str | None, limit: int
) -> tuple[list[SecurityCompany], str | None]:
    stmt = select(SecurityCompany)
    if status:
        stmt = stmt.where(SecurityCompany.status == status)
    if principal.role == "company_manager":
        stmt = stmt.where(SecurityCompany.id == principal.company_id)
    return await paginate(session, stmt, SecurityCompany.id, cursor, limit)


async def get_company(
    session: AsyncSession, principal: Principal, company_id: str
) -> SecurityCompany:
    return await get_or_404(
        session, SecurityCompany, company_id, "company", lambda c: _own_company(principal, c.id)
    )


async def update_company(
    session: AsyncSession,
    ctx: AppContext,
    principal: Principal,
    company_id: str,
    body: schemas.CompanyUpdate,
) -> SecurityCompany:
    company = await get_or_404(session, SecurityCompany, company_id, "company")
    changes = _patch(
        company, body.model_dump(exclude_unset=True), required=set(type(body).model_fields)
    )
    company.updated_at = ctx.clock.now()
    await _flush_unique(session, f"a company with licence_no '{company.licence_no}'")
    guards = (await session.scalars(select(Guard).where(Guard.company_id == company.id))).all()
    after_commit(session, lambda: _refresh_guards(ctx, guards, company))
    await ctx.events.record(
        session,
        type="company.updated",
        actor=principal.actor,
        at=company.updated_at,
        data={"company_id": company.id, "changes": _jsonable(changes)},
    )
    return company


# Guards ------------------------------------------------------------------------------


async def create_guard(
    session: AsyncSession, ctx: AppContext, principal: Principal, body: schemas.GuardCreate
) -> Guard:
    await _reference(
        session,
        SecurityCompany,
        body.company_id,
        "company_id",
        lambda c: _own_company(principal, c.id),
    )
    now = ctx.clock.now()
    guard = Guard(id=new_id("grd"), created_at=now, updated_at=now, **body.model_dump())
    if guard.status == "left":
        guard.left_on = local_today(now, ZoneInfo(ctx.settings.timezone))
    session.add(guard)
    await _flush_unique(session, f"a guard with badge_no '{body.badge_no}'")
    await ctx.events.record(
        session,
        type="guard.created",
        actor=principal.actor,
        at=now,
        data={"guard_id": guard.id, "company_id": guard.company_id},
    )
    return guard


async def list_guards(
    session: AsyncSession,
    principal: Principal,
    *,
    company_id: str | None,
    status: str | None,
    skill: str | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[Guard], str | None]:
    stmt: Select[Any] = select(Guard)
    if principal.role == "company_manager":
        if company_id is not None and not _own_company(principal, company_id):
            raise Forbidden("company managers may list their own company's guards only")
        company_id = principal.company_id
    if company_id:
        stmt = stmt.where(Guard.company_id == company_id)
    if status:
        stmt = stmt.where(Guard.status == status)
    if skill:
        stmt = stmt.where(_has_skill(session, skill))
    return await paginate(session, stmt, Guard.id, cursor, limit)


def _has_skill(session: AsyncSession, skill: str) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return text("guards.skills @> jsonb_build_array(CAST(:skill AS text))").bindparams(
            skill=skill
        )
    return text("EXISTS (SELECT 1 FROM json_each(guards.skills) WHERE value = :skill)").bindparams(
        skill=skill
    )


async def get_guard(session: AsyncSession, principal: Principal, guard_id: str) -> Guard:
    return await get_or_404(
        session, Guard, guard_id, "guard", lambda g: _own_company(principal, g.company_id)
    )


async def update_guard(
    session: AsyncSession,
    ctx: AppContext,
    principal: Principal,
    guard_id: str,
    body: schemas.GuardUpdate,
) -> Guard:
    guard = await get_guard(session, principal, guard_id)
    required = set(type(body).model_fields) - {"phone", "left_on"}
    fields = body.model_dump(exclude_unset=True)
    status = fields.get("status", guard.status)
    if fields.get("left_on") is not None and status != "left":
        raise Unprocessable("left_on", "only a guard whose status is 'left' has a left_on date")
    changes = _patch(guard, fields, required=required)
    guard.updated_at = ctx.clock.now()
    if status == "left" and guard.left_on is None:
        guard.left_on = local_today(guard.updated_at, ZoneInfo(ctx.settings.timezone))
        changes["left_on"] = guard.left_on
    elif status == "active" and guard.left_on is not None:
        guard.left_on = None  # taken back on: no longer a departure
        changes["left_on"] = None
    await _flush_unique(session, f"a guard with badge_no '{guard.badge_no}'")
    company = await session.get(SecurityCompany, guard.company_id)
    assert company is not None
    after_commit(session, lambda: roster.refresh_guard(ctx, guard, company))
    after_commit(session, ctx.principals.clear)  # a guard who left loses their device tokens
    await ctx.events.record(
        session,
        type="guard.updated",
        actor=principal.actor,
        at=guard.updated_at,
        data={"guard_id": guard.id, "changes": _jsonable(changes)},
    )
    return guard


async def issue_guard_token(
    session: AsyncSession, ctx: AppContext, principal: Principal, guard_id: str
) -> tuple[GuardToken, str]:
    """A new device token for a guard; the plaintext is returned once and stored hashed."""
    guard = await get_guard(session, principal, guard_id)
    secret = new_bearer_secret()
    token = GuardToken(
        id=new_id("gdt"),
        guard_id=guard.id,
        secret_hash=hash_secret(secret),
        created_at=ctx.clock.now(),
    )
    session.add(token)
    await session.flush()
    await ctx.events.record(
        session,
        type="guard.token_issued",
        actor=principal.actor,
        at=token.created_at,
        data={"guard_id": guard.id, "token_id": token.id},
    )
    return token, f"{token.id}.{secret}"


async def revoke_guard_token(
    session: AsyncSession, ctx: AppContext, principal: Principal, guard_id: str, token_id: str
) -> GuardToken:
    guard = await get_guard(session, principal, guard_id)
    token = await session.get(GuardToken, token_id)
    if token is None or token.guard_id != guard.id:
        raise NotFound(f"token '{token_id}' not found for guard '{guard_id}'")
    if token.revoked_at is None:
        token.revoked_at = ctx.clock.now()
        after_commit(session, lambda: _disconnect_token(ctx, token))
        await ctx.events.record(
            session,
            type="guard.token_revoked",
            actor=principal.actor,
            at=token.revoked_at,
            data={"guard_id": guard.id, "token_id": token.id},
        )
    return token


def _refresh_guards(ctx: AppContext, guards: Sequence[Guard], company: SecurityCompany) -> None:
    for guard in guards:
        roster.refresh_guard(ctx, guard, company)


def _disconnect_token(ctx: AppContext, token: GuardToken) -> None:
    """A revoked device token's live connection is closed at once (4401)."""
    ctx.principals.clear()
    link = ctx.hub.guard_link(token.guard_id)
    if link is not None and link.token_id == token.id:
        link.close(CloseCode.UNAUTHORIZED, "device token revoked")


# Stations ----------------------------------------------------------------------------


def _jurisdiction(geojson: dict[str, Any]) -> Any:
    try:
        return parse_jurisdiction(geojson)
    except InvalidGeometry as exc:
        raise Unprocessable("jurisdiction", str(exc)) from None


async def create_station(
    session: AsyncSession, ctx: AppContext, principal: Principal, body: schemas.StationCreate
) -> PoliceStation:
    geometry = _jurisdiction(body.jurisdiction)
    now = ctx.clock.now()
    station = PoliceStation(
        id=new_id("stn"),
        name=body.name,
        jurisdiction=body.jurisdiction,
        contact_phone=body.contact_phone,
        created_at=now,
        updated_at=now,
    )
    session.add(station)
    await _flush_unique(session, f"a station named '{body.name}'")
    await ctx.events.record(
        session,
        type="station.created",
        actor=principal.actor,
        at=now,
        station_id=station.id,
        data={"station_id": station.id},
    )
    after_commit(session, lambda: ctx.jurisdictions.put(station.id, geometry))
    return station


async def list_stations(
    session: AsyncSession, cursor: str | None, limit: int
) -> tuple[list[PoliceStation], str | None]:
    return await paginate(session, select(PoliceStation), PoliceStation.id, cursor, limit)


async def update_station(
    session: AsyncSession,
    ctx: AppContext,
    principal: Principal,
    station_id: str,
    body: schemas.StationUpdate,
) -> PoliceStation:
    station = await get_or_404(session, PoliceStation, station_id, "station")
    changes = body.model_dump(exclude_unset=True)
    geometry = _jurisdiction(changes["jurisdiction"]) if "jurisdiction" in changes else None
    _patch(station, changes, required={"name", "jurisdiction"})
    station.updated_at = ctx.clock.now()
    await _flush_unique(session, f"a station named '{station.name}'")
    await ctx.events.record(
        session,
        type="station.updated",
        actor=principal.actor,
        at=station.updated_at,
        station_id=station.id,
        data={"station_id": station.id, "fields": sorted(changes)},
    )
    if geometry is not None:
        after_commit(session, lambda: ctx.jurisdictions.put(station.id, geometry))
    return station


# Units -------------------------------------------------------------------------------


async def create_unit(
    session: AsyncSession, ctx: AppContext, principal: Principal, body: schemas.UnitCreate
) -> PoliceUnit:
    _check_station(principal, body.station_id)
    await _reference(session, PoliceStation, body.station_id, "station_id")
    now = ctx.clock.now()
    unit = PoliceUnit(
        id=new_id("unt"),
        call_sign=body.call_sign,
        station_id=body.station_id,
        kind=body.kind,
        status=body.status,
        created_at=now,
        updated_at=now,
    )
    if body.location is not None:
        unit.lat, unit.lon, unit.located_at = body.location.lat, body.location.lon, now
    session.add(unit)
    await _flush_unique(session, f"a unit with call_sign '{body.call_sign}'")
    await ctx.events.record(
        session,
        type="unit.created",
        actor=principal.actor,
        at=now,
        station_id=unit.station_id,
        data={"unit_id": unit.id, "call_sign": unit.call_sign},
    )
    return unit


async def list_units(
    session: AsyncSession,
    *,
    station_id: str | None,
    status: str | None,
    kind: str | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[PoliceUnit], str | None]:
    stmt: Select[Any] = select(PoliceUnit)
    if station_id:
        stmt = stmt.where(PoliceUnit.station_id == station_id)
    if status:
        stmt = stmt.where(PoliceUnit.status == status)
    if kind:
        stmt = stmt.where(PoliceUnit.kind == kind)
    return await paginate(session, stmt, PoliceUnit.id, cursor, limit)


async def update_unit(
    session: AsyncSession,
    ctx: AppContext,
    principal: Principal,
    unit_id: str,
    body: schemas.UnitUpdate,
) -> PoliceUnit:
    unit = await get_or_404(session, PoliceUnit, unit_id, "unit")
    _check_station(principal, unit.station_id)
    changes = body.model_dump(exclude_unset=True)
    now = ctx.clock.now()
    if "station_id" in changes and changes["station_id"] is not None:
        _check_station(principal, changes["station_id"])
        await _reference(session, PoliceStation, changes["station_id"], "station_id")
    location = changes.pop("location", None)
    _patch(unit, changes, required={"call_sign", "station_id", "kind", "status"})
    if "location" in body.model_fields_set:
        unit.lat = location["lat"] if location else None
        unit.lon = location["lon"] if location else None
        unit.located_at = now if location else None
    unit.updated_at = now
    await _flush_unique(session, f"a unit with call_sign '{unit.call_sign}'")
    await ctx.events.record(
        session,
        type="unit.updated",
        actor=principal.actor,
        at=now,
        station_id=unit.station_id,
        data={
            "unit_id": unit.id,
            "status": unit.status,
            "location": unit.location,
            "fields": sorted(body.model_fields_set),
        },
    )
    return unit


def _jsonable(changes: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in changes.items()}
