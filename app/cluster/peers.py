"""Guards whose sockets are on other replicas, kept in this replica's live index.

Dispatch on any replica must see every connected guard. Each replica:

- records which replica holds each guard's socket (`guard_presence.replica_id`, written
  when a socket opens or closes here) and beats its heartbeat (`replicas`);
- every `sync_s` reads the presence rows changed since its last look (positions come
  from the other replicas' write-behind) and places those guards in its live index,
  dispatchable while the replica holding their socket is alive;
- on each event another replica recorded, refreshes what the event may have changed:
  the engagement of the guards it names (offered / en route / free), registry facts of
  guards and companies, unstaffed incidents and broadcasts.

Staleness: a remote guard's position is at most `position_flush_interval_s + sync_s`
old (plus one read); its engagement follows the event feed (milliseconds); a replica
that dies takes its guards out of the others' dispatch within `DEAD_AFTER_S`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select, update

from app.cluster import replica
from app.cluster.replica import database_now
from app.dispatch import engagement, roster
from app.geo.live_index import GuardEntry
from app.geo.zones import parse_jurisdiction
from app.models import Guard, GuardPresence, PoliceStation, SecurityCompany
from app.realtime.close_codes import CloseCode

if TYPE_CHECKING:
    from app.context import AppContext

log = logging.getLogger(__name__)

MARGIN = dt.timedelta(seconds=2)  # rows committed a little after their changed_at
EVENT_DEBOUNCE_S = 0.005  # let a burst of events name its guards once


class Peers:
    """What this replica knows of guards connected to the others."""

    def __init__(self, ctx: AppContext, replica_id: str) -> None:
        self.ctx = ctx
        self.replica_id = replica_id
        self.started_at = ctx.clock.now()
        self.alive: set[str] = {replica_id}
        self._where: dict[str, str] = {}  # remote guard → the replica holding its socket
        self._cursor: dt.datetime | None = None
        self._sockets: dict[str, bool] = {}  # guard → socket open here, not yet written
        self._socket_writer: asyncio.Task[None] | None = None
        self._writing: dict[str, bool] = {}  # the batch being written now
        # guard → changed_at this replica wrote when the guard's socket opened here
        self._socket_written: dict[str, dt.datetime] = {}
        self._guards: set[str] = set()  # named by remote events: engagement to refresh
        self._registry: set[str] = set()  # guards whose registry facts changed elsewhere
        self._companies: set[str] = set()
        self._unstaffed: set[str] = set()
        self._broadcasts = False
        self._stations: set[str] = set()  # jurisdictions changed elsewhere
        self._refresher: asyncio.Task[None] | None = None
        ctx.hub.guard_listeners.append(self.guard_socket)

    # This replica's sockets --------------------------------------------------------

    def guard_socket(self, guard_id: str, connected: bool) -> None:
        """Hub listener: written behind, latest state per guard, in batches."""
        self._sockets[guard_id] = connected
        if self._socket_writer is None or self._socket_writer.done():
            self._socket_writer = asyncio.get_running_loop().create_task(
                self._write_sockets(), name="replica-sockets"
            )

    async def _write_sockets(self) -> None:
        while self._sockets:
            batch, self._sockets = self._sockets, {}
            self._writing = batch
            try:
                await self._store_sockets(batch)
            except Exception:
                log.warning("recording %d guard sockets failed; retrying", len(batch))
                self._sockets = {**batch, **self._sockets}
                await asyncio.sleep(1.0)
            finally:
                self._writing = {}

    async def _store_sockets(self, batch: dict[str, bool]) -> None:
        opened = [guard_id for guard_id, up in batch.items() if up]
        closed = [guard_id for guard_id, up in batch.items() if not up]
        async with self.ctx.db.transaction(serial=False) as session:
            now = await database_now(session)
            if opened:
                # Guards without a row have never been on duty: going on duty writes the
                # row with this replica's id (app/dispatch/roster.py set_duty).
                await session.execute(
                    update(GuardPresence)
                    .where(GuardPresence.guard_id.in_(sorted(opened)))
                    .values(replica_id=self.replica_id, changed_at=now)
                )
            if closed:
                # Only where the socket is still ours: the phone may be on another already.
                await session.execute(
                    update(GuardPresence)
                    .where(
                        GuardPresence.guard_id.in_(sorted(closed)),
                        GuardPresence.replica_id == self.replica_id,
                    )
                    .values(replica_id=None, changed_at=now)
                )
        for guard_id in opened:
            self._socket_written[guard_id] = now
        for guard_id in closed:
            self._socket_written.pop(guard_id, None)
        if closed:
            await self._read_presence(GuardPresence.guard_id.in_(closed))

    # The sync pass -----------------------------------------------------------------

    async def run(self) -> None:
        sync_s = self.ctx.settings.replica_sync_s
        beat_every = max(1, round(replica.HEARTBEAT_S / sync_s))
        passes = 0
        while True:
            try:
                if passes % beat_every == 0:
                    await replica.heartbeat(self.ctx.db, self.replica_id, self.started_at)
                    await self._check_alive()
                await self.sync()
            except Exception:
                log.warning("replica sync pass failed", exc_info=True)
            passes += 1
            await asyncio.sleep(sync_s)

    async def leave(self) -> None:
        await replica.leave(self.ctx.db, self.replica_id)

    async def _check_alive(self) -> None:
        self.alive = await replica.alive(self.ctx.db) | {self.replica_id}
        for guard_id, holder in list(self._where.items()):
            if holder not in self.alive:
                entry = self.ctx.live.get(guard_id)
                if entry is not None and self.ctx.hub.guard_link(guard_id) is None:
                    self._set_connected(entry, False)
                    # Its replica died with the socket: watched as if it had closed here
                    # (every survivor may; the timer is one row).
                    self.ctx.availability.guard_socket(guard_id, False)
                del self._where[guard_id]

    async def sync(self) -> None:
        """Read the presence rows changed since the last look and apply them. Times are
        the database's (changed_at is written with it), so hosts' clocks do not matter."""
        if self._cursor is None:  # first look: every socket held anywhere, and what moved
            async with self.ctx.db.transaction(readonly=True) as session:
                self._cursor = await database_now(session) - MARGIN
            changed = or_(
                GuardPresence.replica_id.is_not(None),
                GuardPresence.changed_at >= self._cursor - MARGIN,
            )
        else:
            changed = GuardPresence.changed_at >= self._cursor - MARGIN
        newest = await self._read_presence(changed)
        if newest is not None and newest > self._cursor:
            self._cursor = newest

    async def _read_presence(self, condition: Any) -> dt.datetime | None:
        async with self.ctx.db.transaction(readonly=True) as session:
            rows = (await session.execute(select(GuardPresence).where(condition))).scalars().all()
            unknown = [
                row.guard_id
                for row in rows
                if self.ctx.live.get(row.guard_id) is None and (row.on_duty or row.replica_id)
            ]
            if unknown:
                await self._load(session, unknown)
        newest = None
        became_ready = False
        for row in rows:
            if row.changed_at is not None and (newest is None or row.changed_at > newest):
                newest = row.changed_at
            became_ready |= self._apply(row)
        if became_ready:
            self.ctx.availability.poke()
        return newest

    def _apply(self, row: GuardPresence) -> bool:
        """One presence row into the index; True if the guard may now be dispatched."""
        guard_id = row.guard_id
        holder = row.replica_id
        elsewhere = holder is not None and holder != self.replica_id and holder in self.alive
        link = self.ctx.hub.guard_link(guard_id)
        if link is not None:
            # Its socket is here, and this process knows best, unless the phone has since
            # connected to another replica (the row is written last by the newest socket;
            # ours counts once written): one live connection per guard, the newest wins.
            ours = self._socket_written.get(guard_id)
            if elsewhere and ours is not None and row.changed_at and row.changed_at > ours:
                link.close(CloseCode.REPLACED, "replaced by a newer connection")
            return False
        entry = self.ctx.live.get(guard_id)
        if entry is None:
            return False
        was_ready = entry.ready_until > 0
        if elsewhere:
            assert holder is not None
            self._where[guard_id] = holder
        else:
            self._where.pop(guard_id, None)
        if row.on_duty != entry.on_duty:
            self.ctx.live.set_duty(entry, row.on_duty)
        if (
            row.on_duty
            and row.lat is not None
            and row.lon is not None
            and row.located_at is not None
            and row.seen_at is not None
            and row.seen_at.timestamp() >= entry.seen_at
            and (row.lat, row.lon, row.located_at.timestamp())
            != (entry.lat, entry.lon, entry.located_at)
        ):
            self.ctx.live.move(
                entry,
                row.lat,
                row.lon,
                row.located_at.timestamp(),
                row.seen_at.timestamp(),
                row.accuracy_m,
            )
        self._set_connected(entry, elsewhere)
        return not was_ready and entry.ready_until > 0

    def _set_connected(self, entry: GuardEntry, connected: bool) -> None:
        if entry.connected != connected or entry.dropped == connected:
            entry.connected = connected
            entry.dropped = not connected
            self.ctx.live.changed.add(entry.guard_id)

    async def _load(self, session: Any, guard_ids: list[str]) -> None:
        """Registry facts and engagement of guards this index has not held yet."""
        rows = await _registry_rows(session, guard_ids)
        held = await engagement.activities(session, guard_ids)
        for guard, company in rows:
            entry = self.ctx.live.put(roster.entry_for(guard, company))
            activity, incident_id = held.get(guard.id, (None, None))
            self.ctx.live.engage(entry, activity, incident_id)
            self._set_connected(entry, False)

    async def settled(self) -> None:
        """Wait until sockets opened or closed here are recorded and what remote events
        asked to refresh is refreshed (tests; the pace of the staleness bound, at once)."""
        for task in (self._socket_writer, self._refresher):
            if task is not None and not task.done():
                await asyncio.wait([task])

    # What other replicas recorded --------------------------------------------------

    def remote_event(self, event: dict[str, Any]) -> None:
        """Event feed listener (events recorded by another replica)."""
        data = event.get("data") or {}
        kind = str(event["type"])
        guard_id = data.get("guard_id")
        if kind.startswith(("guard.", "company.", "user.", "api_key.")):
            # Credentials cached here may have been revoked or their holder suspended.
            self.ctx.principals.clear()
        if kind == "guard.token_revoked" and isinstance(guard_id, str):
            link = self.ctx.hub.guard_link(guard_id)
            if link is not None and link.token_id == data.get("token_id"):
                link.close(CloseCode.UNAUTHORIZED, "device token revoked")
        if isinstance(guard_id, str):
            self._guards.add(guard_id)
            if kind.startswith("guard."):
                self._registry.add(guard_id)
        if kind in ("station.created", "station.updated") and event.get("station_id"):
            self._stations.add(str(event["station_id"]))
        if kind.startswith("company."):
            company_id = data.get("company_id")
            if isinstance(company_id, str):
                self._companies.add(company_id)
        elif kind == "incident.unstaffed" and event.get("incident_id"):
            self._unstaffed.add(str(event["incident_id"]))
        elif kind.startswith("broadcast."):
            self._broadcasts = True
        if self._pending():
            self._schedule_refresh()

    def _pending(self) -> bool:
        return bool(
            self._guards or self._companies or self._unstaffed or self._broadcasts or self._stations
        )

    def _schedule_refresh(self) -> None:
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.get_running_loop().create_task(
                self._refresh(), name="replica-refresh"
            )

    async def _refresh(self) -> None:
        """Until nothing is left to refresh (events go on arriving meanwhile)."""
        while self._pending():
            await asyncio.sleep(EVENT_DEBOUNCE_S)
            stations, self._stations = self._stations, set()
            guards, self._guards = self._guards, set()
            registry, self._registry = self._registry, set()
            companies, self._companies = self._companies, set()
            unstaffed, self._unstaffed = self._unstaffed, set()
            broadcasts, self._broadcasts = self._broadcasts, False
            try:
                if guards:
                    await self._refresh_engagement(sorted(guards))
                for guard_id in registry:
                    if self.ctx.live.get(guard_id) is not None:
                        await roster.load_guard(self.ctx, guard_id)
                if registry:  # duty changes, at once rather than at the next sync
                    await self._read_presence(GuardPresence.guard_id.in_(sorted(registry)))
                if companies:
                    await self._refresh_companies(companies)
                if unstaffed:
                    await self.ctx.availability.load(sorted(unstaffed))
                if broadcasts:
                    await self.ctx.broadcasts.load()
                if stations:
                    await self._refresh_stations(stations)
            except Exception:
                log.warning("refresh after remote events failed; retrying", exc_info=True)
                self._guards |= guards
                self._registry |= registry
                self._companies |= companies
                self._unstaffed |= unstaffed
                self._broadcasts |= broadcasts
                self._stations |= stations
                await asyncio.sleep(1.0)

    async def _refresh_engagement(self, guard_ids: list[str]) -> None:
        async with self.ctx.db.transaction(readonly=True) as session:
            held = await engagement.activities(session, guard_ids)
        freed = False
        for guard_id in guard_ids:
            entry = self.ctx.live.get(guard_id)
            if entry is None:
                continue
            activity, incident_id = held.get(guard_id, (None, None))
            if entry.activity != activity or entry.incident_id != incident_id:
                freed |= activity is None
                self.ctx.live.engage(entry, activity, incident_id)
        if freed:
            self.ctx.availability.poke()

    async def _refresh_stations(self, station_ids: set[str]) -> None:
        async with self.ctx.db.transaction(readonly=True) as session:
            rows = (
                await session.execute(
                    select(PoliceStation.id, PoliceStation.jurisdiction).where(
                        PoliceStation.id.in_(station_ids)
                    )
                )
            ).all()
        for station_id, geojson in rows:
            self.ctx.jurisdictions.put(station_id, parse_jurisdiction(geojson))

    async def _refresh_companies(self, company_ids: set[str]) -> None:
        indexed = [e.guard_id for e in self.ctx.live if e.company_id in company_ids]
        if not indexed:
            return
        async with self.ctx.db.transaction(readonly=True) as session:
            rows = await _registry_rows(session, indexed)
        for guard, company in rows:
            roster.refresh_guard(self.ctx, guard, company)


async def _registry_rows(session: Any, guard_ids: list[str]) -> list[Any]:
    """(guard, company) of these guards."""
    return list(
        (
            await session.execute(
                select(Guard, SecurityCompany)
                .join(SecurityCompany, SecurityCompany.id == Guard.company_id)
                .where(Guard.id.in_(guard_ids))
            )
        ).all()
    )
