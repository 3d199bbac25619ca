"""/ws/guard: the guard's phone. Auth, hello/welcome with resume, then frames until close.

Authentication is the device token, in the `Authorization: Bearer` header or, for
clients that cannot set headers, in the first frame (`hello {token}`), never in the URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from app.api.deps import bearer_token
from app.auth.cache import authenticate_token
from app.auth.principal import Principal
from app.db import is_unavailable
from app.dispatch import roster
from app.dispatch.offers import OfferClosed
from app.errors import AppError
from app.geo.live_index import GuardEntry
from app.realtime import frames, guard_actions
from app.realtime.close_codes import CloseCode
from app.realtime.guard_link import GuardLink

if TYPE_CHECKING:
    from app.context import AppContext

log = logging.getLogger(__name__)

PATH = "/ws/guard"

HELLO_GRACE_S = 2.0  # header-authenticated clients may still send hello {resume_after}
YIELD_EVERY = 16  # frames handled back to back before the receive loop yields
ACK_MAX_CHARS = 100  # an ack is ~40 characters: only frames this short may skip the limit
FLOOD_FACTOR = 10  # frames dropped, in bursts' worth, before a flooding socket is closed


def origin_allowed(origin: str | None, allowed: list[str], host: str | None = None) -> bool:
    """Native clients send no Origin; browsers must come from this service's own origin
    (the console) or a configured one."""
    if origin is None or origin in allowed or "*" in allowed:
        return True
    return host is not None and urlsplit(origin).netloc.lower() == host.lower()


async def _receive_text(ws: WebSocket, timeout: float | None = None) -> str | None:
    """The next text/binary frame, None on timeout; raises WebSocketDisconnect."""
    try:
        message = await asyncio.wait_for(ws.receive(), timeout) if timeout else await ws.receive()
    except TimeoutError:
        return None
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    text = message.get("text")
    if text is None:
        raw = message.get("bytes") or b""
        text = raw.decode("utf-8", errors="replace")
    return str(text)


async def _authenticate(ctx: AppContext, token: str | None) -> Principal | None:
    if not token:
        return None
    principal = await authenticate_token(ctx, token)
    return principal if principal is not None and principal.kind == "guard" else None


class GuardSocketRoute:
    """ASGI middleware that hands `/ws/guard` straight to `guard_socket`.

    A guard's socket stays open for hours, and every layer of the ASGI stack it passes
    through stays in memory with it: FastAPI's routing, its dependency exit stack and
    the exception middlewares cost about 10 KiB per idle socket, a quarter of the whole.
    The handler needs none of them (it answers its own errors with close codes); added
    last, this sits inside only Starlette's outermost error middleware.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == PATH:
            await guard_socket(WebSocket(scope, receive, send))
        else:
            await self.app(scope, receive, send)


async def guard_socket(ws: WebSocket) -> None:
    ctx: AppContext = ws.app.state.ctx
    if not origin_allowed(
        ws.headers.get("origin"), ctx.settings.ws_allowed_origins, ws.headers.get("host")
    ):
        await ws.close(CloseCode.FORBIDDEN, "origin not allowed")
        return
    await ws.accept()
    hello: frames.Hello | None = None
    token = bearer_token(ws.headers.get("authorization"))
    try:
        if token is None:
            first = await _receive_text(ws, ctx.settings.ws_hello_timeout_s)
            try:
                parsed = frames.parse(first) if first is not None else None
            except frames.FrameError:
                parsed = None
            if isinstance(parsed, frames.Hello):
                hello, token = parsed, parsed.token
        principal = await _authenticate(ctx, token)
        if principal is None or principal.guard_id is None:
            await ws.close(CloseCode.UNAUTHORIZED, "invalid, revoked or missing device token")
            return
        entry = await roster.load_guard(ctx, principal.guard_id)
        if entry is None:
            await ws.close(CloseCode.UNAUTHORIZED, "unknown guard")
            return
        await GuardSession(ctx, ws, principal, entry).run(hello)
    except WebSocketDisconnect:
        return
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        # Signing the phone in needs the database: closed with "try again later", never
        # dropped without a close frame.
        log.warning("guard connect: database unavailable")
        with contextlib.suppress(Exception):
            await ws.close(CloseCode.TRY_AGAIN, "database unavailable; reconnect shortly")


