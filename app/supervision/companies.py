"""The regulator's view of security companies: licences, staff, certificates, turnover,
how their guards performed, and what the police said about them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Feedback, Guard, Incident, PointAward, SecurityCompany
from app.supervision import response
from app.supervision.expiry import WARN_DAYS, licence_state
from app.supervision.period import Period


async def companies_report(
    session: AsyncSession,
    period: Period,
    today: dt.date,
    *,
    company_id: str | None,
    station_id: str | None = None,
) -> list[dict[str, Any]]:
    """Per company; a station-scoped caller's KPIs, feedback and points are their
    station's incidents' only."""
    stmt = select(SecurityCompany).order_by(SecurityCompany.name, SecurityCompany.id)
    if company_id:
        stmt = stmt.where(SecurityCompany.id == company_id)
    companies = list((await session.scalars(stmt)).all())
    if not companies:
        return []
    statuses: dict[str, dict[str, int]] = {}
    for found_id, status, n in await session.execute(
        select(Guard.company_id, Guard.status, func.count()).group_by(
            Guard.company_id, Guard.status
        )
    ):
        statuses.setdefault(found_id, {})[status] = int(n)
    active = Guard.status == "active"
    soon = today + dt.timedelta(days=WARN_DAYS)
    expiring = await _count(
        session,
        active,
        Guard.certificate_expires_on >= today,
        Guard.certificate_expires_on <= soon,
    )
    expired = await _count(session, active, Guard.certificate_expires_on < today)
    at_start = await _count(session, *_employed_on(period, period.first))
    at_end = await _count(session, *_employed_on(period, period.last))
    departures = await _count(session, Guard.left_on >= period.first, Guard.left_on <= period.last)
    kpis = await response.response_report(
        session, response.Scope(period, "company", station_id=station_id)
    )
    kpi_rows = {row["key"]: row for row in kpis["items"]}
    said = await _feedback(session, period, station_id)
    earned = {
        company_id: int(total or 0)
        for company_id, total in await session.execute(
            select(PointAward.company_id, func.sum(PointAward.points))
            .where(PointAward.at >= period.start, PointAward.at < period.end)
            .where(PointAward.station_id == station_id if station_id else true())
            .group_by(PointAward.company_id)
        )
    }
    items = []
    for company in companies:
        days_left = (company.licence_expires_on - today).days
        start, end = at_start.get(company.id, 0), at_end.get(company.id, 0)
        average = (start + end) / 2
        left = departures.get(company.id, 0)
        counts = statuses.get(company.id, {})
        row = kpi_rows.get(company.id) or {**response.EMPTY}
        items.append(
            {
                "id": company.id,
                "name": company.name,
                "licence_no": company.licence_no,
                "status": company.status,
                "licence_expires_on": company.licence_expires_on,
                "licence_days_left": days_left,
                "licence_state": licence_state(days_left),
                "guards": {s: counts.get(s, 0) for s in ("active", "suspended", "left")},
                "certificates_expiring": expiring.get(company.id, 0),
                "certificates_expired": expired.get(company.id, 0),
                "turnover": {
                    "departures": left,
                    "headcount_start": start,
                    "headcount_end": end,
                    "average_headcount": average,
                    "rate": round(left / average, 4) if average else None,
                },
                "kpis": {**row, "key": company.id, "name": company.name},
                "commendations": said.get((company.id, "commendation"), 0),
                "complaints": said.get((company.id, "complaint"), 0),
                "points": int(earned.get(company.id) or 0),
            }
        )
    return items


def _employed_on(period: Period, day: dt.date) -> list[ColumnElement[bool]]:
    """On the company's books that day: joined by its end and not yet left (a guard who
    left before `left_on` was kept has no date: gone, whenever it was)."""
    joined = Guard.created_at < period.day_start(day + dt.timedelta(days=1))
    stayed = and_(Guard.left_on.is_(None), Guard.status != "left")
    return [joined, or_(stayed, Guard.left_on > day)]


async def _count(session: AsyncSession, *conditions: ColumnElement[bool]) -> dict[str, int]:
    rows = await session.execute(
        select(Guard.company_id, func.count()).where(*conditions).group_by(Guard.company_id)
    )
    return {company_id: int(n) for company_id, n in rows}


async def _feedback(
    session: AsyncSession, period: Period, station_id: str | None
) -> dict[tuple[str, str], int]:
    """Commendations and complaints in the period; drills never count."""
    stmt = (
        select(Feedback.company_id, Feedback.kind, func.count())
        .join(Incident, Incident.id == Feedback.incident_id)
        .where(
            Feedback.created_at >= period.start,
            Feedback.created_at < period.end,
            Incident.exercise.is_(False),
        )
        .group_by(Feedback.company_id, Feedback.kind)
    )
    if station_id:
        stmt = stmt.where(Incident.station_id == station_id)
    return {(company_id, kind): int(n) for company_id, kind, n in await session.execute(stmt)}
