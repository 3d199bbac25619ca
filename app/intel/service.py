"""Intel reports: stored from the guard's frame, listed for triage, triaged by the police.

An intel report is not an incident: nobody is dispatched and the reporter is not put on
scene. It lands in the triage queue of the station whose jurisdiction holds the place
(as incidents do). Triage moves `new` to `useful`, `not_useful` or `acted_on`, and
`useful` on to `acted_on`; the verdict and its note reach the guard through the outbox.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Select, and_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.principal import Principal
from app.errors import Conflict, NotFound
from app.ids import new_id
from app.models import IntelReport
from app.paging import paginate
from app.realtime import outbox
from app.realtime.frames import Report, intel_feedback_frame

if TYPE_CHECKING:
    from app.context import AppContext

# The states a verdict may be given from: `not_useful` and `acted_on` are final.
TRIAGE_FROM: dict[str, frozenset[str]] = {
    "useful": frozenset({"new"}),
    "not_useful": frozenset({"new"}),
    "acted_on": frozenset({"new", "useful"}),
}


async def receive(
    session: AsyncSession, ctx: AppContext, principal: Principal, report: Report
) -> IntelReport:
    """Store a guard's intel report and put it in its station's triage queue."""
    assert principal.guard_id is not None and report.subject is not None
    now = ctx.clock.now()
    jurisdiction = ctx.jurisdictions.locate(report.lat, report.lon)
    intel = IntelReport(
        id=new_id("intel"),
        guard_id=principal.guard_id,
        subject=report.subject,
        description=report.description,
        lat=report.lat,
        lon=report.lon,
        station_id=jurisdiction.station_id if jurisdiction else None,
        station_match=jurisdiction.match if jurisdiction else None,
        state="new",
        reported_at=now,
    )
    session.add(intel)
    await ctx.events.record(
        session,
        type="intel.reported",
        actor=principal.actor,
        at=now,
        station_id=intel.station_id,
        data={
            "intel_id": intel.id,
            "guard_id": intel.guard_id,
            "subject": intel.subject,
            "description": intel.description,
            "location": intel.location,
            "station_match": intel.station_match,
        },
    )
    return intel


def _not_found(intel_id: str) -> NotFound:
    return NotFound(f"intel report '{intel_id}' not found")


async def get_intel(session: AsyncSession, principal: Principal, intel_id: str) -> IntelReport:
    """The report; another station's answers 404 to a station-scoped caller."""
    intel = await session.get(IntelReport, intel_id)
    if intel is None or principal.station_id not in (None, intel.station_id):
        raise _not_found(intel_id)
    return intel


async def list_intel(
    session: AsyncSession,
    principal: Principal,
    *,
    station_id: str | None,
    states: list[str],
    guard_id: str | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[IntelReport], str | None]:
    """The triage queue, newest first; a station-scoped caller sees its station only."""
    station_id = principal.own_station(station_id)
    conditions: list[ColumnElement[bool]] = []
    if station_id is not None:
        conditions.append(IntelReport.station_id == station_id)
    if states:
        conditions.append(IntelReport.state.in_(states))
    if guard_id is not None:
        conditions.append(IntelReport.guard_id == guard_id)
    stmt: Select[Any] = select(IntelReport)
    if conditions:
        stmt = stmt.where(and_(*conditions))
    return await paginate(session, stmt, IntelReport.id, cursor, limit, newest_first=True)


async def triage(
    session: AsyncSession,
    ctx: AppContext,
    principal: Principal,
    intel_id: str,
    state: str,
    note: str,
) -> IntelReport:
    """Give the report a verdict; the guard is told (durably) and an event is recorded.

    A conditional UPDATE decides: of two verdicts racing, one finds the state it needs.
    """
    current = await get_intel(session, principal, intel_id)
    now = ctx.clock.now()
    allowed = TRIAGE_FROM[state]
    result = await session.execute(
        update(IntelReport)
        .where(IntelReport.id == intel_id, IntelReport.state.in_(allowed))
        .values(state=state, note=note, triaged_by=principal.actor, triaged_at=now)
        .returning(IntelReport.state)
        .execution_options(synchronize_session=False)
    )
    if result.first() is None:
        await session.refresh(current)
        raise Conflict(
            f"cannot mark intel report '{intel_id}' {state} in state '{current.state}'",
            code="invalid_transition",
            details={"current_state": current.state, "requested": state},
        )
    await session.refresh(current)
    sender = principal.name
    await outbox.enqueue(
        session,
        ctx,
        current.guard_id,
        intel_feedback_frame(current.id, current.subject, state, note, sender),
    )
    await ctx.events.record(
        session,
        type="intel.triaged",
        actor=principal.actor,
        at=now,
        station_id=current.station_id,
        data={
            "intel_id": current.id,
            "guard_id": current.guard_id,
            "subject": current.subject,
            "state": state,
            "note": note,
            "from": sender,
        },
    )
    return current
