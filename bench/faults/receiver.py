"""A webhook receiver on 127.0.0.1 that can fail: 500s, or hang past the sender's timeout.

HTTP/1.1 over asyncio streams with keep-alive, as a police system's endpoint would be.
Every request is recorded with its `webhook-id` and whether its signature checks, what
it was answered, and whether the sender was still there to read the answer.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Hit:
    webhook_id: str
    event_type: str
    event_id: int | None
    signed: bool
    status: int = 0  # what we answered; 0: the sender hung up first
    at: float = field(default_factory=time.time)


@dataclass
class WebhookReceiver:
    """Answers by `mode`: 'ok' (200), 'fail' (500) or 'hang' (hold `hang_s`, then 200)."""

    mode: str = "ok"
    hang_s: float = 4.0
    secret: str = ""
    hits: list[Hit] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def delivered(self) -> set[str]:
        """webhook-ids answered 2xx at least once."""
        return {hit.webhook_id for hit in self.hits if 200 <= hit.status < 300}

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0, backlog=256)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await self._server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                request_line = await reader.readline()
                if not request_line:
                    return
                headers: dict[str, str] = {}
                while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                hit = self._record(headers, body)
                status = await self._decide(reader)
                if status == 0:
                    return  # the sender timed out and hung up while we held it
                try:
                    await _answer(writer, status)
                except (ConnectionError, RuntimeError):
                    return  # the sender timed out and went: it never saw this answer
                hit.status = status
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    def _record(self, headers: dict[str, str], body: bytes) -> Hit:
        payload: dict[str, Any] = {}
        with contextlib.suppress(ValueError):
            payload = json.loads(body)
        data = payload.get("data") if isinstance(payload.get("data"), dict) else {}
        hit = Hit(
            webhook_id=headers.get("webhook-id", ""),
            event_type=str(payload.get("type", "")),
            event_id=data.get("id") if isinstance(data.get("id"), int) else None,
            signed=self._signed(headers, body),
        )
        self.hits.append(hit)
        return hit

    async def _decide(self, reader: asyncio.StreamReader) -> int:
        """The status to answer, or 0 when the sender hung up while the request was held."""
        if self.mode == "fail":
            return 500
        if self.mode == "hang":
            try:
                # Nothing more is sent on this connection before our answer, so a read
                # that ends means the sender closed it.
                if not await asyncio.wait_for(reader.read(1), self.hang_s):
                    return 0
            except TimeoutError:
                pass
        return 200

    def _signed(self, headers: dict[str, str], body: bytes) -> bool:
        """Standard Webhooks signature check with the standard library."""
        if not self.secret:
            return False
        key = base64.b64decode(self.secret.removeprefix("whsec_"))
        signed = f"{headers.get('webhook-id')}.{headers.get('webhook-timestamp')}.".encode() + body
        expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        return any(
            hmac.compare_digest(expected, candidate.split(",", 1)[1])
            for candidate in headers.get("webhook-signature", "").split()
            if candidate.startswith("v1,")
        )


async def _answer(writer: asyncio.StreamWriter, status: int) -> None:
    if writer.is_closing():
        raise ConnectionResetError("sender gone")
    reason = {200: "OK", 500: "Internal Server Error"}[status]
    writer.write(
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain\r\n"
        f"content-length: {len(reason)}\r\n\r\n{reason}".encode()
    )
    await writer.drain()
