"""A running service for tests: fresh database, real uvicorn, a ManualClock, helpers."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import uvicorn

from app.auth.principal import SYSTEM
from app.auth.service import create_api_key, create_user
from app.clock import ManualClock
from app.context import AppContext
from app.main import create_app, server_options
from app.migrate import upgrade
from app.settings import Settings

SECRET = "test-secret-key-0123456789-abcdefghijklmnop"
TOKEN_RENEW_S = 600


def _pg_parts(url: str) -> tuple[str, str]:
    """('postgresql+asyncpg://u@h:p', 'dbname') from a SQLAlchemy URL."""
    base, _, name = url.rpartition("/")
    return base, name.split("?")[0]


@contextlib.asynccontextmanager
async def fresh_database(backend: str, pg_url: str | None, tmp: Path) -> AsyncIterator[str]:
    """An empty database migrated to head; dropped afterwards."""
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp / 'dispatch.db'}"
        await asyncio.to_thread(upgrade, url)
        yield url
        return
    assert pg_url is not None
    base, admin_db = _pg_parts(pg_url)
    name = f"dispatch_test_{uuid.uuid4().hex[:12]}"
    dsn = base.replace("postgresql+asyncpg", "postgresql")
    admin = await asyncpg.connect(f"{dsn}/{admin_db}")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = f"{base}/{name}"
    try:
        await asyncio.to_thread(upgrade, url)
        yield url
    finally:
        admin = await asyncpg.connect(f"{dsn}/{admin_db}")
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


def settings_for(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "env": "test",
        "database_url": database_url,
        "secret_key": SECRET,
        "position_flush_interval_s": 0.05,
        "webhook_allow_networks": "127.0.0.0/8",  # the tests' webhook receivers are local
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@contextlib.asynccontextmanager
async def serve(app: Any, settings: Settings) -> AsyncIterator[str]:
    """Run `app` under uvicorn on 127.0.0.1 (ephemeral port) in this loop; yield its URL."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="on",
        **server_options(settings),
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(15):
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("uvicorn exited before starting")
            await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        async with asyncio.timeout(15):
            await task


