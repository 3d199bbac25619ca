"""A database that is down or hangs: every request answers 503 with Retry-After, and the
service recovers when the database is back.

Nothing is mocked: PostgreSQL is reached through a local TCP proxy the test cuts or
stalls; SQLite is locked by another connection for longer than the busy timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import func, make_url, select

from app.models import Event
from tests.harness import Harness, start_harness
from tests.test_errors import assert_error


class TcpProxy:
    """Forwards 127.0.0.1:<port> to the database; `cut()` drops and refuses connections,
    `stall()` keeps them open but forwards nothing (a hung server), `restore()` heals."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.mode = "pass"
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        self._drop_all()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def cut(self) -> None:
        self.mode = "cut"
        self._drop_all()

    def stall(self) -> None:
        self.mode = "stall"
        self._flowing.clear()

    def restore(self) -> None:
        self._drop_all()  # what was stalled mid-protocol cannot be resumed sensibly
        self.mode = "pass"
        self._flowing.set()

    def _drop_all(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "cut":
            writer.transport.abort()
            return
        self._writers.add(writer)
        try:
            await self._flowing.wait()
            up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        except OSError:
            writer.transport.abort()
            return
        self._writers.add(up_writer)
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()
        finally:
            writer.transport.abort()
            self._writers.discard(writer)


TIMEOUTS = {
    "db_connect_timeout_s": 1.0,
    "db_statement_timeout_s": 2.0,
    "db_pool_timeout_s": 0.5,
    "db_retry_after_s": 3,
    "auth_cache_s": 60,
}


@contextlib.asynccontextmanager
async def proxied_harness(database_url: str) -> AsyncIterator[tuple[Harness, TcpProxy]]:
    url = make_url(database_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    port = await proxy.start()
    proxied = url.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)
    try:
        async with start_harness(proxied, **TIMEOUTS) as harness:
            yield harness, proxy
    finally:
        proxy.restore()
        await proxy.close()


def incident(center: tuple[float, float], description: str = "shop window smashed") -> Any:
    return {
        "category": "theft",
        "priority": 3,
        "location": {"lat": center[0], "lon": center[1]},
        "description": description,
    }


def assert_unavailable(response: httpx.Response, retry_after: int = 3) -> None:
    assert_error(response, 503, "database_unavailable")
    assert response.headers["Retry-After"] == str(retry_after)


async def mixed_requests(
    harness: Harness, headers: dict[str, str], area: tuple[float, float], n: int
) -> list[httpx.Response]:
    """n concurrent writers and readers; each must get an answer (no dropped connection)."""

    async def one(i: int) -> httpx.Response:
        if i % 2:
            return await harness.client.get("/api/v1/incidents", headers=headers)
        return await harness.client.post(
            "/api/v1/incidents", json=incident(area, f"outage {i}"), headers=headers
        )

    return list(await asyncio.gather(*(one(i) for i in range(n))))


async def test_postgres_down_answers_503_with_retry_after_and_recovers(
    backend: str, own_database_url: str, area: tuple[float, float]
) -> None:
    if backend != "postgresql":
        pytest.skip("the proxy stands between the service and PostgreSQL")
    async with proxied_harness(own_database_url) as (harness, proxy):
        headers = await harness.headers("operator")
        before = await harness.client.post(
            "/api/v1/incidents", json=incident(area), headers=headers
        )
        assert before.status_code == 201, before.text

        proxy.cut()
        async with asyncio.timeout(60):
            responses = await mixed_requests(harness, headers, area, 12)
            ready = await harness.client.get("/readyz")
        for response in responses:
            assert_unavailable(response)
        assert ready.status_code == 503

        proxy.restore()
        async with asyncio.timeout(30):
            after = await harness.client.post(
                "/api/v1/incidents", json=incident(area, "after the outage"), headers=headers
            )
            assert (await harness.client.get("/readyz")).status_code == 200
        assert after.status_code == 201, after.text


async def test_hung_postgres_fails_every_writer_fast_with_503(
    backend: str, own_database_url: str, area: tuple[float, float]
) -> None:
    if backend != "postgresql":
        pytest.skip("the proxy stands between the service and PostgreSQL")
    async with proxied_harness(own_database_url) as (harness, proxy):
        headers = await harness.headers("operator")
        warm = await harness.client.post("/api/v1/incidents", json=incident(area), headers=headers)
        assert warm.status_code == 201, warm.text

        proxy.stall()
        # Eight writers behind one hung transaction: each gives up within the statement
        # or pool timeout instead of queueing behind the others (8 × 2 s would not fit).
        async with asyncio.timeout(12):
            responses = await mixed_requests(harness, headers, area, 8)
        for response in responses:
            assert_unavailable(response)

        proxy.restore()
        async with asyncio.timeout(30):
            after = await harness.client.post(
                "/api/v1/incidents", json=incident(area, "after the stall"), headers=headers
            )
        assert after.status_code == 201, after.text


async def test_sqlite_locked_beyond_the_busy_timeout_answers_503_and_recovers(
    backend: str, own_database_url: str, area: tuple[float, float]
) -> None:
    if backend != "sqlite":
        pytest.skip("SQLite's own lock stands for an unavailable database")
    path = make_url(own_database_url).database
    assert path is not None
    async with start_harness(own_database_url, sqlite_busy_timeout_ms=100, db_retry_after_s=3) as h:
        headers = await h.headers("operator")
        assert (
            await h.client.post("/api/v1/incidents", json=incident(area), headers=headers)
        ).status_code == 201

        other = sqlite3.connect(path, isolation_level=None, timeout=5)
        try:
            other.execute("BEGIN EXCLUSIVE")  # another process's writer, never letting go
            async with asyncio.timeout(30):
                blocked = [
                    await h.client.post(
                        "/api/v1/incidents", json=incident(area, f"locked {i}"), headers=headers
                    )
                    for i in range(3)
                ]
            for response in blocked:
                assert_unavailable(response)
        finally:
            other.execute("ROLLBACK")
            other.close()

        async with asyncio.timeout(30):
            after = await h.client.post(
                "/api/v1/incidents", json=incident(area, "lock released"), headers=headers
            )
        assert after.status_code == 201, after.text


async def test_a_writer_hung_in_another_process_stalls_no_other_writer(
    backend: str, own_database_url: str, area: tuple[float, float]
) -> None:
    if backend != "postgresql":
        pytest.skip("SQLite has one writer process; its lock is the test above")
    dsn = own_database_url.replace("postgresql+asyncpg", "postgresql")
    async with proxied_harness(own_database_url) as (harness, _proxy):
        headers = await harness.headers("operator")
        other = await asyncpg.connect(dsn)
        try:
            # Another replica stuck mid-transaction with an event id drawn, not committed.
            stuck = other.transaction()
            await stuck.start()
            await other.execute("SELECT pg_current_xact_id()")
            stuck_id = await other.fetchval(
                "INSERT INTO events (type, actor, at, data) "
                "VALUES ('test.stuck', 'system:test', now(), '{}') RETURNING id"
            )
            async with asyncio.timeout(12):
                responses = await mixed_requests(harness, headers, area, 8)
            assert all(r.status_code in (200, 201) for r in responses), [r.text for r in responses]
            # The stream holds back what committed above the id in flight...
            assert harness.ctx.feed.published < stuck_id
            await stuck.rollback()
        finally:
            await other.close()
        # ...and goes on once that transaction has ended.
        async with harness.ctx.db.transaction(readonly=True) as session:
            newest = await session.scalar(select(func.max(Event.id)))
        async with asyncio.timeout(10):
            while harness.ctx.feed.published < newest:
                await asyncio.sleep(0.02)
