"""A loopback TCP proxy that passes, stalls or cuts: a hung PostgreSQL, a half-open socket.

`stall()` is a black hole: connections stay open, nothing is forwarded either way, and a
side that closes meanwhile is not told to the other (as with a partition or a hung host,
where the peer never sees the FIN). `resume()` forwards what was held, closes included.
`stall_existing()` holds only the connections open now and lets new ones pass: a phone
whose old socket went half-open and that dials again. `cut()` resets every connection
and refuses new ones until `resume()`.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

CHUNK = 65_536


@dataclass(eq=False)
class _Link:
    """One proxied connection: the two sockets and whether bytes may flow."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    flowing: asyncio.Event = field(default_factory=asyncio.Event)

    def abort(self) -> None:
        self.client.transport.abort()
        if self.upstream is not None:
            self.upstream.transport.abort()


class TcpProxy:
    """Forwards 127.0.0.1:<port> to target_host:target_port."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.mode = "pass"  # pass | stall | cut: what new connections get
        self.port = 0
        self._links: set[_Link] = set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0, backlog=1024)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def close(self) -> None:
        self.mode = "cut"
        for link in list(self._links):
            link.abort()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()

    @property
    def connections(self) -> int:
        return len(self._links)

    def stall(self) -> None:
        """Hold every connection, open and new, until resume()."""
        self.mode = "stall"
        for link in self._links:
            link.flowing.clear()

    def stall_existing(self) -> None:
        """Hold the connections open now (half-open from then on); new ones pass."""
        for link in self._links:
            link.flowing.clear()

    def cut(self) -> None:
        """Reset every connection now; refuse new ones until resume()."""
        self.mode = "cut"
        for link in list(self._links):
            link.abort()

    def resume(self) -> None:
        """Forward again, held bytes (and held closes) first."""
        self.mode = "pass"
        for link in self._links:
            link.flowing.set()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        if self.mode == "cut":
            writer.transport.abort()
            self._tasks.discard(task)
            return
        link = _Link(writer)
        if self.mode == "pass":
            link.flowing.set()
        self._links.add(link)
        try:
            try:
                up_reader, link.upstream = await asyncio.open_connection(*self.target)
            except OSError:
                return
            await asyncio.gather(
                self._pipe(reader, link.upstream, link),
                self._pipe(up_reader, writer, link),
                return_exceptions=True,
            )
        finally:
            link.abort()
            self._links.discard(link)
            self._tasks.discard(task)

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter, link: _Link) -> None:
        # Read first, then wait for the gate: a stalled direction holds at most one chunk
        # here and the rest in the kernel's buffers, as a peer that stopped reading would.
        while True:
            data = await source.read(CHUNK)
            await link.flowing.wait()
            if not data:
                with contextlib.suppress(OSError):
                    if sink.can_write_eof():
                        sink.write_eof()
                return
            sink.write(data)
            await sink.drain()
