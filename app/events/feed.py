"""The event feed: committed events, published to this process's hub in id order, gapless.

SQLite: one process writes, every writer holds the write lock through commit, so events
commit in id order and go to the hub straight from the after-commit callback.

PostgreSQL: writers on every replica commit concurrently, in any order. Each replica's
feed reads the events table after the last id it published, up to the watermark
(app/events/watermark.py), and publishes in id order. A local commit wakes it at once;
another replica's commit wakes it by NOTIFY (app/cluster/relay.py); a poll every
second covers a lost notification. Subscribers on any replica see the same sequence.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, select, text

from app.audit.chain import CHAIN_WRITERS_HOLDERS
from app.clock import isoformat
from app.db import Database
from app.events.watermark import Gap, Snapshot, advance
from app.models import Event
from app.observability import Metrics
from app.realtime.hub import Hub

log = logging.getLogger(__name__)

PAGE = 500
POLL_S = 1.0  # at least this often, whatever was (not) notified
GAP_RETRY_S = (0.002, 0.005, 0.01, 0.02, 0.05)  # while ids are in flight
LOCAL_IDS = 100_000  # ids recorded here, remembered to tell local from remote events
STARTUP_LOOKBACK = 1000  # ids below the newest re-read at start, in case some were in flight
NARROW_AFTER_S = 0.1  # a gap open this long: check which of its blockers write events
XID32 = 0xFFFF_FFFF
_EVENT_WRITERS = text(
    "SELECT transactionid::text::bigint FROM pg_locks WHERE locktype = 'transactionid' "
    f"AND virtualtransaction IN ({CHAIN_WRITERS_HOLDERS})"
)

_EVENTS = cast(Table, Event.__table__)
_PAGE = (
    select(
        _EVENTS.c.id,
        _EVENTS.c.type,
        _EVENTS.c.incident_id,
        _EVENTS.c.station_id,
        _EVENTS.c.actor,
        _EVENTS.c.at,
        _EVENTS.c.data,
        text("pg_current_snapshot()::text AS snapshot"),
    )
    .where(_EVENTS.c.id > bindparam("after"))
    .order_by(_EVENTS.c.id)
    .limit(PAGE)
)

EventListener = Callable[[dict[str, Any]], None]


class EventFeed:
    """Publishes committed events to the hub, in id order; `published` is the watermark."""

    def __init__(self, db: Database, hub: Hub, metrics: Metrics) -> None:
        self.db = db
        self.hub = hub
        self.metrics = metrics
        self.published = 0  # every event with an id at or below it is published or gone
        self._gap: Gap | None = None
        self._gap_since = 0.0
        self.started = False  # PostgreSQL: caught up once from the table
        self._wake = asyncio.Event()
        self._local: OrderedDict[int, None] = OrderedDict()
        # Called for events recorded by another replica (what this one must learn).
        self.remote_listeners: list[EventListener] = []
        # Called with nothing when a local commit recorded events (NOTIFY the others).
        self.local_listeners: list[Callable[[], None]] = []

    # Writers ---------------------------------------------------------------------------

    def committed(self, payloads: list[dict[str, Any]]) -> None:
        """After-commit: events this process recorded."""
        if self.db.is_sqlite:
            for payload in payloads:
                self._publish(payload)
            return
        for payload in payloads:
            self._local[int(payload["id"])] = None
        while len(self._local) > LOCAL_IDS:
            self._local.popitem(last=False)
        self._wake.set()
        for listener in self.local_listeners:
            listener()

    def wake(self) -> None:
        """Another replica committed events (or may have: resynchronise)."""
        self._wake.set()

    def _publish(self, payload: dict[str, Any]) -> None:
        event_id = int(payload["id"])
        self.published = max(self.published, event_id)
        self.hub.publish_event(payload)
        recorded_here = self.db.is_sqlite or event_id in self._local
        self._local.pop(event_id, None)
        if recorded_here:
            return
        for listener in self.remote_listeners:
            try:
                listener(payload)
            except Exception:
                log.exception("event listener failed on %s", payload["type"])

    async def now(self, wait_s: float = 2.0) -> int:
        """The watermark once everything committed before this call is published (at most
        `wait_s`): where a stream opened now starts."""
        async with self.db.transaction(readonly=True) as session:
            newest = int(await session.scalar(select(func.max(Event.id))) or 0)
        if self.db.is_sqlite:
            return newest
        deadline = time.monotonic() + wait_s
        while self.published < newest and time.monotonic() < deadline:
            self._wake.set()
            await asyncio.sleep(0.002)
        return self.published

    # PostgreSQL ------------------------------------------------------------------------

    async def start(self) -> None:
        """Where to begin: just below the newest event, then catch up quietly (nobody is
        subscribed yet, and what happened before the start is in the tables)."""
        if self.db.is_sqlite:
            async with self.db.transaction(readonly=True) as session:
                self.published = int(await session.scalar(select(func.max(Event.id))) or 0)
            self.started = True
            return
        async with self.db.transaction(readonly=True) as session:
            newest = int(await session.scalar(select(func.max(Event.id))) or 0)
        self.published = max(0, newest - STARTUP_LOOKBACK)
        await self._catch_up(quiet=True)
        self.started = True

    async def _catch_up(self, *, quiet: bool = False) -> None:
        """Page after page while pages come full and nothing is in flight."""
        while await self.step(quiet=quiet) == PAGE and self._gap is None:
            pass

    async def run(self) -> None:
        """PostgreSQL: publish what committed, whenever woken or every POLL_S."""
        while not self.started:  # the database was not there at startup: start now
            try:
                await self.start()
            except Exception:
                log.warning("event feed cannot start yet; retrying", exc_info=True)
                await asyncio.sleep(1.0)
        retry = 0
        while True:
            try:
                if not self._wake.is_set():
                    await _wait(self._wake, POLL_S)
                self._wake.clear()
                await self._catch_up()
                if self._gap is None:
                    retry = 0
                    continue
                if time.monotonic() - self._gap_since > NARROW_AFTER_S:
                    await self._narrow_gap()
                # Ids in flight: look again shortly, a little later each time.
                await asyncio.sleep(GAP_RETRY_S[min(retry, len(GAP_RETRY_S) - 1)])
                retry += 1
                self._wake.set()
            except Exception:
                log.warning("event feed pass failed; retrying", exc_info=True)
                await asyncio.sleep(1.0)

    async def step(self, *, quiet: bool = False) -> int:
        """One page: read after the watermark, publish what may go. Returns rows read."""
        async with self.db.transaction(readonly=True) as session:
            rows = (await session.execute(_PAGE, {"after": self.published})).all()
        if not rows:
            return 0
        snapshot = Snapshot.parse(rows[0].snapshot)
        decided = advance(self.published, [row.id for row in rows], snapshot, self._gap)
        if decided.gap is not None and (self._gap is None or decided.gap.upto != self._gap.upto):
            self._gap_since = time.monotonic()
        self._gap = decided.gap
        wanted = set(decided.publish)
        now = time.time()
        for row in rows:
            if row.id not in wanted:
                continue
            if quiet:
                self._local.pop(row.id, None)
                continue
            self._publish(
                {
                    "id": str(row.id),
                    "type": row.type,
                    "incident_id": row.incident_id,
                    "station_id": row.station_id,
                    "actor": row.actor,
                    "at": isoformat(row.at),
                    "data": row.data,
                }
            )
            self.metrics.feed_lag.observe(max(0.0, now - row.at.timestamp()))
        self.published = max(self.published, decided.published)
        return len(rows)

    async def _narrow_gap(self) -> None:
        """Keep, of the gap's blockers, only transactions that write events (they hold
        the chain writers' lock from before they draw an id until they end): an idle
        session left open elsewhere on the server must not hold the stream."""
        gap = self._gap
        if gap is None:
            return
        async with self.db.transaction(readonly=True) as session:
            writers = {int(x) for x in (await session.scalars(_EVENT_WRITERS)).all()}
        if self._gap is gap:  # xid8 in snapshots, 32-bit xid in pg_locks
            self._gap = Gap(gap.upto, frozenset(b for b in gap.blockers if (b & XID32) in writers))


async def _wait(event: asyncio.Event, timeout_s: float) -> None:
    try:
        async with asyncio.timeout(timeout_s):
            await event.wait()
    except TimeoutError:
        pass
