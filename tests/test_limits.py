"""Resource limits (OWASP API4): request bodies capped before parsing and authentication,
and a cap on the event streams one credential may hold open."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from app.models import User
from app.realtime.close_codes import CloseCode
from tests.harness import Harness
from tests.test_errors import assert_error

pytestmark = pytest.mark.usefixtures("backend")


def limit(harness: Harness) -> int:
    return harness.ctx.settings.max_body_bytes


def incident_body(area: tuple[float, float], description: str) -> dict[str, Any]:
    return {
        "category": "theft",
        "priority": 3,
        "location": {"lat": area[0], "lon": area[1]},
        "description": description,
    }


async def chunks(data: bytes, size: int = 8192) -> AsyncIterator[bytes]:
    """A body with no Content-Length: httpx sends it chunked."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


def assert_too_large(response: Any, harness: Harness) -> None:
    error = assert_error(response, 413, "payload_too_large")
    assert error["details"] == {"limit_bytes": limit(harness)}


async def test_a_declared_oversized_body_is_413_before_authentication(harness: Harness) -> None:
    body = b'{"description": "' + b"x" * limit(harness) + b'"}'
    # No token at all: the answer is 413, not 401, so nothing was authenticated or parsed.
    response = await harness.client.post(
        "/api/v1/incidents", content=body, headers={"Content-Type": "application/json"}
    )
    assert_too_large(response, harness)
    assert response.headers["X-Request-ID"]
    # The sign-in form, whose password an attacker would have us hash, the same.
    response = await harness.client.post(
        "/api/v1/auth/token",
        content=b"username=admin&password=" + b"p" * limit(harness),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_too_large(response, harness)


async def test_the_declared_length_is_refused_without_waiting_for_the_body(
    harness: Harness,
) -> None:
    host, port = harness.base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(
            b"POST /api/v1/incidents HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1073741824\r\n\r\n"
        )
        await writer.drain()
        # A gigabyte announced, not a byte sent: the answer comes at once all the same.
        status = await asyncio.wait_for(reader.readline(), 5)
    finally:
        writer.close()
    assert status.startswith(b"HTTP/1.1 413 ")


async def test_a_chunked_body_is_counted_as_it_streams(
    harness: Harness, area: tuple[float, float]
) -> None:
    big = json.dumps(incident_body(area, "x" * 2 * limit(harness))).encode()
    response = await harness.client.post(
        "/api/v1/incidents", content=chunks(big), headers={"Content-Type": "application/json"}
    )
    assert_too_large(response, harness)
    assert "content-length" not in response.request.headers  # it really went chunked

    # Under the limit, the same chunked upload reaches the app, which reads it whole.
    small = json.dumps(incident_body(area, "bicycle stolen, reported in pieces")).encode()
    response = await harness.client.post(
        "/api/v1/incidents",
        content=chunks(small, size=16),
        headers={**await harness.headers("operator"), "Content-Type": "application/json"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["description"] == "bicycle stolen, reported in pieces"


async def test_a_body_at_the_limit_is_read_and_one_byte_more_is_not(harness: Harness) -> None:
    filler = b" " * (limit(harness) - 2)
    at_limit = b"{" + filler + b"}"
    assert len(at_limit) == limit(harness)
    response = await harness.client.post(
        "/api/v1/incidents", content=at_limit, headers={"Content-Type": "application/json"}
    )
    assert_error(response, 401, "unauthorized")  # through to authentication
    response = await harness.client.post(
        "/api/v1/incidents",
        content=at_limit + b" ",
        headers={"Content-Type": "application/json"},
    )
    assert_too_large(response, harness)


# /ws/events: streams per credential ---------------------------------------------------


async def open_stream(harness: Harness, token: str) -> ClientConnection:
    ws = await connect(
        f"{harness.ws_url}/ws/events", additional_headers={"Authorization": f"Bearer {token}"}
    )
    first = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert first["type"] == "stream.start", first
    return ws


async def refused_with(harness: Harness, token: str) -> int | None:
    async with connect(
        f"{harness.ws_url}/ws/events", additional_headers={"Authorization": f"Bearer {token}"}
    ) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    return closed.value.rcvd.code if closed.value.rcvd else None


async def test_one_credential_holds_a_bounded_number_of_streams(harness: Harness) -> None:
    cap = harness.ctx.settings.streams_per_credential
    username = await harness.user("operator")
    token, second_login = await harness.login(username), await harness.login(username)
    key = await harness.api_key(["events:read"])
    streams = [await open_stream(harness, token) for _ in range(cap)]
    try:
        assert await refused_with(harness, token) == CloseCode.TOO_MANY_STREAMS
        # Signing in again is the same account: no fresh allowance.
        assert await refused_with(harness, second_login) == CloseCode.TOO_MANY_STREAMS
        # Another credential is unaffected.
        other = await open_stream(harness, key)
        await other.close()
        # A stream closed gives its seat back.
        await streams.pop().close()
        async with asyncio.timeout(5):
            while harness.ctx.hub.streams_of(f"user:{await user_id(harness, username)}") >= cap:
                await asyncio.sleep(0.01)
        streams.append(await open_stream(harness, second_login))
    finally:
        for ws in streams:
            await ws.close()


async def user_id(harness: Harness, username: str) -> str:
    async with harness.ctx.db.transaction(readonly=True) as session:
        return str(await session.scalar(select(User.id).where(User.username == username)))
