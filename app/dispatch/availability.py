"""Guards coming and going: unstaffed incidents are offered again, lost guards flagged.

Unstaffed incidents (waves ran out) are kept in memory, rebuilt from the database on
start. A short pass, woken when a guard may have become free (connects, goes on duty,
is released) and at least once a second (guards also move into range), asks the live
index for one dispatchable guard near each of them; only when it finds one does a
transaction run, and there the database decides (the engagement claim). Nothing of this
runs on the location-ping path.

A guard whose socket closes while assigned gets a durable `guard_lost` timer; if the phone
is still away when it fires, operators see `assignment.guard_lost`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.dispatch import assignments, decisions, engine, timers
from app.dispatch.policy import policy_for
from app.geo.live_index import GuardEntry
from app.incidents.lifecycle import OPEN
from app.models import Assignment, Incident

if TYPE_CHECKING:
    from app.context import AppContext

log = logging.getLogger(__name__)

GUARD_LOST = "guard_lost"
GUARD_LOST_GRACE_S = 60.0  # a phone dropping for a tunnel or a lift is not yet lost
DEBOUNCE_S = 0.1  # let a burst (connect, duty, location) settle into one pass
SWEEP_S = 1.0  # guards also become reachable by moving: look at least this often


class AvailabilityWatch:
    """The in-memory set of unstaffed incidents and the pass that re-offers them."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.unstaffed: dict[str, decisions.Unstaffed] = {}
        self.refused: dict[str, frozenset[str]] = {}  # per incident, as the database said
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        ctx.hub.guard_listeners.append(self.guard_socket)

    def remember(self, item: decisions.Unstaffed) -> None:
        """After commit: this incident ran out of waves."""
        self.unstaffed[item.incident_id] = item
        self.poke()

    def forget(self, incident_id: str) -> None:
        self.unstaffed.pop(incident_id, None)
        self.refused.pop(incident_id, None)

    def poke(self) -> None:
        """A guard may have become available."""
        if self.unstaffed:
            self._wake.set()

    async def load(self, incident_ids: list[str] | None = None) -> int:
        """The unstaffed incidents as the database has them: all on start, or these (made
        unstaffed by another replica)."""
        stmt = select(Incident).where(
            Incident.unstaffed.is_(True), Incident.status.in_(tuple(OPEN))
        )
        if incident_ids is not None:
            stmt = stmt.where(Incident.id.in_(incident_ids))
        async with self.ctx.db.transaction(readonly=True) as session:
            rows = (await session.scalars(stmt)).all()
        for incident in rows:
            if decisions.may_restaff(
                incident.status, True, incident.assigned_count, incident.required_guards
            ):
                policy = policy_for(incident.category, incident.priority, self.ctx.settings.policy)
                self.remember(
                    decisions.unstaffed(
                        incident.id, incident.lat, incident.lon, policy, incident.wave
                    )
                )
        return len(self.unstaffed)

    async def run(self) -> None:
        """The pass, woken by `poke` or every SWEEP_S."""
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), SWEEP_S)
                await asyncio.sleep(DEBOUNCE_S)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.sweep()
            except Exception:
                log.exception("restaffing pass failed")

    async def sweep(self) -> int:
        """Offer each unstaffed incident to the guards now available near it."""
        offered = 0
        for item in list(self.unstaffed.values()):
            if self._someone_near(item):
                offered += await self._restaff(item.incident_id)
        return offered

    def _someone_near(self, item: decisions.Unstaffed) -> bool:
        refused = self.refused.get(item.incident_id, frozenset())

        def fits(entry: GuardEntry) -> bool:
            return entry.guard_id not in refused and item.required_skills <= entry.skills

        found = self.ctx.live.nearest(
            item.lat,
            item.lon,
            k=1,
            radius_m=item.radius_m,
            now=self.ctx.clock.now().timestamp(),
            accept=fits,
        )
        return bool(found)

    async def _restaff(self, incident_id: str) -> int:
        async with self.ctx.db.transaction() as session:
            outcome = await engine.restaff(session, self.ctx, incident_id)
        if outcome is None:
            self.forget(incident_id)
            return 0
        sent, refused = outcome
        self.refused[incident_id] = refused
        return sent

    # Sockets -----------------------------------------------------------------------

    def guard_socket(self, guard_id: str, connected: bool) -> None:
        """Hub listener: a guard's only socket opened or closed."""
        if connected:
            self.poke()
            return
        entry = self.ctx.live.get(guard_id)
        if entry is not None and entry.activity in assignments.ACTIVE:
            task = asyncio.get_running_loop().create_task(self._watch_lost(guard_id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _watch_lost(self, guard_id: str) -> None:
        due = self.ctx.clock.now() + dt.timedelta(seconds=GUARD_LOST_GRACE_S)
        for attempt, wait_s in enumerate((0.0, 1.0, 5.0, 15.0, 30.0)):
            await asyncio.sleep(wait_s)  # the database may be what dropped the socket
            try:
                async with self.ctx.db.transaction() as session:
                    await timers.schedule(session, self.ctx, GUARD_LOST, guard_id, due)
                return
            except Exception:
                log.warning(
                    "could not start the guard-lost timer (attempt %d)",
                    attempt + 1,
                    extra={"guard_id": guard_id},
                    exc_info=True,
                )


async def guard_lost(session: AsyncSession, ctx: AppContext, guard_id: str) -> None:
    """Timer handler: the assigned guard's phone stayed away through the grace period."""
    if ctx.hub.guard_link(guard_id) is not None:
        return  # back in time
    entry = ctx.live.get(guard_id)
    if entry is not None and entry.connected:
        return  # back in time, on another replica (app/cluster/peers.py)
    rows = await session.scalars(
        select(Assignment).where(
            Assignment.guard_id == guard_id, Assignment.status.in_(assignments.ACTIVE)
        )
    )
    for assignment in rows.all():
        incident = await session.get(Incident, assignment.incident_id)
        assert incident is not None
        await ctx.events.record(
            session,
            type="assignment.guard_lost",
            actor=engine.ACTOR,
            at=ctx.clock.now(),
            incident_id=incident.id,
            station_id=incident.station_id,
            data={
                "assignment_id": assignment.id,
                "guard_id": guard_id,
                "grace_s": GUARD_LOST_GRACE_S,
            },
        )
