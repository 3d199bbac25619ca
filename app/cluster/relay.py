"""LISTEN/NOTIFY between replicas on one dedicated PostgreSQL connection.

Notifications carry ids, never payloads: `e` (events committed: read the table) and
`g guard:seq` (frames stored for a guard: its socket, wherever it is, reads them back).
They are sent after commit, batched, from this connection. A notification can be lost (a
replica dies between commit and send, the connection drops); what the relay promises is
only a quick wake-up. The tables stay the truth: after every reconnect the relay calls
`resync`, and the readers poll anyway (app/events/feed.py, app/cluster/sweep.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import asyncpg

from app.observability import Metrics

log = logging.getLogger(__name__)

CHANNEL = "dispatch"
MAX_PAYLOAD = 7800  # PostgreSQL's limit is 8000 bytes
BACKOFF_S = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0)
KEEPALIVE_S = 5.0  # a connection that does not answer within it is dropped and replaced

Handler = Callable[[list[str]], None]


@dataclass
class _Outgoing:
    events: bool = False
    # kind → key → item: a guard's newer seq replaces its older one, so what waits while
    # the connection is down stays bounded by the number of guards.
    items: dict[str, dict[str, str]] = field(default_factory=dict)


def encode(origin: str, sent_at: float, kind: str, items: list[str]) -> list[str]:
    """Payloads of at most MAX_PAYLOAD bytes: `origin|sent_at|kind|item,item,…`."""
    head = f"{origin}|{sent_at:.6f}|{kind}|"
    payloads: list[str] = []
    chunk: list[str] = []
    size = len(head)
    for item in items:
        if chunk and size + len(item) + 1 > MAX_PAYLOAD:
            payloads.append(head + ",".join(chunk))
            chunk = []
            size = len(head)
        chunk.append(item)
        size += len(item) + 1
    payloads.append(head + ",".join(chunk))
    return payloads


def _set(event: asyncio.Event, *_args: object) -> None:
    event.set()


def decode(payload: str) -> tuple[str, float, str, list[str]]:
    origin, sent_at, kind, items = payload.split("|", 3)
    return origin, float(sent_at), kind, [item for item in items.split(",") if item]


class Relay:
    """Tells the other replicas what committed here; hands what they tell to handlers."""

    def __init__(
        self, dsn: str, replica_id: str, metrics: Metrics, connect_timeout_s: float = 5.0
    ) -> None:
        self.dsn = dsn
        self.replica_id = replica_id
        self.metrics = metrics
        self.connect_timeout_s = connect_timeout_s
        self.handlers: dict[str, Handler] = {}
        self.resync: list[Callable[[], None]] = []
        self._out = _Outgoing()
        self._pending = asyncio.Event()

    # Sending (sync, from after-commit callbacks) ---------------------------------------

    def events_committed(self) -> None:
        self._out.events = True
        self._pending.set()

    def send(self, kind: str, item: str, key: str | None = None) -> None:
        """Queue `item`; a later item with the same `key` replaces it."""
        self._out.items.setdefault(kind, {})[key or item] = item
        self._pending.set()

    def _take(self) -> list[str]:
        out, self._out = self._out, _Outgoing()
        now = time.time()
        payloads = [f"{self.replica_id}|{now:.6f}|e|"] if out.events else []
        for kind, items in out.items.items():
            payloads.extend(encode(self.replica_id, now, kind, list(items.values())))
        return payloads

    # The connection ----------------------------------------------------------------------

    async def run(self) -> None:
        attempt = 0
        while True:
            connection: asyncpg.Connection | None = None
            try:
                # Connecting and LISTEN both bounded: a stalled server must not hold us.
                async with asyncio.timeout(self.connect_timeout_s + KEEPALIVE_S):
                    connection = await asyncpg.connect(self.dsn, timeout=self.connect_timeout_s)
                    lost = asyncio.Event()
                    connection.add_termination_listener(partial(_set, lost))
                    await connection.add_listener(CHANNEL, self._heard)
                if attempt:
                    log.info("relay connection back after %d attempts; resynchronising", attempt)
                attempt = 0
                for resync in self.resync:
                    resync()  # what was notified while we were away is in the tables
                await self._serve(connection, lost)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as e:
                log.warning("relay connection lost (%s); reconnecting", type(e).__name__)
            except Exception:
                log.exception("relay failed; reconnecting")
            finally:
                if connection is not None:
                    connection.terminate()
            delay = BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)]
            attempt += 1
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))

    async def _serve(self, connection: asyncpg.Connection, lost: asyncio.Event) -> None:
        """Send what is pending; check the connection answers now and then."""
        while not lost.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(KEEPALIVE_S):
                    await self._pending.wait()
            self._pending.clear()
            payloads = self._take()
            async with asyncio.timeout(KEEPALIVE_S):
                if not payloads:
                    await connection.execute("SELECT 1")
                for payload in payloads:
                    await connection.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)

    def _heard(self, _connection: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            origin, sent_at, kind, items = decode(payload)
        except ValueError:
            log.warning("unreadable notification %r", payload[:80])
            return
        if origin == self.replica_id:
            return
        self.metrics.notify_lag.observe(max(0.0, time.time() - sent_at))
        handler = self.handlers.get(kind)
        if handler is not None:
            try:
                handler(items)
            except Exception:
                log.exception("notification handler %s failed", kind)
