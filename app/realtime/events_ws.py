"""/ws/events: the live event stream for consoles and command-centre integrations.

Subscribe first, then backfill from the log after `?after=<event id>`, then live, with
duplicates dropped by id: a reconnect with the last id seen has no gap and no repeat.
A client that reads too slowly is closed with 4008 and can resume the same way. One
credential holds at most `DISPATCH_STREAMS_PER_CREDENTIAL` streams; the next is closed 4013.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, WebSocket
from sqlalchemy import select
from starlette.websockets import WebSocketDisconnect

from app.clock import isoformat
from app.events.log import event_json
from app.models import Event
from app.realtime.close_codes import CloseCode
from app.realtime.closing import CONSOLE_CLOSE_GRACE_S, close_or_reset, send_unless_closing
from app.realtime.socket_auth import open_console_socket

if TYPE_CHECKING:
    from app.context import AppContext

router = APIRouter()
BACKFILL_PAGE = 500


def _parse_after(raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    if not raw.isdigit():
        raise ValueError("after must be an event id")
    return int(raw)


def _query(ws: WebSocket) -> tuple[int | None, str | None]:
    after = _parse_after(ws.query_params.get("after"))
    return after, ws.query_params.get("station_id") or ws.query_params.get("station") or None


@router.websocket("/ws/events")
async def event_stream(ws: WebSocket) -> None:
    ctx: AppContext = ws.app.state.ctx
    opened = await open_console_socket(ctx, ws, "events:read", _query)
    if opened is None:
        return
    principal, (after, station_id) = opened
    if principal.station_id is not None:
        if station_id not in (None, principal.station_id):
            await ws.close(CloseCode.FORBIDDEN, f"scoped to station {principal.station_id}")
            return
        station_id = principal.station_id
    cap = ctx.settings.streams_per_credential
    if ctx.hub.streams_of(principal.actor) >= cap:
        # Counted and taken with no await between: two sockets opening at once cannot
        # both get the last seat.
        await ws.close(CloseCode.TOO_MANY_STREAMS, f"this credential holds {cap} streams")
        return
    await _serve(ctx, ws, station_id, after, principal.actor)


async def _serve(
    ctx: AppContext, ws: WebSocket, station_id: str | None, after: int | None, holder: str
) -> None:
    subscription = ctx.hub.subscribe_events(station_id, ctx.settings.stream_queue_size, holder)
    ctx.metrics.stream_connections.inc()
    reader = asyncio.create_task(_drain_client(ws))
    overflow = asyncio.create_task(subscription.overflowed.wait())
    last = 0
    try:
        last = after if after is not None else await _latest_id(ctx)
        start = {"type": "stream.start", "after": str(last), "station_id": station_id}
        await ws.send_text(_json(start))
        if after is not None:
            last = await _backfill(ctx, ws, station_id, last, overflow)
        heartbeat_s = ctx.settings.stream_heartbeat_s
        while not reader.done() and not overflow.done():
            get = asyncio.create_task(subscription.queue.get())
            done, _ = await asyncio.wait(
                {get, overflow, reader}, timeout=heartbeat_s, return_when=asyncio.FIRST_COMPLETED
            )
            if get not in done:
                get.cancel()
                if not done:
                    beat = {
                        "type": "heartbeat",
                        "at": isoformat(ctx.clock.now()),
                        "last_event_id": str(last),
                    }
                    await send_unless_closing(ws, _json(beat), overflow)
                continue
            event = get.result()
            if int(event["id"]) > last and await send_unless_closing(ws, _json(event), overflow):
                last = int(event["id"])
    except (WebSocketDisconnect, RuntimeError):
        return
    finally:
        reader.cancel()
        ctx.hub.unsubscribe_events(subscription)
        ctx.metrics.stream_connections.dec()
    if overflow.done():
        # The close frame queues behind what the client has not read yet; a client that
        # never reads it is reset rather than left holding the socket.
        reason = f"slow consumer: resume with ?after={last}"
        await close_or_reset(ws, CloseCode.SLOW, reason, CONSOLE_CLOSE_GRACE_S)
    overflow.cancel()


async def _latest_id(ctx: AppContext) -> int:
    # Replicas commit out of id order: the newest id may sit above one still in flight,
    # so a stream starts at the feed's watermark once it has caught up with "now".
    return await ctx.feed.now()


async def _backfill(
    ctx: AppContext, ws: WebSocket, station_id: str | None, last: int, overflow: asyncio.Task[Any]
) -> int:
    while True:
        async with ctx.db.transaction(readonly=True) as session:
            stmt = select(Event).where(Event.id > last).order_by(Event.id).limit(BACKFILL_PAGE)
            if not ctx.db.is_sqlite:  # up to the feed's watermark: the rest comes live
                stmt = stmt.where(Event.id <= ctx.feed.published)
            if station_id is not None:
                stmt = stmt.where(Event.station_id == station_id)
            events = list((await session.scalars(stmt)).all())
        for event in events:
            if not await send_unless_closing(ws, _json(event_json(event)), overflow):
                return last
            last = event.id
        if len(events) < BACKFILL_PAGE:
            return last


async def _drain_client(ws: WebSocket) -> None:
    """Read (and ignore) client frames so a close is noticed; ends when the client goes."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return


def _json(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"))
