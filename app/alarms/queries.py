"""Reading alarms back: one alarm, or the list, as each kind of caller may see them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.principal import Principal
from app.errors import Forbidden, NotFound
from app.models import Alarm
from app.paging import paginate


def visible(principal: Principal, alarm: Alarm) -> bool:
    """Who may know of an alarm: whoever sent it; beyond that, holders of `alarms:read`
    (a company manager its company's, a station-scoped caller its station's). To anyone
    else the alarm is missing (404)."""
    if alarm.received_by == principal.actor:
        return True
    if "alarms:read" not in principal.permissions:
        return False
    if principal.role == "company_manager" and alarm.company_id != principal.company_id:
        return False
    return principal.station_id in (None, alarm.station_id)


def _within_reach(principal: Principal) -> ColumnElement[bool]:
    """`visible` as SQL."""
    sent = Alarm.received_by == principal.actor
    if "alarms:read" not in principal.permissions:
        return sent
    scope: list[ColumnElement[bool]] = []
    if principal.role == "company_manager":
        scope.append(Alarm.company_id == principal.company_id)
    if principal.station_id is not None:
        scope.append(Alarm.station_id == principal.station_id)
    return or_(sent, and_(*scope)) if scope else true()


async def get(session: AsyncSession, principal: Principal, alarm_id: str) -> Alarm:
    alarm = await session.get(Alarm, alarm_id)
    if alarm is None or not visible(principal, alarm):
        raise NotFound(f"alarm '{alarm_id}' not found")
    return alarm


async def list_alarms(
    session: AsyncSession,
    principal: Principal,
    *,
    account: str | None,
    outcome: str | None,
    reason: str | None,
    station_id: str | None,
    since: dt.datetime | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[Alarm], str | None]:
    """Alarms as received, newest first, within what the caller may see."""
    if principal.station_id is not None and station_id not in (None, principal.station_id):
        raise Forbidden(f"this credential is scoped to station '{principal.station_id}'")
    conditions: list[ColumnElement[bool]] = [_within_reach(principal)]
    if station_id is not None:
        conditions.append(Alarm.station_id == station_id)
    if account is not None:
        conditions.append(Alarm.account == account)
    if outcome is not None:
        conditions.append(Alarm.outcome == outcome)
    if reason is not None:
        conditions.append(Alarm.reason == reason)
    if since is not None:
        conditions.append(Alarm.received_at >= since)
    stmt: Select[Any] = select(Alarm).where(and_(*conditions))
    return await paginate(session, stmt, Alarm.id, cursor, limit, newest_first=True)
