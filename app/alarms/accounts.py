"""Alarm accounts: the sites a security company monitors, managed by admins, supervisors
and the company's own managers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Select, and_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.alarms.schemas import AlarmAccountCreate, AlarmAccountUpdate
from app.auth.principal import Principal
from app.errors import Conflict, Forbidden, NotFound, Unprocessable
from app.ids import new_id
from app.models import AlarmAccount, SecurityCompany
from app.paging import paginate

if TYPE_CHECKING:
    from app.context import AppContext


def visible(principal: Principal, account: AlarmAccount) -> bool:
    """A company manager knows its own company's accounts only, a station-scoped caller
    those in its jurisdiction; to them any other is missing (404), not forbidden."""
    if principal.role == "company_manager" and account.company_id != principal.company_id:
        return False
    return principal.station_id in (None, account.station_id)


def _station(ctx: AppContext, lat: float, lon: float) -> str | None:
    jurisdiction = ctx.jurisdictions.locate(lat, lon)
    return jurisdiction.station_id if jurisdiction else None


def _check_station(principal: Principal, station_id: str | None) -> None:
    if principal.station_id is not None and station_id != principal.station_id:
        raise Forbidden(
            f"this credential is scoped to station '{principal.station_id}'; "
            "the site lies outside its jurisdiction"
        )


async def create(
    session: AsyncSession, ctx: AppContext, principal: Principal, body: AlarmAccountCreate
) -> AlarmAccount:
    """A new account; 409 `already_exists` when the account number is taken."""
    company = await session.get(SecurityCompany, body.company_id)
    if company is None or (
        principal.role == "company_manager" and company.id != principal.company_id
    ):
        raise Unprocessable("company_id", f"no such company '{body.company_id}'")
    lat, lon = body.location.lat, body.location.lon
    station_id = _station(ctx, lat, lon)
    _check_station(principal, station_id)
    now = ctx.clock.now()
    account = AlarmAccount(
        id=new_id("alac"),
        company_id=company.id,
        account=body.account,
        site_name=body.site_name,
        lat=lat,
        lon=lon,
        station_id=station_id,
        contacts=[c.model_dump(exclude_none=True) for c in body.contacts],
        status="active",
        created_by=principal.actor,
        created_at=now,
        updated_at=now,
    )
    session.add(account)
    try:
        await session.flush()
    except IntegrityError:  # the unique account number; the request rolls back
        raise Conflict(
            f"alarm account '{body.account}' already exists",
            code="already_exists",
            details={"field": "account"},
        ) from None
    await ctx.events.record(
        session,
        type="alarm_account.created",
        actor=principal.actor,
        at=now,
        station_id=station_id,
        data={
            "account_id": account.id,
            "account": account.account,
            "company_id": account.company_id,
            "site_name": account.site_name,
            "location": account.location,
        },
    )
    return account


async def get(session: AsyncSession, principal: Principal, account_id: str) -> AlarmAccount:
    account = await session.get(AlarmAccount, account_id)
    if account is None or not visible(principal, account):
        raise NotFound(f"alarm account '{account_id}' not found")
    return account


async def list_accounts(
    session: AsyncSession,
    principal: Principal,
    *,
    company_id: str | None,
    station_id: str | None,
    status: str | None,
    account: str | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[AlarmAccount], str | None]:
    """Newest first; company managers and station-scoped callers see their own only."""
    if principal.role == "company_manager":
        if company_id not in (None, principal.company_id):
            raise Forbidden("company managers may list their own company's accounts only")
        company_id = principal.company_id
    station_id = principal.own_station(station_id)
    conditions: list[ColumnElement[bool]] = []
    if company_id is not None:
        conditions.append(AlarmAccount.company_id == company_id)
    if station_id is not None:
        conditions.append(AlarmAccount.station_id == station_id)
    if status is not None:
        conditions.append(AlarmAccount.status == status)
    if account is not None:
        conditions.append(AlarmAccount.account == account)
    stmt: Select[Any] = select(AlarmAccount)
    if conditions:
        stmt = stmt.where(and_(*conditions))
    return await paginate(session, stmt, AlarmAccount.id, cursor, limit, newest_first=True)


async def update(
    session: AsyncSession,
    ctx: AppContext,
    principal: Principal,
    account_id: str,
    body: AlarmAccountUpdate,
) -> AlarmAccount:
    """Change the site, its contacts or its status (a suspended account's alarms are
    rejected with `account_suspended`)."""
    account = await get(session, principal, account_id)
    changes = body.model_dump(exclude_unset=True)
    for field in ("site_name", "location", "contacts", "status"):
        if field in changes and changes[field] is None:
            raise Unprocessable(field, "may not be null")
    if body.site_name is not None:
        account.site_name = body.site_name
    if body.location is not None:
        station_id = _station(ctx, body.location.lat, body.location.lon)
        _check_station(principal, station_id)
        account.lat, account.lon = body.location.lat, body.location.lon
        account.station_id = station_id
    if body.contacts is not None:
        account.contacts = [c.model_dump(exclude_none=True) for c in body.contacts]
    if body.status is not None:
        account.status = body.status
    now = ctx.clock.now()
    account.updated_at = now
    await ctx.events.record(
        session,
        type="alarm_account.updated",
        actor=principal.actor,
        at=now,
        station_id=account.station_id,
        data={"account_id": account.id, "account": account.account, "changes": changes},
    )
    return account
