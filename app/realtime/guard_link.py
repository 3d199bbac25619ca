"""One guard's live socket: a bounded send queue drained by one sender task at a time.

Frames with a `seq` come from the outbox (after commit) and must reach the guard in
order, each once per connection: the sender skips what it already sent and, when it sees
a gap (two commits racing to the hub), reads the missing frames back from the database.
The sender runs only while there is something to send: an idle guard costs no task.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from starlette.websockets import WebSocket, WebSocketState

from app.realtime import outbox

if TYPE_CHECKING:
    from app.context import AppContext

log = logging.getLogger(__name__)

CLOSE_UNAUTHORIZED = 4401
CLOSE_ORIGIN = 4403
CLOSE_IDLE = 4408
CLOSE_REPLACED = 4409
CLOSE_FLOOD = 4429
CLOSE_SLOW = 4008
CLOSE_SHUTDOWN = 1001
CLOSE_GRACE_S = 10.0


class GuardLink:
    """The server side of a guard's websocket (registered with the hub)."""

    def __init__(self, ws: WebSocket, ctx: AppContext, guard_id: str, token_id: str) -> None:
        self.ws = ws
        self.ctx = ctx
        self.guard_id = guard_id
        self.token_id = token_id
        self.outgoing: deque[tuple[int | None, dict[str, Any]]] = deque()
        self.last_sent_seq = 0
        self.last_frame_at = time.monotonic()
        self.closing: tuple[int, str] | None = None
        self._sender: asyncio.Task[None] | None = None
        self._live = False  # welcome and backlog sent: queued frames may go out

    # Called by the hub (sync, from after-commit callbacks) and the receive loop.

    def push(self, seq: int, frame: dict[str, Any]) -> None:
        self._put((seq, frame))

    def reply(self, frame: dict[str, Any]) -> None:
        """A frame without seq (welcome, pong, error): best effort, in order with the rest."""
        self._put((None, frame))

    def _put(self, item: tuple[int | None, dict[str, Any]]) -> None:
        if self.closing is not None:
            return
        if len(self.outgoing) >= self.ctx.settings.ws_send_queue:
            self.close(CLOSE_SLOW, "slow consumer: reconnect and resume")
            return
        self.outgoing.append(item)
        self._wake_sender()

    def _wake_sender(self) -> None:
        if self._live and self.outgoing and (self._sender is None or self._sender.done()):
            self._sender = asyncio.get_running_loop().create_task(
                self._drain(), name=f"guard-sender-{self.guard_id}"
            )

    def close(self, code: int, reason: str) -> None:
        """Ask the connection to close (from any task); the sender does it in order."""
        if self.closing is not None:
            return
        self.closing = (code, reason)
        if self._sender is not None and not self._sender.done():
            self._sender.cancel()
        else:
            asyncio.get_running_loop().create_task(self._close_now())

    async def _close_now(self) -> None:
        code, reason = self.closing or (1000, "")
        with contextlib.suppress(Exception):
            if self.ws.application_state == WebSocketState.CONNECTED:
                # A stalled reader may never let the close frame out: bound the wait.
                await asyncio.wait_for(self.ws.close(code, reason), CLOSE_GRACE_S)

    # Sending.

    async def start(self, resume_after: int | None) -> int:
        """Send `welcome` and the unacknowledged frames, then let queued frames go out.

        Call after attaching to the hub, so nothing committed meanwhile is missed: what
        is both queued and replayed is sent once (by seq).
        """
        async with self.ctx.db.transaction(readonly=True) as session:
            last_seq, acked = await outbox.channel_state(session, self.guard_id)
            after = max(acked, resume_after or 0)
            backlog = await outbox.pending(session, self.guard_id, after)
        await self._send(
            {
                "type": "welcome",
                "guard_id": self.guard_id,
                "server_time": self.ctx.clock.now().isoformat().replace("+00:00", "Z"),
                "last_seq": last_seq,
                "resumed_after": after,
            }
        )
        self.last_sent_seq = after
        for frame in backlog:
            await self._send(frame)
            self.last_sent_seq = frame["seq"]
        self._live = True
        self._wake_sender()
        return after

    async def _drain(self) -> None:
        try:
            while self.outgoing:
                seq, frame = self.outgoing.popleft()
                if seq is None:
                    await self._send(frame)
                elif seq == self.last_sent_seq + 1:
                    await self._send(frame)
                    self.last_sent_seq = seq
                elif seq > self.last_sent_seq:
                    await self._catch_up()
        except asyncio.CancelledError:
            await self._close_now()
        except Exception:
            log.info(
                "guard %s send failed; connection gone",
                self.guard_id,
                extra={"guard_id": self.guard_id},
            )

    async def _catch_up(self) -> None:
        async with self.ctx.db.transaction(readonly=True) as session:
            missing = await outbox.pending(session, self.guard_id, self.last_sent_seq)
        for frame in missing:
            await self._send(frame)
            self.last_sent_seq = frame["seq"]

    async def _send(self, frame: dict[str, Any]) -> None:
        await self.ws.send_text(json.dumps(frame, separators=(",", ":")))

    async def stop(self) -> None:
        self._live = False
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._sender
