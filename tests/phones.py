"""A guard's phone for tests: a real websocket client speaking the guard protocol."""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from app.clock import isoformat
from tests.harness import Harness

# An upper bound, never a measure: a passing test waits milliseconds. CI has 2 cores shared by
# the server, every client and pytest itself, so a loaded moment can take seconds.
WAIT_S = 10.0


class Phone:
    """Connects as one guard; `expect` waits (bounded) for a frame of a given type."""

    def __init__(self, harness: Harness, guard: dict[str, Any], token: str) -> None:
        self.harness = harness
        self.guard = guard
        self.token = token
        self.ws: ClientConnection | None = None
        self.inbox: list[dict[str, Any]] = []
        self.welcome: dict[str, Any] | None = None

    @property
    def id(self) -> str:
        return str(self.guard["id"])

    async def connect(
        self, *, resume_after: int | None = None, token_in_hello: bool = False
    ) -> dict[str, Any]:
        headers = {} if token_in_hello else {"Authorization": f"Bearer {self.token}"}
        self.ws = await connect(
            f"{self.harness.ws_url}/ws/guard", additional_headers=headers, open_timeout=WAIT_S
        )
        hello: dict[str, Any] = {"type": "hello"}
        if resume_after is not None:
            hello["resume_after"] = resume_after
        if token_in_hello:
            hello["token"] = self.token
        self.inbox = []
        await self.send(hello)
        self.welcome = await self.expect("welcome")
        return self.welcome

    async def send(self, frame: dict[str, Any]) -> None:
        assert self.ws is not None
        await self.ws.send(json.dumps(frame))

    async def send_raw(self, text: str) -> None:
        assert self.ws is not None
        await self.ws.send(text)

    async def recv(self, timeout: float = WAIT_S) -> dict[str, Any]:
        assert self.ws is not None
        return dict(json.loads(await asyncio.wait_for(self.ws.recv(), timeout)))

    async def expect(
        self, frame_type: str, timeout: float = WAIT_S, **match: Any
    ) -> dict[str, Any]:
        """The next frame of this type (and fields); earlier frames stay in `inbox`."""
        for i, frame in enumerate(self.inbox):
            if frame["type"] == frame_type and all(frame.get(k) == v for k, v in match.items()):
                return self.inbox.pop(i)
        try:
            async with asyncio.timeout(timeout):
                while True:
                    frame = await self.recv(timeout)
                    if frame["type"] == frame_type and all(
                        frame.get(k) == v for k, v in match.items()
                    ):
                        return frame
                    self.inbox.append(frame)
        except TimeoutError:
            # What did come instead is what a failure report needs.
            raise AssertionError(
                f"no {frame_type!r} frame {match or ''} within {timeout} s; got {self.inbox}"
            ) from None

    async def quiet(self, frame_type: str, within: float = 0.3) -> None:
        """Assert no frame of this type arrives within `within` seconds."""
        assert not [f for f in self.inbox if f["type"] == frame_type], self.inbox
        try:
            async with asyncio.timeout(within):
                while True:
                    frame = await self.recv(within)
                    assert frame["type"] != frame_type, frame
                    self.inbox.append(frame)
        except TimeoutError:
            return

    async def sync(self) -> None:
        """Round-trip a ping: every frame sent before it has been handled (and, with
        replicas, every replica knows of it)."""
        await self.send({"type": "ping"})
        await self.expect("pong")
        await self.harness.settle()

    async def locate(self, lat: float, lon: float, **extra: Any) -> None:
        await self.send(
            {
                "type": "location",
                "lat": lat,
                "lon": lon,
                "accuracy_m": 5,
                "at": isoformat(self.harness.now()),
                **extra,
            }
        )

    async def on_duty(self, lat: float, lon: float) -> None:
        await self.send({"type": "duty", "on": True})
        await self.expect("duty.updated", on=True)
        await self.locate(lat, lon)
        await self.sync()

    async def ack(self, seq: int) -> None:
        await self.send({"type": "ack", "seq": seq})

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.harness.replicas:  # the sockets' replica has let go, and the others know
            home = self.harness.replicas[-1].ctx
            async with asyncio.timeout(WAIT_S):
                while home.hub.guard_link(self.id) is not None:
                    await asyncio.sleep(0.01)
            await self.harness.settle()

    async def closed_with(self, timeout: float = WAIT_S) -> int | None:
        """Read until the server closes; the close code."""
        assert self.ws is not None
        try:
            async with asyncio.timeout(timeout):
                while True:
                    self.inbox.append(json.loads(await self.ws.recv()))
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None


def offset(
    center: tuple[float, float], north_m: float = 0.0, east_m: float = 0.0
) -> tuple[float, float]:
    """A point this many metres north/east of `center`."""
    lat, lon = center
    return (
        lat + north_m / 111_195.0,
        lon + east_m / (111_195.0 * math.cos(math.radians(lat))),
    )


async def phone_for(harness: Harness, guard: dict[str, Any]) -> Phone:
    token = (await harness.post(f"/api/v1/guards/{guard['id']}/tokens")).json()["token"]
    return Phone(harness, guard, token)


async def guard_at(
    harness: Harness, where: tuple[float, float], company_id: str | None = None, **guard_fields: Any
) -> Phone:
    """A new guard, connected, on duty, with a fresh position at `where`."""
    guard = await harness.make_guard(company_id, **guard_fields)
    phone = await phone_for(harness, guard)
    await phone.connect()
    await phone.on_duty(*where)
    return phone
