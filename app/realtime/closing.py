"""Closing a websocket the server gave up on, even when the peer never reads.

The close frame queues behind whatever the peer has not read, and closing a transport
waits for its buffer to drain: a peer that stops reading would keep the socket, its file
descriptor and its kernel buffers for as long as it stays connected. So a close gets a
grace to go out; after that the TCP connection is reset.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct

from starlette.websockets import WebSocket, WebSocketState

GUARD_CLOSE_GRACE_S = 3.0  # a phone that does not take its close frame within this is reset
# A console may be busy rendering a burst: it gets longer to drain what it was sent.
CONSOLE_CLOSE_GRACE_S = 10.0


async def send_unless_closing(ws: WebSocket, text: str, closing: asyncio.Task[object]) -> bool:
    """Send, unless `closing` finishes first while the send is stuck on a full socket (a
    reader too slow to keep up); True when the text went out."""
    send = asyncio.create_task(ws.send_text(text))
    done, _ = await asyncio.wait({send, closing}, return_when=asyncio.FIRST_COMPLETED)
    if send in done:
        send.result()
        return True
    send.cancel()
    return False


async def close_or_reset(ws: WebSocket, code: int, reason: str, grace_s: float) -> None:
    """Close with `code`; reset the connection if it is not gone within `grace_s`."""
    reset_later(ws, grace_s)
    with contextlib.suppress(Exception):
        if ws.application_state == WebSocketState.CONNECTED:
            # Waits while the peer does not read; the reset after the grace ends it.
            await asyncio.wait_for(ws.close(code, reason), 2 * grace_s)


def reset_later(ws: WebSocket, grace_s: float) -> asyncio.TimerHandle:
    """Reset the connection under `ws` after `grace_s`, unless it is gone by then."""
    return asyncio.get_running_loop().call_later(grace_s, reset, ws)


def reset(ws: WebSocket) -> None:
    """Drop the TCP connection under `ws` at once (a reset), unless it is already gone."""
    # uvicorn's websocket protocol owns `receive` and holds the transport.
    protocol = getattr(getattr(ws, "_receive", None), "__self__", None)
    transport = getattr(protocol, "transport", None)
    if transport is None or getattr(protocol, "disconnected", True):
        return
    with contextlib.suppress(Exception):
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Linger 0: the kernel frees the socket and its buffers now, instead of
            # probing a peer that does not read for minutes.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
