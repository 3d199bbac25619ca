"""A cap on request bodies, enforced before anything reads them (OWASP API4).

Pure ASGI, outside routing: an oversized body is answered `413 payload_too_large` before
FastAPI parses it and before the bearer token is checked, so an anonymous caller cannot
make the service buffer or hash megabytes. A declared `Content-Length` is checked up
front (the HTTP parser then delivers exactly that many bytes); a chunked body, which
declares nothing, is read here up to the limit and handed on, or refused as soon as it
passes it.

Before answering, what the client is still sending is read and dropped, within bounds:
closing a connection with bytes unread resets it, and the client would lose the 413 with
it. A client that announced more than the bound gets the answer at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import error_body

DRAIN_BYTES = 1 << 20  # dropped past the limit at most, before the 413 goes out
DRAIN_S = 5.0


class BodyLimit:
    """Refuse HTTP request bodies over `max_bytes` with 413 and the service's error shape."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None:
            # The server refused a malformed length already; this one is a number.
            if int(declared) > self.max_bytes:
                await self._refuse(receive, send, drain=int(declared) <= DRAIN_BYTES)
                return
            await self.app(scope, receive, send)
            return
        if b"chunked" not in headers.get(b"transfer-encoding", b"").lower():
            await self.app(scope, receive, send)  # no body at all
            return
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away mid-body: nothing to answer
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await self._refuse(receive, send, drain=message.get("more_body", False))
                return
            messages.append(message)
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, receive: Receive, send: Send, *, drain: bool) -> None:
        if drain:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(DRAIN_S):
                    dropped = 0
                    while dropped < DRAIN_BYTES:
                        message = await receive()
                        if message["type"] != "http.request" or not message.get("more_body"):
                            break
                        dropped += len(message.get("body", b""))
        body = json.dumps(
            error_body(
                "payload_too_large",
                f"request body is larger than {self.max_bytes} bytes",
                {"limit_bytes": self.max_bytes},
            )
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    # The rest of the body is never read, so the connection cannot be reused.
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
