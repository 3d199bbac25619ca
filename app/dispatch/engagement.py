"""Claiming and releasing guards. The guard_engagements primary key is the arbiter.

After commit the live index learns what the guard now does (offered / en_route /
on_scene, or free) and on which incident: dispatch reads it, consoles show it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

from sqlalchemy import ARRAY, String, Table, bindparam, delete, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import after_commit
from app.models import Assignment, GuardEngagement
from app.models.status import AssignmentStatus, EngagementKind

if TYPE_CHECKING:
    from app.context import AppContext

_ENGAGEMENTS = cast(Table, GuardEngagement.__table__)
# [SQLite, PostgreSQL]: the primary key decides; the guards won come back.
_CLAIM = tuple(
    dialect.insert(_ENGAGEMENTS).on_conflict_do_nothing().returning(_ENGAGEMENTS.c.guard_id)
    for dialect in (sqlite, postgresql)
)


# Transaction-scoped, per guard, taken without waiting: the guards this transaction may claim.
_TRY_GUARD_LOCKS = text(
    "SELECT g FROM unnest(:ids) AS g WHERE pg_try_advisory_xact_lock(hashtextextended(g, 1))"
).bindparams(bindparam("ids", type_=ARRAY(String())))


async def claim(
    session: AsyncSession,
    ctx: AppContext,
    guard_id: str,
    incident_id: str,
    kind: str,
    ref_id: str,
    now: dt.datetime,
) -> bool:
    """Engage the guard for this offer/assignment; False when someone else holds them."""
    return bool(await claim_many(session, ctx, incident_id, kind, [(guard_id, ref_id)], now))


async def claim_many(
    session: AsyncSession,
    ctx: AppContext,
    incident_id: str,
    kind: str,
    claims: Sequence[tuple[str, str]],
    now: dt.datetime,
) -> set[str]:
    """Engage distinct guards, (guard, offer/assignment id) each, in one statement;
    returns the guards won.

    `INSERT … ON CONFLICT DO NOTHING RETURNING guard_id`: the primary key decides, so a
    guard held elsewhere is simply not returned.
    """
    if not claims:
        return set()
    connection = await session.connection()
    postgres = connection.dialect.name == "postgresql"
    if postgres:
        # Never wait for another transaction's claim on the same guard (an INSERT would
        # wait for its uncommitted row, and two waves claiming in several batches could
        # wait for each other): a guard someone is claiming right now is skipped.
        free = set(
            (await connection.execute(_TRY_GUARD_LOCKS, {"ids": sorted(g for g, _ in claims)}))
            .scalars()
            .all()
        )
        claims = [(guard_id, ref_id) for guard_id, ref_id in claims if guard_id in free]
        if not claims:
            return set()
    rows = [
        {
            "guard_id": guard_id,
            "incident_id": incident_id,
            "kind": kind,
            "ref_id": ref_id,
            "since": now,
        }
        # In guard order: concurrent waves claiming overlapping guards wait for each
        # other in one order, never in a cycle (PostgreSQL has no writer lock).
        for guard_id, ref_id in sorted(claims)
    ]
    # executemany with RETURNING: SQLAlchemy sends one INSERT … VALUES (…), (…) (cached).
    result = await connection.execute(_CLAIM[postgres], rows)
    won = set(result.scalars())
    activity = "offered" if kind == EngagementKind.OFFER else AssignmentStatus.EN_ROUTE
    for guard_id, _ in claims:
        if guard_id in won:
            show(session, ctx, guard_id, activity, incident_id)
    return won


async def release(session: AsyncSession, ctx: AppContext, guard_id: str, ref_id: str) -> bool:
    """Free the guard if this offer/assignment is what holds them."""
    result = await session.execute(
        delete(GuardEngagement).where(
            GuardEngagement.guard_id == guard_id, GuardEngagement.ref_id == ref_id
        )
    )
    released = bool(result.rowcount)  # type: ignore[attr-defined]
    if released:
        show(session, ctx, guard_id, None, None)
    return released


async def convert_to_assignment(
    session: AsyncSession,
    ctx: AppContext,
    guard_id: str,
    offer_id: str,
    assignment_id: str,
    incident_id: str,
) -> bool:
    """The accepted offer's hold becomes the assignment's hold, without a gap."""
    result = await session.execute(
        update(GuardEngagement)
        .where(GuardEngagement.guard_id == guard_id, GuardEngagement.ref_id == offer_id)
        .values(kind=EngagementKind.ASSIGNMENT, ref_id=assignment_id)
    )
    converted = bool(result.rowcount)  # type: ignore[attr-defined]
    if converted:
        show(session, ctx, guard_id, AssignmentStatus.EN_ROUTE, incident_id)
    return converted


async def current(session: AsyncSession, guard_id: str) -> GuardEngagement | None:
    return await session.scalar(select(GuardEngagement).where(GuardEngagement.guard_id == guard_id))


async def activities(
    session: AsyncSession, guard_ids: list[str] | None = None
) -> dict[str, tuple[str, str]]:
    """guard id → (activity, incident id) of engaged guards (all, or these), from the holds
    and their assignments' status; for rebuilding the live index."""
    stmt = select(
        GuardEngagement.guard_id,
        GuardEngagement.kind,
        GuardEngagement.incident_id,
        Assignment.status,
    ).outerjoin(Assignment, Assignment.id == GuardEngagement.ref_id)
    if guard_ids is not None:
        stmt = stmt.where(GuardEngagement.guard_id.in_(guard_ids))
    return {
        guard_id: (activity_of(kind, status), incident_id)
        for guard_id, kind, incident_id, status in (await session.execute(stmt)).all()
    }


def activity_of(kind: str, assignment_status: str | None) -> str:
    """offered for an offer hold; the assignment's status (en_route / on_scene) otherwise."""
    if kind == EngagementKind.OFFER:
        return "offered"
    active = (AssignmentStatus.EN_ROUTE, AssignmentStatus.ON_SCENE)
    return assignment_status if assignment_status in active else AssignmentStatus.EN_ROUTE


def show(
    session: AsyncSession,
    ctx: AppContext,
    guard_id: str,
    activity: str | None,
    incident_id: str | None,
) -> None:
    """Once this transaction commits, the live index shows the guard doing `activity`."""
    after_commit(session, lambda: _flag(ctx, guard_id, activity, incident_id))


def _flag(ctx: AppContext, guard_id: str, activity: str | None, incident_id: str | None) -> None:
    entry = ctx.live.get(guard_id)
    if entry is not None:
        ctx.live.engage(entry, activity, incident_id)
    if activity is None:
        ctx.availability.poke()  # free again: an unstaffed incident may want them
