"""Location pings: checked, applied to the live index at once, written behind in batches."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from app.geo.distance import haversine_m
from app.geo.live_index import GuardEntry
from app.models import GuardPresence, PositionHistory
from app.realtime.frames import FrameError, Location

if TYPE_CHECKING:
    from app.context import AppContext
    from app.settings import Settings

log = logging.getLogger(__name__)
UTC = dt.UTC


def check_ping(
    entry: GuardEntry, lat: float, lon: float, at: float, now: float, settings: Settings
) -> FrameError | None:
    """Why a ping must be refused, or None. Pure: times are epoch seconds."""
    if at > now + settings.max_ping_future_s:
        return FrameError("invalid_location", "location.at: is in the future", ref="location")
    if at < now - settings.max_ping_age_s:
        return FrameError("invalid_location", "location.at: is too old", ref="location")
    if entry.located_at:
        elapsed = at - entry.located_at
        if elapsed <= 0:
            return FrameError(
                "stale_location",
                "location.at: not after the last accepted position",
                ref="location",
            )
        speed = haversine_m(entry.lat, entry.lon, lat, lon) / elapsed
        if speed > settings.max_ping_speed_mps:
            return FrameError(
                "invalid_location",
                f"location: impossible jump ({speed:.0f} m/s since the last position)",
                ref="location",
            )
    return None


PRUNE_BATCH = 5000  # history rows deleted per transaction


class PositionWriter:
    """Coalesces accepted positions per guard and writes them in one transaction per tick."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self._latest: dict[str, dict[str, Any]] = {}
        self._history: list[dict[str, Any]] = []
        self._last_history: dict[str, float] = {}
        self._flushing = asyncio.Lock()

    def ingest(self, entry: GuardEntry, frame: Location) -> None:
        """Apply a validated location frame, or raise FrameError; no I/O."""
        settings = self.ctx.settings
        if not entry.on_duty:
            raise FrameError(
                "off_duty", "location: ignored while off duty (send duty on first)", ref="location"
            )
        now = self.ctx.clock.now().timestamp()
        at = frame.at.timestamp()
        problem = check_ping(entry, frame.lat, frame.lon, at, now, settings)
        if problem is not None:
            raise problem
        self.ctx.live.move(entry, frame.lat, frame.lon, at, now, frame.accuracy_m)
        entry.connected = True
        self._latest[entry.guard_id] = {
            "guard_id": entry.guard_id,
            "on_duty": True,
            "lat": frame.lat,
            "lon": frame.lon,
            "accuracy_m": frame.accuracy_m,
            "heading": frame.heading,
            "speed_mps": frame.speed_mps,
            "located_at": frame.at,
            "seen_at": dt.datetime.fromtimestamp(now, UTC),
            "changed_at": dt.datetime.fromtimestamp(now, UTC),  # other replicas read by it
        }
        if at - self._last_history.get(entry.guard_id, 0.0) >= settings.position_history_interval_s:
            self._last_history[entry.guard_id] = at
            self._history.append(
                {
                    "guard_id": entry.guard_id,
                    "lat": frame.lat,
                    "lon": frame.lon,
                    "accuracy_m": frame.accuracy_m,
                    "located_at": frame.at,
                }
            )

    def forget(self, guard_id: str) -> None:
        """The guard went off duty: its last position is not written (history already
        taken while on duty is, and is purged with the rest after the retention)."""
        self._latest.pop(guard_id, None)
        self._last_history.pop(guard_id, None)

    @property
    def backlog(self) -> int:
        return len(self._latest) + len(self._history)

    async def flush(self) -> int:
        """Write what has accumulated, in short transactions; on failure it is kept. One
        flush at a time: when it returns, every position taken before the call is written
        (or kept for the next one), including those a flush already under way had taken."""
        async with self._flushing:
            return await self._flush()

    async def _flush(self) -> int:
        if not self._latest and not self._history:
            return 0
        latest, history = list(self._latest.values()), self._history
        self._latest, self._history = {}, []
        chunk = self.ctx.settings.position_flush_chunk
        written = 0
        try:
            # Short transactions: on SQLite the writer lock is released between chunks,
            # so a dispatch transaction waits for one chunk at most, never a whole tick.
            while written < len(latest):
                await self._write_latest(latest[written : written + chunk])
                written += chunk
            for start in range(0, len(history), chunk):
                async with self.ctx.db.transaction(serial=False) as session:
                    await session.execute(insert(PositionHistory), history[start : start + chunk])
        except Exception:
            for row in latest[written:]:
                self._latest.setdefault(row["guard_id"], row)
            self._history[:0] = history
            raise
        return len(latest) + len(history)

    async def _write_latest(self, rows: list[dict[str, Any]]) -> None:
        async with self.ctx.db.transaction(serial=False) as session:
            dialect = session.get_bind().dialect.name
            upsert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(
                GuardPresence
            )
            # on_duty is written by the duty handler only: a late flush must not undo "off",
            # nor put back the position going off duty cleared.
            columns = (
                *("lat", "lon", "accuracy_m", "heading", "speed_mps"),
                *("located_at", "seen_at", "changed_at"),
            )
            values: dict[str, Any] = {c: upsert.excluded[c] for c in columns}
            if dialect == "postgresql":  # replicas read by the database's clock
                values["changed_at"] = func.now()
            stmt = upsert.on_conflict_do_update(
                index_elements=["guard_id"],
                set_=values,
                where=GuardPresence.on_duty.is_(True),
            )
            await session.execute(stmt, sorted(rows, key=lambda row: row["guard_id"]))

    async def run(self) -> None:
        interval = self.ctx.settings.position_flush_interval_s
        while True:
            await asyncio.sleep(interval)
            try:
                await self.flush()
            except Exception:
                log.exception("position write-behind failed; will retry")

    async def prune_history(self) -> int:
        cutoff = self.ctx.clock.now() - dt.timedelta(
            hours=self.ctx.settings.position_history_retention_h
        )
        # In batches, each its own short transaction: other writers (and, on SQLite, the
        # whole event loop) wait for one batch at most.
        oldest = (
            select(PositionHistory.id)
            .where(PositionHistory.located_at < cutoff)
            .order_by(PositionHistory.id)
            .limit(PRUNE_BATCH)
        )
        removed = 0
        while True:
            async with self.ctx.db.transaction(serial=False) as session:
                result = await session.execute(
                    delete(PositionHistory).where(PositionHistory.id.in_(oldest.scalar_subquery()))
                )
            batch = int(result.rowcount or 0)  # type: ignore[attr-defined]
            removed += batch
            if batch < PRUNE_BATCH:
                return removed