@dataclass
class Harness:
    base_url: str
    app: Any
    clock: ManualClock
    client: httpx.AsyncClient
    _tokens: dict[str, str] = field(default_factory=dict)
    _issued: dict[str, dt.datetime] = field(default_factory=dict)
    # Replica mode (DISPATCH_TEST_REPLICAS=2 on PostgreSQL): every replica, this one
    # first. REST goes to this one, websockets to the last.
    replicas: list[Harness] = field(default_factory=list)

    @property
    def ctx(self) -> AppContext:
        ctx: AppContext = self.app.state.ctx
        return ctx

    @property
    def ws_url(self) -> str:
        home = self.replicas[-1] if self.replicas else self
        return home.base_url.replace("http://", "ws://")

    async def settle(self) -> None:
        """Replica mode: every replica knows what the sockets' replica knows (positions
        written behind and read by the others, events and what they refresh). What the
        staleness bound of the README gives within seconds, at once."""
        for replica in self.replicas:
            await replica.ctx.positions.flush()
        for replica in self.replicas:
            await replica.ctx.feed.now()
            if replica.ctx.peers is not None:
                await replica.ctx.peers.sync()
                await replica.ctx.peers.settled()

    def now(self) -> dt.datetime:
        return self.clock.now()

    # Credentials -------------------------------------------------------------------

    async def user(self, role: str, *, password: str = "correct-horse-battery", **kw: Any) -> str:
        """Create a user with this role; returns its username."""
        username = f"{role}-{uuid.uuid4().hex[:8]}"
        async with self.ctx.db.transaction() as session:
            await create_user(
                session, self.ctx, SYSTEM, username=username, password=password, role=role, **kw
            )
        return username

    async def login(self, username: str, password: str = "correct-horse-battery") -> str:
        response = await self.client.post(
            "/api/v1/auth/token", data={"username": username, "password": password}
        )
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    async def token(self, role: str, **kw: Any) -> str:
        """A bearer token for a (cached) user of this role; company managers need company_id."""
        key = f"{role}:{sorted(kw.items())}"
        issued = self._issued.get(key)
        # Tokens live 15 min, by the (manual) clock tests move: renewed well before.
        if issued is not None and abs((self.now() - issued).total_seconds()) > TOKEN_RENEW_S:
            self._tokens.pop(key, None)
        if key not in self._tokens:
            self._tokens[key] = await self.login(await self.user(role, **kw))
            self._issued[key] = self.now()
        return self._tokens[key]

    async def api_key(self, scopes: list[str], station_id: str | None = None) -> str:
        async with self.ctx.db.transaction() as session:
            _, plaintext = await create_api_key(
                session, self.ctx, SYSTEM, name="test", scopes=scopes, station_id=station_id
            )
        return plaintext

    async def headers(self, role: str = "admin", **kw: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.token(role, **kw)}"}

    # Requests as admin unless told otherwise ---------------------------------------

    async def post(
        self, path: str, body: Any = None, *, role: str = "admin", **kw: Any
    ) -> httpx.Response:
        await self.settle()  # replica mode: what the phones did is known everywhere first
        response = await self.client.post(path, json=body, headers=await self.headers(role), **kw)
        await self.settle()
        return response

    async def get(self, path: str, *, role: str = "admin", **kw: Any) -> httpx.Response:
        await self.settle()
        return await self.client.get(path, headers=await self.headers(role), **kw)

    async def patch(self, path: str, body: Any, *, role: str = "admin") -> httpx.Response:
        await self.settle()
        response = await self.client.patch(path, json=body, headers=await self.headers(role))
        await self.settle()
        return response

    # Factories (through the real API) ----------------------------------------------

    async def make_company(self, **overrides: Any) -> dict[str, Any]:
        body = {
            "name": f"Company {uuid.uuid4().hex[:6]}",
            "licence_no": f"LIC-{uuid.uuid4().hex[:10]}",
            "licence_expires_on": "2030-01-01",
            **overrides,
        }
        response = await self.post("/api/v1/companies", body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def make_guard(self, company_id: str | None = None, **overrides: Any) -> dict[str, Any]:
        if company_id is None:
            company_id = (await self.make_company())["id"]
        body = {
            "company_id": company_id,
            "name": "Zhang Wei",
            "badge_no": f"B-{uuid.uuid4().hex[:10]}",
            "skills": ["first_aid"],
            "certificate_expires_on": "2030-01-01",
            **overrides,
        }
        response = await self.post("/api/v1/guards", body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def make_station(
        self, center: tuple[float, float], half_size_deg: float = 0.05, **overrides: Any
    ) -> dict[str, Any]:
        body = {
            "name": f"Station {uuid.uuid4().hex[:8]}",
            "jurisdiction": square(center, half_size_deg),
            **overrides,
        }
        response = await self.post("/api/v1/stations", body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def make_incident(self, center: tuple[float, float], **overrides: Any) -> dict[str, Any]:
        role = overrides.pop("role", "operator")
        body = {
            "category": "theft",
            "priority": 3,
            "location": {"lat": center[0], "lon": center[1]},
            "description": "bicycle stolen at the north gate",
            **overrides,
        }
        response = await self.post("/api/v1/incidents", body, role=role)
        assert response.status_code == 201, response.text
        return dict(response.json())


def square(center: tuple[float, float], half: float) -> dict[str, Any]:
    lat, lon = center
    ring = [
        [lon - half, lat - half],
        [lon + half, lat - half],
        [lon + half, lat + half],
        [lon - half, lat + half],
        [lon - half, lat - half],
    ]
    return {"type": "Polygon", "coordinates": [ring]}


REPLICAS = int(os.environ.get("DISPATCH_TEST_REPLICAS", "1"))


@contextlib.asynccontextmanager
async def start_harness(
    database_url: str, clock: ManualClock | None = None, **settings_overrides: Any
) -> AsyncIterator[Harness]:
    """The service for a test; with DISPATCH_TEST_REPLICAS=N on PostgreSQL, N replicas."""
    if REPLICAS > 1 and not database_url.startswith("sqlite") and clock is None:
        async with start_replicas(database_url, REPLICAS, **settings_overrides) as replicas:
            first = replicas[0]
            first.replicas = replicas
            _act_for_all(replicas)
            yield first
        return
    async with _start_one(database_url, clock, **settings_overrides) as harness:
        yield harness


def _act_for_all(replicas: list[Harness]) -> None:
    """Replica mode: what tests ask of the first replica's background work (write
    positions behind, fire due timers, drain webhooks, tick the consoles' positions feed)
    is done by every replica."""
    first = replicas[0].ctx
    for name, attr in (
        ("positions", "flush"),
        ("scheduler", "fire_due"),
        ("webhooks", "drain"),
        ("positions_feed", "tick"),
    ):
        own = [getattr(getattr(r.ctx, name), attr) for r in replicas]

        async def everywhere(*args: Any, _own: list[Any] = own, **kw: Any) -> Any:
            results = [await call(*args, **kw) for call in _own]
            return sum(results) if all(isinstance(r, int) for r in results) else results[0]

        setattr(getattr(first, name), attr, everywhere)


@contextlib.asynccontextmanager
async def _start_one(
    database_url: str, clock: ManualClock | None = None, **settings_overrides: Any
) -> AsyncIterator[Harness]:
    settings = settings_for(database_url, **settings_overrides)
    clock = clock or ManualClock()
    app = create_app(settings, clock)
    async with serve(app, settings) as base_url:
        # uvicorn closes a connection idle for 5 s, httpx reuses one idle for up to 5 s:
        # a request sent as the server closes reads nothing (httpx.ReadError). Idle
        # connections are dropped by the client well before the server would.
        limits = httpx.Limits(keepalive_expiry=1.0)
        async with httpx.AsyncClient(base_url=base_url, timeout=20, limits=limits) as client:
            yield Harness(base_url=base_url, app=app, clock=clock, client=client)


@contextlib.asynccontextmanager
async def start_replicas(
    database_url: str, count: int = 2, **settings_overrides: Any
) -> AsyncIterator[list[Harness]]:
    """`count` replicas of the service (each its own app, uvicorn and port) on one
    PostgreSQL database, sharing one ManualClock, as `serve` processes would a clock."""
    clock = ManualClock()
    async with contextlib.AsyncExitStack() as stack:
        replicas = [
            await stack.enter_async_context(_start_one(database_url, clock, **settings_overrides))
            for _ in range(count)
        ]
        yield replicas