class GuardSession:
    """The receive loop of one authenticated guard connection."""

    def __init__(
        self, ctx: AppContext, ws: WebSocket, principal: Principal, entry: GuardEntry
    ) -> None:
        assert principal.guard_id is not None
        self.ctx = ctx
        self.ws = ws
        self.principal = principal
        self.entry = entry
        self.link = GuardLink(ws, ctx, principal.guard_id, principal.id)
        settings = ctx.settings
        self._tokens = float(settings.ws_frame_burst)
        self._refilled = time.monotonic()
        self._dropped = 0
        self._last_throttle_notice = 0.0

    async def run(self, hello: frames.Hello | None) -> None:
        ctx, link = self.ctx, self.link
        previous = ctx.hub.attach_guard(link)
        if previous is not None:
            previous.close(CloseCode.REPLACED, "replaced by a newer connection")
        ctx.live.connect(self.entry)
        ctx.metrics.guard_connections.inc()
        try:
            pending: str | None = None
            if hello is None:
                pending = await _receive_text(self.ws, HELLO_GRACE_S)
                if pending is not None:
                    try:
                        parsed = frames.parse(pending)
                    except frames.FrameError:
                        parsed = None
                    if isinstance(parsed, frames.Hello):
                        hello, pending = parsed, None
            try:
                await link.start(hello.resume_after if hello else None)
            except Exception as exc:
                if not is_unavailable(exc):
                    raise
                link.close(CloseCode.TRY_AGAIN, "database unavailable; reconnect shortly")
                return
            if pending is not None:
                await self._handle(pending)
            handled = 0
            while link.closing is None:
                await self._handle(await _receive_text(self.ws) or "")
                handled += 1
                if handled % YIELD_EVERY == 0:
                    # Queued frames are received without suspending: let others run.
                    await asyncio.sleep(0)
        except WebSocketDisconnect:
            pass
        finally:
            ctx.hub.detach_guard(link)
            ctx.metrics.guard_connections.dec()
            if ctx.hub.guard_link(link.guard_id) is None:
                ctx.live.mark_stale(self.entry)
            # Returning before the close frame is out would drop the connection (1006).
            await link.stop()

    def _allow(self) -> bool:
        """Token bucket per connection: a flood is throttled and, if it goes on, closed."""
        settings = self.ctx.settings
        now = time.monotonic()
        self._tokens = min(
            settings.ws_frame_burst,
            self._tokens + (now - self._refilled) * settings.ws_frames_per_s,
        )
        self._refilled = now
        if self._tokens >= settings.ws_frame_burst:
            # Only a full bucket forgives: a client kept just above the rate still floods.
            self._dropped = 0
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        self._dropped += 1
        if self._dropped > FLOOD_FACTOR * settings.ws_frame_burst:
            self.link.close(CloseCode.FLOOD, "too many frames")
        elif now - self._last_throttle_notice >= 1.0:
            self._last_throttle_notice = now
            self.link.reply(
                {
                    "type": "error",
                    "code": "rate_limited",
                    "message": "too many frames; some were dropped",
                }
            )
        return False

    async def _handle(self, text: str) -> None:
        self.link.last_frame_at = time.monotonic()
        frame: Any = None
        if len(text) <= ACK_MAX_CHARS:
            with contextlib.suppress(frames.FrameError):
                frame = frames.parse(text)
        # Acks skip the limit (acking a long replay must not be throttled); they are
        # cheap: one stops costing a write once the acknowledged point stops moving.
        if not isinstance(frame, frames.Ack) and not self._allow():
            return
        limit = self.ctx.settings.ws_max_frame_bytes
        if len(text) > limit:
            self.link.reply(
                {
                    "type": "error",
                    "code": "frame_too_large",
                    "message": f"frames are limited to {limit} bytes",
                }
            )
            return
        try:
            if frame is None:
                frame = frames.parse(text)
            await guard_actions.handle(self.ctx, self.link, self.entry, self.principal, frame)
        except frames.FrameError as exc:
            self._count(frame, exc.code)
            self.link.reply(exc.frame())
        except OfferClosed as exc:
            self.link.reply(frames.withdrawn_frame(exc.offer_id, exc.reason))
        except AppError as exc:
            self.link.reply(
                frames.FrameError(exc.code, exc.message, ref=getattr(frame, "type", None)).frame()
            )
        except Exception as exc:
            if is_unavailable(exc):  # an outage, not a bug: the phone sends it again later
                log.warning(
                    "guard frame: database unavailable", extra={"guard_id": self.link.guard_id}
                )
                self.link.reply(
                    {
                        "type": "error",
                        "code": "database_unavailable",
                        "message": "the service cannot store this now; send it again shortly",
                        "ref": getattr(frame, "type", None),
                    }
                )
                return
            log.exception("guard frame failed", extra={"guard_id": self.link.guard_id})
            self.link.reply(
                {"type": "error", "code": "internal_error", "message": "internal error"}
            )
        else:
            self._count(frame, "ok")

    def _count(self, frame: Any, outcome: str) -> None:
        if isinstance(frame, frames.Location) or outcome in (
            "invalid_location",
            "stale_location",
            "off_duty",
        ):
            self.ctx.metrics.location_pings.labels(outcome).inc()
