"""Durable timers: rows with a due time, fired by an in-process scheduler.

A timer is deleted in the same transaction that handles it, so it fires exactly once
even when the scheduler runs twice or the process dies mid-way (the row survives a
rollback and fires after the restart). With replicas every process runs a scheduler:
each claims a due row with `FOR UPDATE SKIP LOCKED`, so one fires it and the others
pass over it without waiting. A replica wakes at its own timers' due times and looks at
least every 5 s, so a timer set by a replica that died fires within that of its due time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import after_commit, is_unavailable
from app.models import Timer

if TYPE_CHECKING:
    from app.context import AppContext

log = logging.getLogger(__name__)

Handler = Callable[[AsyncSession, "AppContext", str], Awaitable[Any]]
_RETRY_S = (1, 5, 30, 120, 600)


def _schedule(insert: Callable[[Table], Any]) -> Any:
    stmt = insert(_TIMERS)
    return stmt.on_conflict_do_update(
        index_elements=["kind", "subject_id"],
        set_={"due_at": stmt.excluded.due_at, "attempts": 0},
    )


_TIMERS = cast(Table, Timer.__table__)
# [SQLite, PostgreSQL]: an upsert, so scheduling again moves the timer.
_SCHEDULE = (_schedule(sqlite.insert), _schedule(postgresql.insert))


async def schedule(
    session: AsyncSession, ctx: AppContext, kind: str, subject_id: str, due_at: dt.datetime
) -> None:
    """Set (or move) the `kind` timer of `subject_id` to `due_at`."""
    await schedule_many(session, ctx, kind, [(subject_id, due_at)])


async def schedule_many(
    session: AsyncSession,
    ctx: AppContext,
    kind: str,
    timers: Sequence[tuple[str, dt.datetime]],
) -> None:
    """Set (or move) the `kind` timers of distinct subjects, (subject_id, due_at) each, in
    one statement."""
    if not timers:
        return
    rows = [
        {"kind": kind, "subject_id": subject_id, "due_at": due_at, "attempts": 0}
        for subject_id, due_at in timers
    ]
    connection = await session.connection()
    await connection.execute(_SCHEDULE[connection.dialect.name == "postgresql"], rows)
    after_commit(session, ctx.scheduler.wake)


async def cancel(session: AsyncSession, kind: str, subject_id: str) -> None:
    """Drop the `kind` timer of `subject_id`, unless it is being fired right now.

    Never waits for a firing timer's row lock: the firing transaction holds it while its
    handler waits for the incident this caller may hold, a deadlock. A timer that fires
    anyway finds its subject settled and does nothing (every handler checks state).
    """
    firing_or_not = (
        select(Timer.id)
        .where(Timer.kind == kind, Timer.subject_id == subject_id)
        .with_for_update(skip_locked=True)
    )
    await session.execute(delete(Timer).where(Timer.id.in_(firing_or_not.scalar_subquery())))


def _claimable(timer_id: int) -> Any:
    """The timer's row, unless another transaction holds it (PostgreSQL; SQLite has one
    writer at a time and ignores the clause)."""
    return select(Timer.id).where(Timer.id == timer_id).with_for_update(skip_locked=True)


class Scheduler:
    """Sleeps until the next due timer (or a wake-up), then fires what is due."""

    def __init__(self, ctx: AppContext, handlers: dict[str, Handler], batch: int = 100) -> None:
        self.ctx = ctx
        self.handlers = handlers
        self.batch = batch
        self._wake = asyncio.Event()
        self._firing = asyncio.Lock()
        ctx.clock.on_change(self.wake)

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            cap_s = 5.0
            try:
                await self.fire_due()
                next_due = await self._next_due()
            except Exception as error:
                if is_unavailable(error):
                    log.warning("scheduler pass: database unavailable; again in 1 s")
                else:
                    log.exception("scheduler pass failed")
                next_due = None
                cap_s = 1.0  # the database is back soon: due timers fire within a second of it
            await self.ctx.clock.sleep_until(next_due, self._wake, cap_s=cap_s)

    async def fire_due(self) -> int:
        """Fire every timer due now; returns how many fired. One pass at a time in this
        process: a caller returns only once a pass already under way is done too (rows
        being fired are skipped, not waited for)."""
        async with self._firing:
            return await self._fire_due()

    async def _fire_due(self) -> int:
        fired = 0
        while True:
            now = self.ctx.clock.now()
            async with self.ctx.db.transaction(readonly=True) as session:
                due = (
                    await session.execute(
                        select(Timer.id, Timer.kind, Timer.subject_id, Timer.attempts, Timer.due_at)
                        .where(Timer.due_at <= now)
                        .order_by(Timer.due_at, Timer.id)
                        .limit(self.batch)
                    )
                ).all()
            for timer_id, kind, subject_id, attempts, due_at in due:
                fired += await self._fire(timer_id, kind, subject_id, attempts, due_at)
            if len(due) < self.batch:
                return fired

    async def _next_due(self) -> dt.datetime | None:
        async with self.ctx.db.transaction(readonly=True) as session:
            return await session.scalar(select(func.min(Timer.due_at)))

    async def _fire(
        self, timer_id: int, kind: str, subject_id: str, attempts: int, due_at: dt.datetime
    ) -> int:
        handler = self.handlers.get(kind)
        try:
            async with self.ctx.db.transaction() as session:
                claimed = await session.execute(
                    delete(Timer).where(Timer.id.in_(_claimable(timer_id).scalar_subquery()))
                )
                if claimed.rowcount != 1:  # type: ignore[attr-defined]
                    return 0  # fired, moved or being fired elsewhere
                late = (self.ctx.clock.now() - due_at).total_seconds()
                self.ctx.metrics.timer_lateness.observe(max(0.0, late))
                if handler is None:
                    log.error("no handler for timer kind %s; dropped", kind)
                    return 0
                await handler(session, self.ctx, subject_id)
            return 1
        except Exception:
            delay = _RETRY_S[min(attempts, len(_RETRY_S) - 1)]
            log.exception(
                "timer %s for %s failed; retry in %s s",
                kind,
                subject_id,
                delay,
                extra={"timer_kind": kind, "subject_id": subject_id},
            )
            async with self.ctx.db.transaction() as session:
                await session.execute(
                    update(Timer)
                    .where(Timer.id == timer_id)
                    .values(
                        attempts=attempts + 1,
                        due_at=self.ctx.clock.now() + dt.timedelta(seconds=delay),
                    )
                )
            return 0
