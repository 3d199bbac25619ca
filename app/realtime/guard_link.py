"""One guard's live socket: a bounded send queue drained by one sender task at a time.

Frames with a `seq` come from the outbox (after commit) and must reach the guard in
order, each once per connection: the sender skips what it already sent and, when it sees
a gap (two commits racing to the hub), reads the missing frames back from the database.
The sender runs only while there is something to send: an idle guard costs no task.
On connect it first replays the backlog a page at a time; frames committed meanwhile are
read back from the database rather than queued. A closing connection that has not gone
within a grace is reset, so a phone that stops reading cannot pin a socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from starlette.websockets import WebSocket

from app.realtime import outbox
from app.realtime.close_codes import CloseCode
from app.realtime.closing import GUARD_CLOSE_GRACE_S, close_or_reset

if TYPE_CHECKING:
    from app.context import AppContext

log = logging.getLogger(__name__)

REPLAY_PAGE = 500  # frames read per short transaction while replaying
MAX_OFFERS_TIMED = 64  # offers sent on one connection whose answer time is still measured


class GuardLink:
    """The server side of a guard's websocket (registered with the hub)."""

    def __init__(self, ws: WebSocket, ctx: AppContext, guard_id: str, token_id: str) -> None:
        self.ws = ws
        self.ctx = ctx
        self.guard_id = guard_id
        self.token_id = token_id
        # (seq or None, frame or None: "read it back", when it was queued)
        self.outgoing: deque[tuple[int | None, dict[str, Any] | None, float]] = deque()
        self.last_sent_seq = 0
        self.acked_seq = 0  # the acknowledged point as this connection last stored it
        self.last_frame_at = time.monotonic()
        self.closing: tuple[int, str] | None = None
        self._sender: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None
        self._ack_writer: asyncio.Task[None] | None = None
        self._ack_target = 0  # the highest ack received, stored by the ack writer
        self._live = False  # started: the sender may run
        self._welcome: dict[str, Any] | None = None  # set until welcome and backlog are sent
        self._newest_pushed = 0  # highest seq committed for this guard since attaching
        self._backlog_end = 0  # the guard's last seq when the replay began
        self._offers_sent: dict[str, float] = {}  # offer id → when its frame went out

    # Called by the hub (sync, from after-commit callbacks) and the receive loop.

    def push(self, seq: int, frame: dict[str, Any]) -> None:
        self._newest_pushed = max(self._newest_pushed, seq)
        if not self._live:
            return  # the replay will read it back from the database
        if self._welcome is None:
            self._put((seq, frame, time.monotonic()))
        elif seq - max(self.last_sent_seq, self._backlog_end) > self.ctx.settings.ws_send_queue:
            # Replaying (which reads it back): a phone that falls a queue's worth of new
            # frames behind meanwhile is as slow as one whose queue overflows.
            self.close(CloseCode.SLOW, "slow consumer: reconnect and resume")

    def nudge(self, seq: int) -> None:
        """Another replica stored frames up to `seq`: read them back from the database."""
        if seq <= max(self._newest_pushed, self.last_sent_seq):
            return
        self._newest_pushed = seq
        if self._live and self._welcome is None:
            self._put((seq, None, time.monotonic()))

    def offer_answered(self, offer_id: str) -> float | None:
        """Seconds since this connection sent the offer (None: not sent on it)."""
        sent = self._offers_sent.pop(offer_id, None)
        return None if sent is None else time.monotonic() - sent

    def acknowledge(self, seq: int) -> None:
        """A cumulative ack from the phone; stored in the background, coalesced."""
        # Only what this connection sent can be acknowledged on it: a seq beyond that (up
        # to 2^63) names frames the phone cannot have, and could not be stored anyway.
        seq = min(seq, self.last_sent_seq)
        if seq <= max(self.acked_seq, self._ack_target):
            return
        self._ack_target = seq
        if self._ack_writer is None or self._ack_writer.done():
            self._ack_writer = asyncio.get_running_loop().create_task(
                self._write_acks(), name=f"guard-acks-{self.guard_id}"
            )

    async def acks_stored(self) -> None:
        """Wait until every ack received so far is stored (or its write failed)."""
        if self._ack_writer is not None and not self._ack_writer.done():
            await asyncio.wait([self._ack_writer])

    async def _write_acks(self) -> None:
        # Acking a long replay frame by frame costs a few writes, not one per frame.
        try:
            while self._ack_target > self.acked_seq:
                target = self._ack_target
                async with self.ctx.db.transaction(serial=False) as session:
                    await outbox.acknowledge(session, self.guard_id, target)
                self.acked_seq = max(self.acked_seq, target)
        except Exception:
            self._ack_target = self.acked_seq  # the next ack tries again
            log.exception("storing guard %s's ack failed", self.guard_id)

    def reply(self, frame: dict[str, Any]) -> None:
        """A frame without seq (welcome, pong, error): best effort, in order with the rest."""
        self._put((None, frame, 0.0))

    def _put(self, item: tuple[int | None, dict[str, Any] | None, float]) -> None:
        if self.closing is not None:
            return
        if len(self.outgoing) >= self.ctx.settings.ws_send_queue:
            self.close(CloseCode.SLOW, "slow consumer: reconnect and resume")
            return
        self.outgoing.append(item)
        self._wake_sender()

    def _wake_sender(self) -> None:
        if (
            self._live
            and self.closing is None
            and (self.outgoing or self._welcome is not None)
            and (self._sender is None or self._sender.done())
        ):
            self._sender = asyncio.get_running_loop().create_task(
                self._drain(), name=f"guard-sender-{self.guard_id}"
            )

    def close(self, code: int, reason: str) -> None:
        """Ask the connection to close (from any task); queued frames are dropped."""
        if self.closing is not None:
            return
        self.closing = (code, reason)
        self._closer = asyncio.get_running_loop().create_task(
            self._close_now(), name=f"guard-close-{self.guard_id}"
        )

    async def _close_now(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._sender
        code, reason = self.closing or (1000, "")
        # A phone that stops reading cannot keep its socket: reset after the grace.
        await close_or_reset(self.ws, code, reason, GUARD_CLOSE_GRACE_S)

    # Sending.

    async def start(self, resume_after: int | None) -> int:
        """Have the sender send `welcome` and every unacknowledged frame, then the rest.

        Call after attaching to the hub, so nothing committed meanwhile is missed. The
        resume point acknowledges what the phone already has (never past what exists).
        """
        async with self.ctx.db.transaction(readonly=True) as session:
            last_seq, acked = await outbox.channel_state(session, self.guard_id)
        resumed = min(resume_after or 0, last_seq)
        if resumed > acked:
            async with self.ctx.db.transaction(serial=False) as session:
                await outbox.acknowledge(session, self.guard_id, resumed)
        after = max(acked, resumed)
        self.acked_seq = self.last_sent_seq = after
        self._backlog_end = last_seq
        self._welcome = {
            "type": "welcome",
            "guard_id": self.guard_id,
            "server_time": self.ctx.clock.now().isoformat().replace("+00:00", "Z"),
            "last_seq": last_seq,
            "resumed_after": after,
        }
        self._live = True
        self._wake_sender()
        return after

    async def _drain(self) -> None:
        try:
            if self._welcome is not None:
                await self._send(self._welcome)
                await self._catch_up()
                self._welcome = None  # no await since the last check: nothing slips by
            while self.outgoing:
                seq, frame, queued = self.outgoing.popleft()
                if seq is None:
                    assert frame is not None
                    await self._send(frame)
                    continue
                if seq <= self.last_sent_seq:
                    continue
                if seq == self.last_sent_seq + 1 and frame is not None:
                    await self._send(frame)
                    self.last_sent_seq = seq
                else:  # a gap, or frames stored by another replica: read them back
                    await self._catch_up()
                self.ctx.metrics.outbox_lag.observe(time.monotonic() - queued)
        except Exception:
            log.info(
                "guard %s: sending stopped; closing so the phone resumes",
                self.guard_id,
                extra={"guard_id": self.guard_id},
                exc_info=True,
            )
            # The socket is gone, or reading the backlog failed (the database): either way
            # this sender cannot go on, and a phone left open would wait for frames that
            # never come. Closed, it reconnects and resumes from its last seq.
            self.close(CloseCode.TRY_AGAIN, "could not send your frames; reconnect and resume")

    async def _catch_up(self) -> None:
        """Send every stored frame after `last_sent_seq`, a page per short transaction,
        until nothing committed since attaching is left unsent."""
        while self.closing is None:
            async with self.ctx.db.transaction(readonly=True) as session:
                acked, page = await outbox.pending(
                    session, self.guard_id, self.last_sent_seq, REPLAY_PAGE
                )
            # Acknowledged elsewhere (a newer connection of the same guard): not resent.
            self.last_sent_seq = max(self.last_sent_seq, acked)
            for frame in page:
                await self._send(frame)
                self.last_sent_seq = frame["seq"]
            if len(page) < REPLAY_PAGE and self._newest_pushed <= self.last_sent_seq:
                return

    async def _send(self, frame: dict[str, Any]) -> None:
        await self.ws.send_text(json.dumps(frame, separators=(",", ":")))
        if frame.get("type") == "offer":
            self._offers_sent[frame["offer_id"]] = time.monotonic()
            if len(self._offers_sent) > MAX_OFFERS_TIMED:
                self._offers_sent.pop(next(iter(self._offers_sent)))
            if "offered_at" in frame:
                offered = dt.datetime.fromisoformat(frame["offered_at"])
                waited = (self.ctx.clock.now() - offered).total_seconds()
                self.ctx.metrics.offer_to_delivered.observe(max(0.0, waited))
        if "broadcast_id" in frame:  # counted as delivered (app.broadcasts.board)
            self.ctx.broadcasts.sent(self.guard_id, frame["broadcast_id"])

    async def stop(self) -> None:
        """Stop sending, store pending acks, and if a close was asked for, wait until its
        frame is out (bounded)."""
        self._live = False
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._sender
        await self.acks_stored()
        if self._closer is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._closer
