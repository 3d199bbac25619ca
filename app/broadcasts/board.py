"""The active broadcasts in memory, so a guard who comes into reach gets each one once.

The rule: a guard that is, at any moment before a broadcast expires, on duty, eligible
(guard and company active, certificate valid), connected, and with a fresh position
inside the circle, gets the broadcast once. The creation queues it for the dispatchable
guards inside at that moment (the live index's `within`); the board catches the rest as
they come into reach: when a guard's socket opens (by its last fresh position) and on
every accepted location ping, which covers guards busy with an incident, guards coming on
duty (placed by their first ping) and guards moving inside. A ping costs one distance per
active broadcast the guard does not yet have, and nothing when none is active.

The database decides "once" (app.broadcasts.service.deliver); the board only keeps the
common case off it. It also records when a copy was first sent on a socket (`sent`),
written behind in the background, for the delivered count.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from sqlalchemy import select

from app.broadcasts import service
from app.broadcasts.service import Circle
from app.geo.distance import haversine_m
from app.geo.live_index import GuardEntry
from app.models import Broadcast, BroadcastRecipient

if TYPE_CHECKING:
    from app.context import AppContext

log = logging.getLogger(__name__)


class BroadcastBoard:
    """Active broadcasts and the guards that already hold a copy of each."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.active: dict[str, Circle] = {}
        self.reached: dict[str, set[str]] = {}
        self._marks: dict[tuple[str, str], None] = {}  # (broadcast, guard) sent, not written
        self._writer: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[int]] = set()
        ctx.hub.guard_listeners.append(self.guard_socket)

    async def load(self) -> int:
        """On start: the broadcasts still active and who holds them, as stored."""
        now = self.ctx.clock.now()
        async with self.ctx.db.transaction(readonly=True) as session:
            broadcasts = (
                await session.scalars(select(Broadcast).where(Broadcast.expires_at > now))
            ).all()
            ids = [b.id for b in broadcasts]
            holders = (
                await session.execute(
                    select(BroadcastRecipient.broadcast_id, BroadcastRecipient.guard_id).where(
                        BroadcastRecipient.broadcast_id.in_(ids)
                    )
                )
            ).all()
        for broadcast in broadcasts:
            self.add(Circle.of(broadcast), ())
        for broadcast_id, guard_id in holders:
            self.reached[broadcast_id].add(guard_id)
        return len(broadcasts)

    def add(self, circle: Circle, reached: Iterable[str]) -> None:
        """After commit: a new broadcast and the guards it was queued for."""
        self.active[circle.id] = circle
        self.reached.setdefault(circle.id, set()).update(reached)

    def due(self, entry: GuardEntry, now: float) -> list[Circle]:
        """The active broadcasts this guard is inside of and does not hold yet. No I/O."""
        if (
            not entry.on_duty
            or not entry.eligible
            or entry.eligible_until <= now
            or not entry.connected
            or not entry.seen_at
            or entry.seen_at < now - self.ctx.live.freshness_s
        ):
            return []
        found = []
        for circle in list(self.active.values()):
            if circle.expires_at <= now:
                del self.active[circle.id]
                self.reached.pop(circle.id, None)
                continue
            if entry.guard_id in self.reached[circle.id]:
                continue
            if haversine_m(circle.lat, circle.lon, entry.lat, entry.lon) <= circle.radius_m:
                found.append(circle)
        return found

    async def reach(self, entry: GuardEntry) -> int:
        """Queue for this guard every active broadcast it is inside of and lacks; how
        many it was queued. Errors are logged: a ping never fails for a broadcast."""
        due = self.due(entry, self.ctx.clock.now().timestamp())
        if not due:
            return 0
        guard_id = entry.guard_id
        queued = 0
        try:
            async with self.ctx.db.transaction(serial=False) as session:
                for circle in due:
                    won = await service.deliver(
                        session, self.ctx, circle.id, circle.frame, [guard_id]
                    )
                    queued += len(won)
        except Exception:
            log.exception("queueing broadcasts for guard %s failed", guard_id)
            return 0
        for circle in due:  # held now, by this transaction or an earlier one
            if circle.id in self.reached:
                self.reached[circle.id].add(guard_id)
        return queued

    def guard_socket(self, guard_id: str, connected: bool) -> None:
        """Hub listener: a guard's socket opened; its last fresh position may be inside."""
        if not connected or not self.active:
            return
        entry = self.ctx.live.get(guard_id)
        if entry is None:
            return
        task = asyncio.get_running_loop().create_task(
            self.reach(entry), name=f"broadcasts-{guard_id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def sent(self, guard_id: str, broadcast_id: str) -> None:
        """A copy went out on the guard's socket (called by its sender)."""
        self._marks[(broadcast_id, guard_id)] = None
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(
                self._write_marks(), name="broadcast-delivered"
            )

    async def _write_marks(self) -> None:
        while self._marks:
            marks = list(self._marks)
            self._marks.clear()
            try:
                async with self.ctx.db.transaction(serial=False) as session:
                    await service.mark_delivered(session, marks, self.ctx.clock.now())
            except Exception:
                log.exception("recording %d broadcast deliveries failed", len(marks))
