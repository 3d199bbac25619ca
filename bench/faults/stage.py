"""Everything a scenario runs on: a fresh database, replicas, a police station, a webhook
receiver subscribed to the incident webhooks, guard phones on every replica, the load.

The database is created for the scenario and dropped after it, so each ledger counts
one scenario's messages only. `settle()` waits, bounded, until nothing is in flight (no
open offer, no pending delivery, every phone caught up with its channel), then the
ledger is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from bench.common import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    CENTER,
    fresh_database,
    offset,
    pg_dsn,
    seed_guards,
)
from bench.faults.cluster import Cluster
from bench.faults.ledger import SUBSCRIBED, Ledger, reconcile
from bench.faults.phones import Phone
from bench.faults.proxy import TcpProxy
from bench.faults.receiver import WebhookReceiver
from bench.faults.workload import Api, Record, Workload

SPREAD_M = 600.0  # guards stand within this of the centre: every incident has candidates
SETTLE_S = 60.0  # after the fault: incidents end, frames and webhooks arrive


@dataclass
class Stage:
    cluster: Cluster
    phones: list[Phone]
    api: Api
    record: Record
    receiver: WebhookReceiver
    workload: Workload
    subscription_id: str
    guard_proxy: TcpProxy | None
    faults: list[tuple[float, float]] = field(default_factory=list)  # (start, end) epoch s
    behind: dict[str, int] = field(default_factory=dict)  # guard → last seq, when last looked

    @contextlib.contextmanager
    def fault(self) -> Iterator[None]:
        """Marks a fault window: timers due inside it are judged from its end."""
        start = time.time()
        try:
            yield
        finally:
            self.faults.append((start, time.time()))

    async def settle(self) -> float:
        """Let the incidents end and everything in flight arrive, within SETTLE_S in all;
        the seconds it took."""
        started = time.monotonic()
        deadline = started + SETTLE_S
        await self.workload.settle(timeout_s=SETTLE_S / 2)
        dsn, name = pg_dsn(self.cluster.url)
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, asyncpg.PostgresError, TimeoutError):
                async with asyncio.timeout(10):
                    if await self._quiet(f"{dsn}/{name}"):
                        break
            await asyncio.sleep(0.5)
        return time.monotonic() - started

    async def _quiet(self, dsn: str) -> bool:
        conn = await asyncpg.connect(dsn, timeout=5)
        try:
            open_offers = await conn.fetchval("SELECT count(*) FROM offers WHERE outcome IS NULL")
            pending = await conn.fetchval(
                "SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'"
            )
            channels = dict(await conn.fetch("SELECT guard_id, last_seq FROM guard_channels"))
        finally:
            await conn.close()
        self.behind = {
            p.guard_id: channels[p.guard_id]
            for p in self.phones
            if p.log.max_seq < channels.get(p.guard_id, 0)
        }
        return open_offers == 0 and pending == 0 and not self.behind

    async def ledger(self) -> Ledger:
        return await reconcile(
            self.cluster.url,
            self.phones,
            self.record,
            self.receiver,
            self.subscription_id,
            self.faults,
        )


def _square(half_m: float) -> dict[str, object]:
    corners = [
        offset(*CENTER, n * half_m, e * half_m) for n, e in ((-1, -1), (-1, 1), (1, 1), (1, -1))
    ]
    ring = [[lon, lat] for lat, lon in corners]
    return {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}


@contextlib.asynccontextmanager
async def staged(
    replicas: int,
    guards: int,
    *,
    db_proxied: frozenset[int] = frozenset(),
    guards_via_proxy: bool = False,
    rate: float = 3.0,
) -> AsyncIterator[Stage]:
    """A stage with `replicas` replicas and `guards` connected phones; torn down after.

    `db_proxied` replicas reach PostgreSQL through a proxy each; with `guards_via_proxy`
    the phones homed on replica 0 reach it only through one proxy."""
    with tempfile.TemporaryDirectory(prefix="dispatch-faults-") as tmpdir:
        tmp = Path(tmpdir)
        async with fresh_database("postgres", tmp) as url:
            cluster = Cluster(url, tmp, replicas, db_proxied)
            first = await cluster.prepare()
            receiver = WebhookReceiver()
            record = Record()
            api = Api(cluster.http_urls, record)
            api.down = lambda i: not cluster.alive(i)
            guard_proxy: TcpProxy | None = None
            phones: list[Phone] = []
            tasks: list[asyncio.Task[None]] = []
            try:
                await asyncio.to_thread(first.cli, "migrate")
                await asyncio.to_thread(
                    first.cli,
                    "create-user",
                    "--username",
                    ADMIN_USER,
                    "--password",
                    ADMIN_PASSWORD,
                    "--role",
                    "admin",
                )
                seeded = await asyncio.to_thread(seed_guards, first, guards)
                await cluster.start(0)
                await api.login()
                station = await api.call(
                    "POST",
                    "/api/v1/stations",
                    "setup",
                    json={"name": "Fault Suite Station", "jurisdiction": _square(5000)},
                )
                assert station is not None and station.status_code == 201, station
                await receiver.start()
                hook = await api.call(
                    "POST",
                    "/api/v1/webhooks",
                    "setup",
                    json={"url": receiver.url, "event_types": SUBSCRIBED},
                )
                assert hook is not None and hook.status_code == 201, hook and hook.text
                receiver.secret = hook.json()["secret"]
                # The others start after the station exists, so they load its jurisdiction.
                await asyncio.gather(*(cluster.start(i) for i in range(1, replicas)))
                ws_urls = cluster.ws_urls
                if guards_via_proxy:
                    guard_proxy = TcpProxy("127.0.0.1", cluster.servers[0].port)
                    await guard_proxy.start()
                for n, s in enumerate(seeded):
                    home = n % replicas
                    urls = ws_urls[home:] + ws_urls[:home]
                    if guard_proxy is not None and home == 0:
                        urls = [f"ws://127.0.0.1:{guard_proxy.port}"]
                    lat, lon = offset(
                        *CENTER,
                        SPREAD_M * ((n * 37) % 100 / 50 - 1),
                        SPREAD_M * ((n * 61) % 100 / 50 - 1),
                    )
                    phones.append(Phone(s, lat, lon, urls))
                tasks = [asyncio.create_task(p.run()) for p in phones]
                async with asyncio.timeout(60):
                    await asyncio.gather(*(p.connected.wait() for p in phones))
                # First pings reach every replica's live index (DISPATCH_REPLICA_SYNC_S + the
                # position flush interval: 2 s at the defaults).
                await asyncio.sleep(3.0)
                spots = [(p.lat, p.lon) for p in phones]
                yield Stage(
                    cluster,
                    phones,
                    api,
                    record,
                    receiver,
                    Workload(api, record, spots, rate),
                    hook.json()["id"],
                    guard_proxy,
                )
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                await api.close()
                await receiver.stop()
                if guard_proxy is not None:
                    await guard_proxy.close()
                await cluster.stop()
