"""/ws/positions: every on-duty guard in a console's map view, moving, coloured by state.

Authenticated like /ws/events. On connect a `positions.snapshot` of the view; then at
most one `positions` frame per tick with what changed and who left the view; a `bbox`
frame moves the view and is answered by a fresh snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import TYPE_CHECKING

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from app.clock import isoformat
from app.geo.bbox import BBox, bbox_from_values, parse_bbox
from app.realtime.close_codes import CloseCode
from app.realtime.closing import CONSOLE_CLOSE_GRACE_S, close_or_reset, send_unless_closing
from app.realtime.frames import FrameError
from app.realtime.positions_feed import FeedClient
from app.realtime.positions_view import Viewer, company_scope, encode
from app.realtime.socket_auth import open_console_socket

if TYPE_CHECKING:
    from app.context import AppContext

log = logging.getLogger(__name__)
router = APIRouter()
MAX_FRAME_BYTES = 4096  # a console sends small control frames only


def parse_control(text: str) -> tuple[str, BBox | None]:
    """A client frame: ('bbox', box or None for everywhere) or ('ping', None); FrameError
    names what is wrong."""
    if len(text) > MAX_FRAME_BYTES:
        raise FrameError("frame_too_large", f"frames are limited to {MAX_FRAME_BYTES} bytes")
    try:
        frame = json.loads(text)
    except ValueError:
        raise FrameError("invalid_json", "frame is not valid JSON") from None
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        raise FrameError("invalid_frame", "type: required, a string")
    kind = frame["type"]
    if kind == "bbox":
        if "bbox" not in frame:
            raise FrameError("invalid_frame", "bbox: required, [west, south, east, north]", "bbox")
        if frame["bbox"] is None:
            return "bbox", None
        try:
            return "bbox", bbox_from_values(frame["bbox"])
        except ValueError as exc:
            raise FrameError("invalid_frame", f"bbox: {exc}", "bbox") from None
    if kind in ("ping", "hello"):
        return kind, None
    raise FrameError("unknown_type", f"type: unknown frame type '{kind[:40]}'", kind[:40])


def _bbox_query(ws: WebSocket) -> BBox | None:
    raw = ws.query_params.get("bbox")
    try:
        return parse_bbox(raw) if raw else None
    except ValueError as exc:
        raise ValueError(f"bbox: {exc}") from None


@router.websocket("/ws/positions")
async def positions_stream(ws: WebSocket) -> None:
    ctx: AppContext = ws.app.state.ctx
    opened = await open_console_socket(ctx, ws, "positions:read", _bbox_query)
    if opened is None:
        return
    principal, bbox = opened
    await _serve(ctx, ws, FeedClient(Viewer(bbox, company_scope(principal))))


async def _serve(ctx: AppContext, ws: WebSocket, client: FeedClient) -> None:
    feed = ctx.positions_feed
    feed.subscribe(client)
    stop = asyncio.create_task(client.stop.wait())
    reader: asyncio.Task[None] | None = None
    try:
        await feed.send_snapshot(client, client.viewer)
        # Started after the first snapshot, so a `bbox` frame cannot race it.
        reader = asyncio.create_task(_read_controls(ctx, ws, client))
        heartbeat_s = ctx.settings.stream_heartbeat_s
        while not reader.done() and not stop.done():
            get = asyncio.create_task(client.queue.get())
            done, _ = await asyncio.wait(
                {get, stop, reader}, timeout=heartbeat_s, return_when=asyncio.FIRST_COMPLETED
            )
            if get not in done:
                get.cancel()
                if not done:
                    beat = {"type": "heartbeat", "at": isoformat(ctx.clock.now())}
                    await send_unless_closing(ws, encode(beat), stop)
                continue
            await send_unless_closing(ws, get.result(), stop)
    except (WebSocketDisconnect, RuntimeError):
        return
    finally:
        if reader is not None:
            reader.cancel()
        feed.unsubscribe(client)
        if client.closing is not None:
            code, reason = client.closing
            # The close frame queues behind what the client has not read yet; a client
            # that never reads it is reset rather than left holding the socket.
            await close_or_reset(ws, code, reason, CONSOLE_CLOSE_GRACE_S)
        stop.cancel()


async def _read_controls(ctx: AppContext, ws: WebSocket, client: FeedClient) -> None:
    """Client frames: a new box gets a fresh snapshot, a bad frame an error; ends on close."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                text = (message.get("bytes") or b"").decode("utf-8", errors="replace")
            try:
                kind, bbox = parse_control(text)
            except FrameError as exc:
                client.put(encode(exc.frame()))
                continue
            if kind == "bbox":
                try:
                    await ctx.positions_feed.send_snapshot(
                        client, client.viewer._replace(bbox=bbox)
                    )
                except Exception:
                    log.exception("positions snapshot failed")
                    client.close(CloseCode.INTERNAL, "internal error")
                    return
            elif kind == "ping":
                client.put(encode({"type": "pong", "at": isoformat(ctx.clock.now())}))
