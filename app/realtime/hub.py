"""In-process publish/subscribe: committed events and guard messages to live sockets.

With replicas, what another process committed arrives through the event feed
(app/events/feed.py) and `nudge` (app/cluster/relay.py); the hub itself stays local.

Every subscriber owns a bounded queue; a subscriber that falls behind is marked
overflowed and dropped by its own socket task, never slowing the publisher.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


class GuardLink(Protocol):
    """What the hub, the idle sweep and revocation need of a guard's live connection."""

    guard_id: str
    token_id: str
    last_frame_at: float  # time.monotonic() of the last frame received
    closing: tuple[int, str] | None  # (code, reason) once a close has begun

    def push(self, seq: int, frame: dict[str, Any]) -> None: ...

    def nudge(self, seq: int) -> None: ...

    def close(self, code: int, reason: str) -> None: ...


@dataclass(eq=False)
class EventSubscription:
    """One stream client: a filter, a bounded queue, and a flag set when it overflowed."""

    station_id: str | None
    queue: asyncio.Queue[dict[str, Any]]
    holder: str | None = None  # the credential it was opened with (Principal.actor)
    overflowed: asyncio.Event = field(default_factory=asyncio.Event)

    def wants(self, event: dict[str, Any]) -> bool:
        return self.station_id is None or event.get("station_id") == self.station_id


class Hub:
    """Routes committed events to stream subscribers and guard messages to guard sockets."""

    def __init__(self) -> None:
        self._subscriptions: set[EventSubscription] = set()
        self._event_listeners: list[Callable[[dict[str, Any]], None]] = []
        self._guards: dict[str, GuardLink] = {}
        # Called with (guard id, connected) when a guard's first socket opens / last closes.
        self.guard_listeners: list[Callable[[str, bool], None]] = []
        # Called with (guard id, seq) for a frame whose guard has no socket here: with
        # replicas, its socket may be open on another one (app/cluster/relay.py).
        self.elsewhere: Callable[[str, int], None] | None = None

    # Guard sockets: one live connection per guard, the newest wins.

    def attach_guard(self, link: GuardLink) -> GuardLink | None:
        """Register `link` as the guard's connection; returns the one it replaces."""
        previous = self._guards.get(link.guard_id)
        self._guards[link.guard_id] = link
        if previous is None:
            self._tell(link.guard_id, True)
        return previous if previous is not link else None

    def detach_guard(self, link: GuardLink) -> None:
        if self._guards.get(link.guard_id) is link:
            del self._guards[link.guard_id]
            self._tell(link.guard_id, False)

    def _tell(self, guard_id: str, connected: bool) -> None:
        for listener in self.guard_listeners:
            listener(guard_id, connected)

    def guard_link(self, guard_id: str) -> GuardLink | None:
        return self._guards.get(guard_id)

    def guard_links(self) -> list[GuardLink]:
        return list(self._guards.values())

    def deliver(self, guard_id: str, seq: int, frame: dict[str, Any]) -> None:
        """A committed outbox frame: hand it to the guard's socket if one is open."""
        link = self._guards.get(guard_id)
        if link is not None:
            link.push(seq, frame)
        elif self.elsewhere is not None:
            self.elsewhere(guard_id, seq)

    def nudge(self, guard_id: str, seq: int) -> None:
        """Another replica stored frames up to `seq` for this guard: if its socket is
        here, it reads them back from the database."""
        link = self._guards.get(guard_id)
        if link is not None:
            link.nudge(seq)

    # Event stream subscribers.

    def subscribe_events(
        self, station_id: str | None, maxsize: int, holder: str | None = None
    ) -> EventSubscription:
        subscription = EventSubscription(station_id, asyncio.Queue(maxsize=maxsize), holder)
        self._subscriptions.add(subscription)
        return subscription

    def streams_of(self, holder: str) -> int:
        """How many stream subscriptions this credential holds open."""
        return sum(1 for subscription in self._subscriptions if subscription.holder == holder)

    @property
    def event_subscribers(self) -> int:
        return len(self._subscriptions)

    def unsubscribe_events(self, subscription: EventSubscription) -> None:
        self._subscriptions.discard(subscription)

    def on_event(self, listener: Callable[[dict[str, Any]], None]) -> None:
        """Call `listener` for every committed event (in-process consumers, e.g. metrics)."""
        self._event_listeners.append(listener)

    def publish_event(self, event: dict[str, Any]) -> None:
        for listener in self._event_listeners:
            listener(event)
        for subscription in list(self._subscriptions):
            if subscription.overflowed.is_set() or not subscription.wants(event):
                continue
            try:
                subscription.queue.put_nowait(event)
            except asyncio.QueueFull:
                subscription.overflowed.set()
