"""/ws/events: live, filtered, resumable without gap or duplicate; slow readers dropped."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
from typing import Any

import pytest
from sqlalchemy import select
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from app.models import Event
from app.realtime.closing import CONSOLE_CLOSE_GRACE_S
from tests.harness import Harness, start_harness
from tests.sockets import needs_proc_net_tcp, server_socket_open

pytestmark = pytest.mark.usefixtures("backend")


async def open_stream(harness: Harness, token: str, query: str = "", **kw: Any) -> ClientConnection:
    ws = await connect(
        f"{harness.ws_url}/ws/events{query}",
        additional_headers={"Authorization": f"Bearer {token}"},
        **kw,
    )
    start = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert start["type"] == "stream.start"
    return ws


async def collect(
    ws: ClientConnection, until: Any, timeout: float = 5.0, into: list[dict] | None = None
) -> list[dict]:
    got: list[dict] = [] if into is None else into
    async with asyncio.timeout(timeout):
        while not until(got):
            frame = json.loads(await ws.recv())
            if frame["type"] != "heartbeat":
                got.append(frame)
    return got


async def log_after(harness: Harness, after: int, station_id: str) -> list[int]:
    async with harness.ctx.db.transaction(readonly=True) as session:
        rows = await session.scalars(
            select(Event.id)
            .where(Event.id > after, Event.station_id == station_id)
            .order_by(Event.id)
        )
        return list(rows.all())


async def test_stream_requires_a_token_that_may_read_events(harness: Harness) -> None:
    for headers, code in (({}, 4401), ({"Authorization": "Bearer nope"}, 4401)):
        async with connect(f"{harness.ws_url}/ws/events", additional_headers=headers) as ws:
            if not headers:
                await ws.send(json.dumps({"type": "ping"}))
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 15)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == code
    manager = await harness.token(
        "company_manager", company_id=(await harness.make_company())["id"]
    )
    async with connect(
        f"{harness.ws_url}/ws/events", additional_headers={"Authorization": f"Bearer {manager}"}
    ) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403


async def test_token_in_first_frame_and_live_events_filtered_by_station(
    harness: Harness, area: tuple[float, float]
) -> None:
    mine = await harness.make_station(area)
    other = await harness.make_station((area[0] + 0.5, area[1]))
    token = await harness.token("operator")
    async with connect(f"{harness.ws_url}/ws/events?station_id={mine['id']}") as ws:
        await ws.send(json.dumps({"type": "hello", "token": token}))
        assert json.loads(await ws.recv())["type"] == "stream.start"
        await harness.make_incident((area[0] + 0.5, area[1]))
        incident = await harness.make_incident(area)
        got = await collect(ws, lambda g: any(e["type"] == "incident.unstaffed" for e in g))
    assert {e["incident_id"] for e in got} == {incident["id"]}
    assert {e["station_id"] for e in got} == {mine["id"]} and other["id"] not in str(got)
    assert got[0]["type"] == "incident.created" and [int(e["id"]) for e in got] == sorted(
        int(e["id"]) for e in got
    )


async def test_resume_after_a_disconnect_has_no_gap_and_no_duplicate(
    harness: Harness, area: tuple[float, float]
) -> None:
    station = await harness.make_station(area)
    token = await harness.token("operator")
    query = f"?station_id={station['id']}"
    ws = await open_stream(harness, token, query)
    start_id = int((await log_after(harness, 0, station["id"]))[-1])
    await harness.make_incident(area)
    first = await collect(ws, lambda g: any(e["type"] == "incident.unstaffed" for e in g))
    await ws.close()
    last_seen = int(first[-1]["id"])
    for _ in range(3):  # happens while disconnected
        await harness.make_incident(area)
    ws = await open_stream(harness, token, f"{query}&after={last_seen}")
    await harness.make_incident(area)  # and one live after resuming
    expected = await log_after(harness, last_seen, station["id"])
    second = await collect(
        ws, lambda g: len(g) >= len(expected) + 1 or (g and int(g[-1]["id"]) >= expected[-1])
    )
    await ws.close()
    everything = [int(e["id"]) for e in first + second]
    assert everything == sorted(set(everything))  # no duplicate, in order
    assert everything == await log_after(harness, start_id, station["id"])  # no gap


class StalledReader:
    """A websocket client on a raw socket with a tiny receive buffer that stops reading."""

    def __init__(self, port: int, path: str, token: str) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(30)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Authorization: Bearer {token}\r\n\r\n".encode()
        )
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self.sock.recv(4096)
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head

    def read_until_close(self) -> tuple[list[dict], int]:
        """Every text frame, then the close code (blocking; run in a thread)."""
        frames: list[dict] = []
        while True:
            while len(self.buffer) < 2:
                self.buffer += self.sock.recv(65536)
            opcode, length, offset = self.buffer[0] & 0x0F, self.buffer[1] & 0x7F, 2
            if length == 126:
                while len(self.buffer) < 4:
                    self.buffer += self.sock.recv(65536)
                length, offset = struct.unpack("!H", self.buffer[2:4])[0], 4
            elif length == 127:
                while len(self.buffer) < 10:
                    self.buffer += self.sock.recv(65536)
                length, offset = struct.unpack("!Q", self.buffer[2:10])[0], 10
            while len(self.buffer) < offset + length:
                self.buffer += self.sock.recv(65536)
            payload, self.buffer = (
                self.buffer[offset : offset + length],
                self.buffer[offset + length :],
            )
            if opcode == 0x8:
                return frames, struct.unpack("!H", payload[:2])[0]
            if opcode == 0x1:
                frames.append(json.loads(payload))


async def test_slow_consumer_is_dropped_and_others_are_unaffected(
    own_database_url: str, area: tuple[float, float]
) -> None:
    async with start_harness(own_database_url, stream_queue_size=50) as quick:
        station = await quick.make_station(area)
        token = await quick.token("operator")
        query = f"?station_id={station['id']}"
        port = int(quick.base_url.rsplit(":", 1)[1])
        slow = await asyncio.to_thread(
            StalledReader, port, f"/ws/events{query}", token
        )  # blocking I/O
        try:
            await _drop_the_stalled_reader(quick, station, token, query, slow)
        finally:
            slow.sock.close()


async def _drop_the_stalled_reader(
    quick: Harness, station: dict, token: str, query: str, slow: StalledReader
) -> None:
    fast = await open_stream(quick, token, query)
    before = (await log_after(quick, 0, station["id"]))[-1]
    got_fast: list[dict] = []
    fast_reader = asyncio.create_task(collect(fast, lambda g: False, timeout=60, into=got_fast))
    total = 0
    async with asyncio.timeout(30):
        # Bursts of real events (one transaction each) until the stalled reader is dropped.
        while quick.ctx.hub.event_subscribers > 1:
            async with quick.ctx.db.transaction() as session:
                for _ in range(20):
                    await quick.ctx.events.record(
                        session,
                        type="unit.updated",
                        actor="test",
                        at=quick.now(),
                        station_id=station["id"],
                        data={"pad": "x" * 4000},
                    )
            total += 20
            while len(got_fast) < total:  # the live reader keeps up; only the stalled one lags
                await asyncio.sleep(0.005)
    newest = (await log_after(quick, before, station["id"]))[-1]
    async with asyncio.timeout(30):
        while not got_fast or int(got_fast[-1]["id"]) < newest:
            await asyncio.sleep(0.01)
    fast_reader.cancel()
    assert len(got_fast) == total  # the fast reader got everything, live

    received, code = await asyncio.to_thread(slow.read_until_close)
    assert code == 4008
    events = [e for e in received if e["type"] == "unit.updated"]
    last = int(events[-1]["id"])
    assert len(events) < total and last < newest
    resumed = await open_stream(quick, token, f"{query}&after={last}")
    rest = await collect(resumed, lambda g: g and int(g[-1]["id"]) >= newest, timeout=30)
    ids = [int(e["id"]) for e in events] + [int(e["id"]) for e in rest]
    assert ids == await log_after(quick, before, station["id"])  # resumed: no gap, no repeat
    await fast.close()
    await resumed.close()


@needs_proc_net_tcp
async def test_a_console_that_never_reads_is_closed_and_its_socket_released(
    own_database_url: str, area: tuple[float, float]
) -> None:
    async with start_harness(own_database_url, stream_queue_size=50) as quick:
        station = await quick.make_station(area)
        token = await quick.token("operator")
        port = int(quick.base_url.rsplit(":", 1)[1])
        path = f"/ws/events?station_id={station['id']}"
        slow = await asyncio.to_thread(StalledReader, port, path, token)  # blocking I/O
        try:
            async with asyncio.timeout(30):
                while quick.ctx.hub.event_subscribers == 0:
                    await asyncio.sleep(0.01)
                # Bursts of events until the reader, which never reads, is dropped (4008).
                while quick.ctx.hub.event_subscribers > 0:
                    async with quick.ctx.db.transaction() as session:
                        for _ in range(20):
                            await quick.ctx.events.record(
                                session,
                                type="unit.updated",
                                actor="test",
                                at=quick.now(),
                                station_id=station["id"],
                                data={"pad": "x" * 4000},
                            )
                    await asyncio.sleep(0.01)
            # Its close frame can never go out; the server resets the connection after the
            # grace instead of keeping the socket and its buffers while the peer stays.
            client_port = slow.sock.getsockname()[1]
            async with asyncio.timeout(CONSOLE_CLOSE_GRACE_S + 10):
                while server_socket_open(port, client_port):
                    await asyncio.sleep(0.05)
        finally:
            slow.sock.close()


async def test_heartbeats_keep_an_idle_stream_alive(own_database_url: str) -> None:
    async with start_harness(own_database_url, stream_heartbeat_s=0.1) as quick:
        ws = await open_stream(quick, await quick.token("operator"))
        beat = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert beat["type"] == "heartbeat" and "last_event_id" in beat
        await ws.close()


async def test_bad_after_is_refused(harness: Harness) -> None:
    async with connect(
        f"{harness.ws_url}/ws/events?after=abc",
        additional_headers={"Authorization": f"Bearer {await harness.token('operator')}"},
    ) as ws:
        error = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert error["code"] == "invalid_query"
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
