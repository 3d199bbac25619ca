"""The recognition ledger: awards written in the transaction of the event that earns them,
and read back as a guard's record and as leaderboards.

`PointsLedger` is one of the event log's outbox writers: it sees every event as it is
recorded, so an award is exactly as durable as the event, and a replayed or repeated
event earns nothing twice (the ledger's unique key is guard, rule and what earned it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, cast

from sqlalchemy import Table, and_, func, select, true
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.ids import new_id
from app.models import Assignment, Event, Guard, Incident, IntelReport, PointAward, SecurityCompany
from app.models.status import AssignmentStatus
from app.paging import decode_cursor, encode_cursor
from app.supervision import points
from app.supervision.period import Period

_AWARDS = cast(Table, PointAward.__table__)
_AWARD = {
    "sqlite": sqlite.insert(_AWARDS).on_conflict_do_nothing(),
    "postgresql": postgresql.insert(_AWARDS).on_conflict_do_nothing(),
}
Handler = Callable[[AsyncSession, Event], Awaitable[tuple[list[points.Award], str | None]]]


class PointsLedger:
    """Turns events into awards (rules in app/supervision/points.py); drills earn nothing."""

    def __init__(self, table: Mapping[str, int]) -> None:
        self.table = dict(table)
        self._handlers: dict[str, Handler] = {
            "assignment.on_scene": _on_scene,
            "escalation.handed_over": _handed_over,
            "intel.triaged": _intel_triaged,
            "incident.commendation": _feedback,
            "incident.complaint": _feedback,
            "assignment.cleared": _stood_down,
            "assignment.guard_lost": _stood_down,
        }

    async def __call__(self, session: AsyncSession, event: Event) -> None:
        handler = self._handlers.get(event.type)
        if handler is None or event.data.get("exercise"):
            return
        awards, station_id = await handler(session, event)
        rows = []
        for award in awards:
            value = self.table[award.rule]
            guard = await session.get(Guard, award.guard_id)
            if value == 0 or guard is None:
                continue
            rows.append(
                {
                    "id": new_id("pts"),
                    "guard_id": guard.id,
                    "company_id": guard.company_id,
                    "station_id": station_id,
                    "incident_id": event.incident_id,
                    "rule": award.rule,
                    "points": value,
                    "reason": award.reason[:300],
                    "ref": award.ref,
                    "at": event.at,
                }
            )
        if rows:
            await session.execute(_AWARD[session.get_bind().dialect.name], rows)


async def _on_scene(session: AsyncSession, event: Event) -> tuple[list[points.Award], str | None]:
    incident = await session.get(Incident, event.incident_id)
    if incident is None:
        return [], None
    # A guard who reported the incident starts on scene: reporting is not responding, so
    # the first guard to answer the call is still the first on scene.
    others = await session.scalar(
        select(func.count())
        .select_from(Assignment)
        .where(
            Assignment.incident_id == incident.id,
            Assignment.id != event.data["assignment_id"],
            Assignment.on_scene_at.is_not(None),
            Assignment.source != "report",
        )
    )
    awards = points.on_scene(
        event.data["guard_id"], incident.id, incident.priority, first=not others
    )
    return awards, incident.station_id


async def _handed_over(
    session: AsyncSession, event: Event
) -> tuple[list[points.Award], str | None]:
    incident = await session.get(Incident, event.incident_id)
    if incident is None:
        return [], None
    on_scene = await session.scalars(
        select(Assignment.guard_id).where(
            Assignment.incident_id == incident.id,
            Assignment.status == AssignmentStatus.ON_SCENE,
        )
    )
    return points.handover(incident.id, on_scene.all()), incident.station_id


async def _intel_triaged(
    session: AsyncSession, event: Event
) -> tuple[list[points.Award], str | None]:
    data = event.data
    station_id = await session.scalar(
        select(IntelReport.station_id).where(IntelReport.id == data["intel_id"])
    )
    return points.intel_verdict(data["guard_id"], data["intel_id"], data["state"]), station_id


async def _feedback(session: AsyncSession, event: Event) -> tuple[list[points.Award], str | None]:
    incident = await session.get(Incident, event.incident_id)
    if incident is None:
        return [], None
    kind = event.type.removeprefix("incident.")
    data = event.data
    return points.feedback(
        kind, data["guard_id"], data["feedback_id"], data.get("text", "")
    ), incident.station_id


async def _stood_down(session: AsyncSession, event: Event) -> tuple[list[points.Award], str | None]:
    incident = await session.get(Incident, event.incident_id)
    guard_id = event.data["guard_id"]
    assignment = await session.get(Assignment, event.data["assignment_id"])
    if incident is None or assignment is None:
        return [], None
    awards = points.stood_down(
        guard_id,
        incident.id,
        accepted_offer=assignment.offer_id is not None,
        reached_scene=assignment.on_scene_at is not None,
        own_doing=event.type == "assignment.guard_lost" or event.actor == f"guard:{guard_id}",
    )
    return awards, incident.station_id


# Reading ---------------------------------------------------------------------------------


async def guard_points(
    session: AsyncSession,
    guard_id: str,
    period: Period,
    cursor: str | None,
    limit: int,
    *,
    station_id: str | None = None,
) -> dict[str, Any]:
    """The guard's ledger in the period, newest first, with all-time and period totals
    (for a station-scoped caller, what was earned at that station only)."""
    mine = and_(
        PointAward.guard_id == guard_id,
        PointAward.station_id == station_id if station_id else true(),
    )
    total = await session.scalar(select(func.coalesce(func.sum(PointAward.points), 0)).where(mine))
    in_period = and_(mine, PointAward.at >= period.start, PointAward.at < period.end)
    period_total = await session.scalar(
        select(func.coalesce(func.sum(PointAward.points), 0)).where(in_period)
    )
    stmt = select(PointAward).where(in_period)
    after = decode_cursor(cursor)
    if after is not None:
        stmt = stmt.where(PointAward.id < after)
    rows = list((await session.scalars(stmt.order_by(PointAward.id.desc()).limit(limit + 1))).all())
    next_cursor = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return {
        "guard_id": guard_id,
        "total": int(total or 0),
        "period_total": int(period_total or 0),
        "items": rows[:limit],
        "next_cursor": next_cursor,
    }


async def leaderboard(
    session: AsyncSession,
    period: Period,
    *,
    company_id: str | None,
    station_id: str | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Guards by points earned in the period (in a company, or on a station's incidents),
    highest first, ties by name; tied guards share a rank (1, 1, 3)."""
    earned = func.sum(PointAward.points).label("points")
    stmt = (
        select(
            Guard.id,
            Guard.name,
            Guard.company_id,
            SecurityCompany.name,
            earned,
            func.count().label("awards"),
        )
        .join(Guard, Guard.id == PointAward.guard_id)
        .join(SecurityCompany, SecurityCompany.id == Guard.company_id)
        .where(PointAward.at >= period.start, PointAward.at < period.end)
        .group_by(Guard.id, Guard.name, Guard.company_id, SecurityCompany.name)
        .order_by(earned.desc(), Guard.name, Guard.id)
        .limit(limit)
    )
    if company_id:
        stmt = stmt.where(PointAward.company_id == company_id)
    if station_id:  # earned on the station's incidents (intel is the guard's, not theirs)
        stmt = stmt.where(PointAward.station_id == station_id, PointAward.incident_id.is_not(None))
    items: list[dict[str, Any]] = []
    for position, (guard_id, name, company, company_name, score, awards) in enumerate(
        await session.execute(stmt), start=1
    ):
        tied = items and items[-1]["points"] == score
        items.append(
            {
                "rank": items[-1]["rank"] if tied else position,
                "guard_id": guard_id,
                "name": name,
                "company_id": company,
                "company_name": company_name,
                "points": int(score),
                "awards": int(awards),
            }
        )
    return items
