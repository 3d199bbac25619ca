"""Claiming and releasing guards. The guard_engagements primary key is the arbiter."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import after_commit
from app.models import GuardEngagement

if TYPE_CHECKING:
    from app.context import AppContext


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
    insert = postgresql.insert if session.bind.dialect.name == "postgresql" else sqlite.insert
    stmt = (
        insert(GuardEngagement)
        .values(guard_id=guard_id, incident_id=incident_id, kind=kind, ref_id=ref_id, since=now)
        .on_conflict_do_nothing()
        .returning(GuardEngagement.guard_id)
    )
    won = (await session.execute(stmt)).scalar_one_or_none() is not None
    if won:
        after_commit(session, lambda: _flag(ctx, guard_id, True))
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
        after_commit(session, lambda: _flag(ctx, guard_id, False))
    return released


async def convert_to_assignment(
    session: AsyncSession, guard_id: str, offer_id: str, assignment_id: str
) -> bool:
    """The accepted offer's hold becomes the assignment's hold, without a gap."""
    result = await session.execute(
        update(GuardEngagement)
        .where(GuardEngagement.guard_id == guard_id, GuardEngagement.ref_id == offer_id)
        .values(kind="assignment", ref_id=assignment_id)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def current(session: AsyncSession, guard_id: str) -> GuardEngagement | None:
    return await session.scalar(select(GuardEngagement).where(GuardEngagement.guard_id == guard_id))


def _flag(ctx: AppContext, guard_id: str, engaged: bool) -> None:
    entry = ctx.live.get(guard_id)
    if entry is not None:
        entry.engaged = engaged
