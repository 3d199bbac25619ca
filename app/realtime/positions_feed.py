"""The positions feed behind `/ws/positions`: one ticker per process, coalesced updates.

While at least one console is connected, a ticker wakes every
`positions_feed_interval_s`, takes the ids the live index marked as changed since the
last tick (plus guards whose state time alone has changed: gone stale, licence run out),
describes each once and compares it with what it last published. The changed set is
then filtered per client by box and company and serialised without re-encoding what the
clients share. However many pings a guard sent, a client gets at most one update of it
per tick. Each client has a bounded queue; one that does not keep up is closed (4008)
by its own socket task and never slows the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from app.clock import isoformat
from app.dispatch.guard_state import state_expires_at
from app.realtime.close_codes import CloseCode
from app.realtime.positions_view import (
    GuardPosition,
    Names,
    Viewer,
    describe,
    encode,
    full_json,
    item_body,
    positions_in_view,
    read_names,
    update_json,
)

if TYPE_CHECKING:
    from app.context import AppContext

log = logging.getLogger(__name__)

SEND_QUEUE = 16  # frames waiting for one client: 16 s of updates, or a few snapshots
NAME_ATTEMPTS = 3  # snapshot name reads when guards keep appearing while one is read


@dataclass(eq=False)
class FeedClient:
    """One console socket: its view, what it has been told, and its outgoing frames."""

    viewer: Viewer
    queue: asyncio.Queue[str] = field(default_factory=lambda: asyncio.Queue(SEND_QUEUE))
    known: set[str] = field(default_factory=set)  # guards it holds (snapshot or updates)
    synced: int = -1  # the feed's tick count when its last snapshot was taken
    # Set when the socket must close: (code, reason); its task does the closing.
    closing: tuple[int, str] | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def put(self, text: str) -> None:
        if self.closing is not None:
            return
        try:
            self.queue.put_nowait(text)
        except asyncio.QueueFull:
            self.close(CloseCode.SLOW, "slow consumer: reconnect for a fresh snapshot")

    def close(self, code: int, reason: str) -> None:
        if self.closing is None:
            self.closing = (code, reason)
            self.stop.set()


class PositionsFeed:
    """The shared ticker and its clients; the ticker runs only while a client is connected."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self._clients: set[FeedClient] = set()
        self._task: asyncio.Task[None] | None = None
        self._published: dict[str, GuardPosition] = {}  # what the last ticks sent out
        self._due: dict[int, list[str]] = {}  # epoch second → guards whose state may turn
        self._due_at: dict[str, int] = {}  # guard → its current entry in _due
        self._names: Names = {}  # guards published, for clients that meet them later
        self.ticks = 0

    @property
    def clients(self) -> int:
        return len(self._clients)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def subscribe(self, client: FeedClient) -> None:
        self._clients.add(client)
        if not self.running:
            self._collect(self.ctx.clock.now().timestamp())  # the baseline: sends nothing
            self._task = asyncio.get_running_loop().create_task(self._run(), name="positions-feed")

    def unsubscribe(self, client: FeedClient) -> None:
        self._clients.discard(client)

    async def stop(self) -> None:
        """On shutdown: ask every client to close (1001) and end the ticker."""
        for client in list(self._clients):
            client.close(CloseCode.SHUTDOWN, "server shutting down")
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def send_snapshot(self, client: FeedClient, viewer: Viewer) -> None:
        """Queue a `positions.snapshot` of `viewer`'s view; later updates build on it."""
        live = self.ctx.live
        names: Names = {}
        for _ in range(NAME_ATTEMPTS):
            now = self.ctx.clock.now().timestamp()
            wanted = [
                p.guard_id for p in positions_in_view(live, viewer, now) if p.guard_id not in names
            ]
            if not wanted:
                break
            async with self.ctx.db.transaction(readonly=True) as session:
                names.update(await read_names(session, wanted))
        # From here to the put nothing awaits: the view, what the client knows and the
        # frame change together, between two ticks.
        now_dt = self.ctx.clock.now()
        positions = positions_in_view(live, viewer, now_dt.timestamp())
        self._names.update(names)
        client.viewer = viewer
        client.known = {p.guard_id for p in positions}
        client.synced = self.ticks
        items = ",".join(full_json(p, item_body(p), names) for p in positions)
        client.put(f'{{"type":"positions.snapshot","at":"{isoformat(now_dt)}","items":[{items}]}}')

    async def _run(self) -> None:
        interval = self.ctx.settings.positions_feed_interval_s
        try:
            while self._clients:
                await asyncio.sleep(interval)
                try:
                    await self.tick()
                except Exception:
                    log.exception("positions feed tick failed; next tick will retry")
        finally:
            self._published.clear()
            self._due.clear()
            self._due_at.clear()
            self._names.clear()

    async def tick(self) -> None:
        """Publish what changed since the last tick to every client that can see it."""
        now_dt = self.ctx.clock.now()
        changed, gone = self._collect(now_dt.timestamp())
        self.ticks += 1
        mark = self.ticks
        if not changed and not gone:
            return
        missing = [p.guard_id for p in changed if p.guard_id not in self._names]
        if missing:
            async with self.ctx.db.transaction(readonly=True) as session:
                self._names.update(await read_names(session, missing))
        self._fan_out(changed, gone, isoformat(now_dt), mark)

    def _collect(self, now: float) -> tuple[list[GuardPosition], list[str]]:
        """What changed since the last call: new or changed positions, and guards gone."""
        live = self.ctx.live
        ids, live.changed = live.changed, set()
        if self._due:
            for second in [s for s in self._due if s <= now]:
                for guard_id in self._due.pop(second):
                    if self._due_at.get(guard_id) == second:
                        del self._due_at[guard_id]
                        ids.add(guard_id)
        fresh_after = now - live.freshness_s
        changed: list[GuardPosition] = []
        gone: list[str] = []
        for guard_id in ids:
            entry = live.get(guard_id)
            position = None if entry is None else describe(entry, now, fresh_after)
            if position is None:
                if self._published.pop(guard_id, None) is not None:
                    gone.append(guard_id)
                    self._due_at.pop(guard_id, None)
                    self._names.pop(guard_id, None)
                continue
            assert entry is not None
            if self._published.get(guard_id) != position:
                self._published[guard_id] = position
                changed.append(position)
            self._schedule(position, entry.eligible_until)
        changed.sort()
        gone.sort()
        return changed, gone

    def _schedule(self, position: GuardPosition, eligible_until: float) -> None:
        """Look at this guard again when time alone will have changed its state."""
        until = state_expires_at(
            position.state,
            seen_at=position.seen_at,
            freshness_s=self.ctx.live.freshness_s,
            eligible_until=eligible_until,
        )
        guard_id = position.guard_id
        if math.isinf(until):
            self._due_at.pop(guard_id, None)
            return
        second = math.floor(until) + 1  # strictly after: stale means older than the window
        if self._due_at.get(guard_id) != second:
            self._due_at[guard_id] = second
            self._due.setdefault(second, []).append(guard_id)

    def _fan_out(self, changed: list[GuardPosition], gone: list[str], at: str, mark: int) -> None:
        """Each client's share of the tick. Clients with the same view (most consoles watch
        the whole city) share the filtering and the encoded items; per client there remain
        set operations for who is new to it and who left its view."""
        views: dict[Viewer, _TickView] = {}
        for client in list(self._clients):
            if client.synced >= mark or client.closing is not None:
                continue  # its snapshot is newer than what this tick collected
            view = views.get(client.viewer)
            if view is None:
                view = views[client.viewer] = _TickView(client.viewer, changed, gone)
            known = client.known
            left = sorted(known.intersection(view.hidden))
            known.difference_update(left)
            if known.issuperset(view.ids):
                items = view.joined()
            else:
                items = ",".join(
                    view.update(p)
                    if p.guard_id in known
                    else full_json(p, view.body(p), self._names)
                    for p in view.visible
                )
                known.update(view.ids)
            if items or left:
                client.put(
                    f'{{"type":"positions","at":"{at}","items":[{items}],"gone":{encode(left)}}}'
                )


class _TickView:
    """One tick as seen through one viewer: who is in view, who is not, encoded once."""

    __slots__ = ("visible", "ids", "hidden", "_bodies", "_updates", "_joined")

    def __init__(self, viewer: Viewer, changed: list[GuardPosition], gone: list[str]) -> None:
        self.visible = [p for p in changed if viewer.sees(p)]
        self.ids = [p.guard_id for p in self.visible]
        in_view = set(self.ids)
        self.hidden = {p.guard_id for p in changed if p.guard_id not in in_view}
        self.hidden.update(gone)
        self._bodies: dict[str, str] = {}
        self._updates: dict[str, str] = {}
        self._joined: str | None = None

    def body(self, position: GuardPosition) -> str:
        body = self._bodies.get(position.guard_id)
        if body is None:
            body = self._bodies[position.guard_id] = item_body(position)
        return body

    def update(self, position: GuardPosition) -> str:
        item = self._updates.get(position.guard_id)
        if item is None:
            item = self._updates[position.guard_id] = update_json(position, self.body(position))
        return item

    def joined(self) -> str:
        """Every visible item as an update, for a client that knows them all."""
        if self._joined is None:
            self._joined = ",".join(self.update(p) for p in self.visible)
        return self._joined
