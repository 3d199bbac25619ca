"""Guard phones that survive faults: reconnect, resume after the last seq seen, and log.

Each phone keeps one socket to the first replica in its list that answers, with a short
websocket keepalive so a half-open socket is noticed within seconds. On every (re)connect
it says `hello {resume_after: <highest seq seen>}`, as DESIGN §5 asks of clients. Every
frame with a seq is written to the phone's FrameLog before it is acked. Offers are
accepted, declined or left to expire, chosen from the offer id so every run is alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench.common import Seeded, iso_us

KEEPALIVE_S = 1.0  # websocket ping every second, answered within 2 s, or the socket is dead
PONG_TIMEOUT_S = 2.0
LOCATION_EVERY_S = 2.0


@dataclass
class Received:
    seq: int
    type: str
    key: str  # offer_id, or incident_id + text for an instruction: what makes it one message
    connection: int


@dataclass
class FrameLog:
    """Every frame with a seq a phone received, in order, and what reconnecting cost."""

    frames: list[Received] = field(default_factory=list)
    max_seq: int = 0
    flagged_duplicates: int = 0  # a seq at or below one already seen: the client knows
    gaps: int = 0  # a seq more than one past the highest seen, on the same socket
    connections: int = 0
    connect_failures: int = 0
    failures: dict[str, int] = field(default_factory=dict)  # why sockets ended, by exception
    welcomed_at: float = 0.0  # time.time() of the last welcome
    frame_at: float = 0.0  # time.time() of the last frame of any kind


def frame_key(frame: dict[str, Any]) -> str:
    """What identifies the message a frame carries, whatever its seq."""
    kind = frame.get("type")
    if kind in ("offer", "offer.withdrawn"):
        return str(frame.get("offer_id"))
    if kind == "assignment":
        return str(frame.get("assignment_id"))
    if kind == "instruction":
        return f"{frame.get('incident_id')}:{frame.get('text')}"
    return json.dumps(frame, sort_keys=True)


def choice(offer_id: str) -> str:
    """accept (4 in 10), decline (1 in 10) or ignore until it expires (5 in 10)."""
    bucket = zlib.crc32(offer_id.encode()) % 10
    return "accept" if bucket < 4 else "decline" if bucket < 5 else "ignore"


class Phone:
    """One guard's phone; `run()` until cancelled."""

    def __init__(self, seeded: Seeded, lat: float, lon: float, urls: list[str]) -> None:
        self.guard_id = seeded.guard_id
        self.token = seeded.token
        self.lat, self.lon = lat, lon
        self.urls = urls  # ws:// bases, preferred first
        self.log = FrameLog()
        self.connected = asyncio.Event()
        self.errors: dict[str, int] = {}
        self._rng = random.Random(seeded.guard_id)
        self._last_us = 0
        self._ws: ClientConnection | None = None
        self._answering: set[asyncio.Task[None]] = set()

    def drop(self) -> None:
        """Close the socket (client side); the phone dials again."""
        if self._ws is not None:
            self._ws.transport.abort()

    async def run(self) -> None:
        attempt = 0
        while True:
            url = self.urls[attempt % len(self.urls)]
            welcomed = self.log.connections
            try:
                await self._session(url)
            except Exception as exc:  # whatever a broken network does, the phone dials again
                name = type(exc).__name__
                self.log.failures[name] = self.log.failures.get(name, 0) + 1
            self.connected.clear()
            self._ws = None
            if self.log.connections > welcomed:
                attempt = 0  # a session that got going: the preferred replica first again
            else:
                self.log.connect_failures += 1
                attempt += 1
            await asyncio.sleep(self._rng.uniform(0.1, 0.5))

    async def _session(self, url: str) -> None:
        async with connect(
            f"{url}/ws/guard",
            additional_headers={"Authorization": f"Bearer {self.token}"},
            open_timeout=5,
            close_timeout=1,
            ping_interval=KEEPALIVE_S,
            ping_timeout=PONG_TIMEOUT_S,
            compression=None,
        ) as ws:
            self._ws = ws
            await ws.send(json.dumps({"type": "hello", "resume_after": self.log.max_seq}))
            async with asyncio.timeout(5):
                while json.loads(await ws.recv()).get("type") != "welcome":
                    pass
            self.log.connections += 1
            self.log.welcomed_at = time.time()
            connection = self.log.connections
            await ws.send('{"type":"duty","on":true}')
            await ws.send(self._location())
            self.connected.set()
            pinger = asyncio.create_task(self._ping(ws))
            try:
                async for raw in ws:
                    await self._on_frame(ws, json.loads(raw), connection)
            finally:
                pinger.cancel()

    async def _on_frame(self, ws: ClientConnection, frame: dict[str, Any], connection: int) -> None:
        self.log.frame_at = time.time()
        kind = str(frame.get("type"))
        if kind == "error":
            code = str(frame.get("code"))
            self.errors[code] = self.errors.get(code, 0) + 1
        if "seq" not in frame:
            return
        seq = int(frame["seq"])
        log = self.log
        if seq <= log.max_seq:
            log.flagged_duplicates += 1
        else:
            if seq > log.max_seq + 1 and log.frames and log.frames[-1].connection == connection:
                log.gaps += 1
            log.max_seq = seq
            log.frames.append(Received(seq, kind, frame_key(frame), connection))
            if kind == "offer":
                task = asyncio.create_task(self._answer(ws, str(frame["offer_id"])))
                self._answering.add(task)
                task.add_done_callback(self._answering.discard)
        await ws.send(f'{{"type":"ack","seq":{seq}}}')

    async def _answer(self, ws: ClientConnection, offer_id: str) -> None:
        what = choice(offer_id)
        if what == "ignore":
            return
        await asyncio.sleep(self._rng.uniform(0.1, 0.8))  # a person reads the offer
        frame = {"type": f"offer.{what}", "offer_id": offer_id}
        with contextlib.suppress(ConnectionClosed):
            await ws.send(json.dumps(frame))

    async def _ping(self, ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await asyncio.sleep(LOCATION_EVERY_S * self._rng.uniform(0.8, 1.2))
                await ws.send(self._location())

    def _location(self) -> str:
        # Standing still with a strictly increasing `at`: always a valid ping.
        at_us = max(time.time_ns() // 1000, self._last_us + 1)
        self._last_us = at_us
        return (
            f'{{"type":"location","lat":{self.lat!r},"lon":{self.lon!r},'
            f'"accuracy_m":5,"at":"{iso_us(at_us)}"}}'
        )
