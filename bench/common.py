"""Shared pieces of the benchmarks: the machine, a server subprocess, seeding, guard phones.

The server under test always runs as its own process (`python -m app serve`), on a fresh
database that the benchmark creates and removes; simulated guards are real websocket
clients in the benchmark process or in load processes it spawns.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import functools
import json
import math
import os
import platform
import random
import resource
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret-key-0123456789-abcdefghijklmnop"
PG_URL = os.environ.get("BENCH_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
ADMIN_USER, ADMIN_PASSWORD = "bench-admin", "bench-admin-password-1"
CENTER = (39.13, 117.20)  # Tianjin
HALF_BOX_M = 20_000.0  # the 40 km × 40 km box around CENTER
M_PER_DEG = 111_195.0


# The machine and the figures ----------------------------------------------------------


def machine_line() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"machine: {model}, {os.cpu_count()} cores, Python {platform.python_version()}"


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (q in 0..100)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def raise_nofile(wanted: int) -> int:
    """Raise this process's open-file soft limit (children inherit it); the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return max(soft, target)


def compression_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--compression",
        choices=["deflate", "none"],
        default="deflate",
        help="guards offer permessage-deflate (the websockets library's default) or not",
    )


def compression_of(args: argparse.Namespace) -> str | None:
    return None if args.compression == "none" else str(args.compression)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Geometry -------------------------------------------------------------------------------


def offset(
    lat: float, lon: float, north_m: float = 0.0, east_m: float = 0.0
) -> tuple[float, float]:
    """The point this many metres north/east of (lat, lon)."""
    return lat + north_m / M_PER_DEG, lon + east_m / (M_PER_DEG * math.cos(math.radians(lat)))


def random_point(rng: random.Random, half_m: float = HALF_BOX_M) -> tuple[float, float]:
    """Uniform in the box around CENTER."""
    return offset(*CENTER, rng.uniform(-half_m, half_m), rng.uniform(-half_m, half_m))


# Databases ------------------------------------------------------------------------------


def pg_dsn(url: str) -> tuple[str, str]:
    """('postgresql://u@h:p', 'dbname') from a SQLAlchemy URL."""
    base, _, name = url.rpartition("/")
    return base.replace("postgresql+asyncpg", "postgresql"), name.split("?")[0]


@contextlib.asynccontextmanager
async def fresh_database(
    kind: str, tmp: Path, extensions: Iterable[str] = ()
) -> AsyncIterator[str]:
    """An empty SQLite file or PostgreSQL database (dropped afterwards); its SQLAlchemy URL."""
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
        return
    dsn, admin_db = pg_dsn(PG_URL)
    name = f"dispatch_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(f"{dsn}/{admin_db}")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        if extensions:
            conn = await asyncpg.connect(f"{dsn}/{name}")
            try:
                for ext in extensions:
                    await conn.execute(f"CREATE EXTENSION {ext}")
            finally:
                await conn.close()
        yield PG_URL.rpartition("/")[0] + f"/{name}"
    finally:
        admin = await asyncpg.connect(f"{dsn}/{admin_db}")
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


# The server under test ------------------------------------------------------------------


class Server:
    """`python -m app serve` in a subprocess on a free port, with DISPATCH_* settings."""

    def __init__(self, database_url: str, tmp: Path, **settings: object) -> None:
        self.database_url = database_url
        self.port = free_port()
        self.log_path = tmp / "server.log"
        self.env = {
            **os.environ,
            "DISPATCH_ENV": "test",
            "DISPATCH_DATABASE_URL": database_url,
            "DISPATCH_SECRET_KEY": SECRET,
            "DISPATCH_LOG_LEVEL": "WARNING",
            **{f"DISPATCH_{key.upper()}": str(value) for key, value in settings.items()},
        }
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def cli(self, *args: str) -> str:
        """Run `python -m app <args>` against the same database and settings."""
        done = subprocess.run(
            [sys.executable, "-m", "app", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"python -m app {args[0]} failed:\n{done.stderr[-2000:]}")
        return done.stdout

    async def start(self, timeout_s: float = 60.0) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "app",
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                ],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(base_url=self.base_url) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"server exited at start:\n{self.log_tail()}")
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/readyz")).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        raise RuntimeError(f"server not ready within {timeout_s:.0f} s:\n{self.log_tail()}")

    async def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            await asyncio.to_thread(self.process.wait, 20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            await asyncio.to_thread(self.process.wait, 10)

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def cpu_s(self) -> float:
        """User + system CPU seconds the server has used so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"


@contextlib.asynccontextmanager
async def running_server(db: str, **settings: object) -> AsyncIterator[Server]:
    """Fresh database → migrate → admin user → server started; all removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="dispatch-bench-") as tmpdir:
        tmp = Path(tmpdir)
        async with fresh_database(db, tmp) as url:
            server = Server(url, tmp, **settings)
            _migrate_and_admin(server)
            try:
                await server.start()
                yield server
            finally:
                await server.stop()


def _migrate_and_admin(server: Server) -> None:
    server.cli("migrate")
    server.cli(
        "create-user",
        "--username",
        ADMIN_USER,
        "--password",
        ADMIN_PASSWORD,
        "--role",
        "admin",
    )


@contextlib.asynccontextmanager
async def running_replicas(
    db: str, replicas: int, **settings: object
) -> AsyncIterator[list[Server]]:
    """Like running_server, with `replicas` servers on one fresh database.

    Several replicas need PostgreSQL. Each is its own `python -m app serve` on its own
    port, with its own log (replica-<i>.log) and DISPATCH_REPLICA_ID bench-<i>; all share
    the database and the secret key. One replica is exactly running_server's server.
    """
    if replicas == 1:
        async with running_server(db, **settings) as server:
            yield [server]
        return
    if db != "postgres":
        raise SystemExit("several replicas need PostgreSQL (--db postgres)")
    with tempfile.TemporaryDirectory(prefix="dispatch-bench-") as tmpdir:
        tmp = Path(tmpdir)
        async with fresh_database(db, tmp) as url:
            servers = []
            for i in range(replicas):
                server = Server(url, tmp, replica_id=f"bench-{i}", **settings)
                while any(other.port == server.port for other in servers):
                    server.port = free_port()
                server.log_path = tmp / f"replica-{i}.log"
                servers.append(server)
            _migrate_and_admin(servers[0])
            try:
                await asyncio.gather(*(server.start() for server in servers))
                yield servers
            finally:
                await asyncio.gather(*(server.stop() for server in servers))


async def admin_token(server: Server) -> str:
    """A bearer token for the bench admin (valid on every replica: one secret key)."""
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        response = await client.post(
            "/api/v1/auth/token", data={"username": ADMIN_USER, "password": ADMIN_PASSWORD}
        )
        response.raise_for_status()
        return str(response.json()["access_token"])


async def admin_client(server: Server) -> httpx.AsyncClient:
    """An HTTP client logged in as the bench admin (caller closes it)."""
    client = httpx.AsyncClient(base_url=server.base_url, timeout=30)
    response = await client.post(
        "/api/v1/auth/token", data={"username": ADMIN_USER, "password": ADMIN_PASSWORD}
    )
    response.raise_for_status()
    client.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
    return client


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds process `pid` has used so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class PostgresCpu:
    """CPU seconds used by the machine's `postgres` processes between two readings.

    Per process, so a backend that ends between the readings takes nothing away (what
    it used since the first reading is lost: the figure is a lower bound); every
    PostgreSQL cluster on the machine counts, whoever's sessions it serves.
    """

    def __init__(self) -> None:
        self.start = self._read()

    @staticmethod
    def _read() -> dict[int, float]:
        found = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    if (entry / "comm").read_text().strip() == "postgres":
                        found[int(entry.name)] = process_cpu_s(int(entry.name))
        return found

    def used_s(self) -> float:
        now = self._read()
        return sum(max(0.0, cpu - self.start.get(pid, 0.0)) for pid, cpu in now.items())


class RawHttp:
    """One keep-alive HTTP/1.1 connection on asyncio streams, for load generators.

    It costs the shared CPU a small fraction of what httpx does per request, so on a
    2-core machine the load generator takes less from the servers it measures.
    Transport failures raise OSError or asyncio.IncompleteReadError and reset the
    connection; the next request opens a new one. A connection idle for IDLE_S is not
    reused: uvicorn closes keep-alive connections idle for 5 s, and a request written
    as it does would fail for the client's sake, not the server's.
    """

    IDLE_S = 4.0

    def __init__(self, host: str, port: int, token: str) -> None:
        self.host, self.port = host, port
        self._head = (
            f"Host: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
            "Content-Type: application/json\r\n"
        )
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._used = 0.0

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        """(status, response body) of POST path with a JSON body."""
        if self._writer is not None and time.monotonic() - self._used > self.IDLE_S:
            await self.close()
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None
        try:
            self._writer.write(
                f"POST {path} HTTP/1.1\r\n{self._head}Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            head = await self._reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            if "content-length" in headers:
                payload = await self._reader.readexactly(int(headers["content-length"]))
            elif headers.get("transfer-encoding") == "chunked":
                payload = await self._chunked()
            else:
                payload = await self._reader.read()
                headers["connection"] = "close"
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            await self.close()
            raise
        self._used = time.monotonic()
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, payload

    async def _chunked(self) -> bytes:
        assert self._reader is not None
        parts = []
        while True:
            size = int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self._reader.readuntil(b"\r\n")
                return b"".join(parts)
            parts.append(await self._reader.readexactly(size))
            await self._reader.readexactly(2)

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text → {'name{labels}': value}."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            values[key] = float(value)
    return values


async def metrics(client: httpx.AsyncClient) -> dict[str, float]:
    """The server's counters; `client` holds a credential with metrics:read."""
    response = await client.get("/metrics")
    response.raise_for_status()
    return parse_metrics(response.text)


async def expect_message(conn: Connection, kind: str, timeout_s: float) -> Any:
    """The payload of the next (kind, payload) message from a load process."""
    if not await asyncio.to_thread(conn.poll, timeout_s):
        raise RuntimeError(f"load process: no '{kind}' within {timeout_s:.0f} s")
    got, payload = conn.recv()
    if got != kind:
        raise RuntimeError(f"load process failed:\n{payload}")
    return payload


GuardSpec = tuple[str, str, float, float]  # guard id, device token, lat, lon (for a process)


@dataclass(frozen=True)
class Seeded:
    guard_id: str
    token: str


def seed_guards(server: Server, count: int) -> list[Seeded]:
    """`count` active guards with device tokens, made by bench.seed in its own process."""
    out = server.log_path.with_name(f"seed-{uuid.uuid4().hex[:6]}.json")
    done = subprocess.run(
        [sys.executable, "-m", "bench.seed", "--guards", str(count), "--out", str(out)],
        cwd=ROOT,
        env=server.env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"seeding failed:\n{done.stderr[-3000:]}")
    return [Seeded(g, t) for g, t in json.loads(out.read_text())]


# Guard phones ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _iso_second(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


def iso_us(epoch_us: int) -> str:
    """Epoch microseconds → ISO 8601 UTC with Z, exact to the microsecond."""
    second, micro = divmod(epoch_us, 1_000_000)
    return f"{_iso_second(second)}.{micro:06d}Z"


class GuardPhone:
    """One guard's websocket: hello/welcome, duty, pings; acks every frame with a seq.

    Pings carry strictly increasing `at` and move at most WALK_MPS (a random walk), so
    the server's speed and ordering checks always accept them.
    """

    WALK_MPS = 1.5
    MAX_STEP_M = 5.0

    def __init__(
        self, seeded: Seeded, lat: float, lon: float, compression: str | None = "deflate"
    ) -> None:
        self.guard_id = seeded.guard_id
        self.compression = compression  # permessage-deflate offered (the library default)
        self.token = seeded.token
        self.lat, self.lon = lat, lon
        self.ws: ClientConnection | None = None
        self.errors: collections.Counter[str] = collections.Counter()
        self.offers: dict[str, tuple[int, dict[str, Any]]] = {}  # incident id → (ns, frame)
        self._offer_waiters: dict[str, asyncio.Future[None]] = {}
        self._withdrawn: set[str] = set()
        self._withdraw_waiters: dict[str, asyncio.Future[None]] = {}
        self._pong: asyncio.Future[None] | None = None
        self._last_us = 0
        self._reader: asyncio.Task[None] | None = None

    async def connect(self, ws_url: str) -> None:
        self.ws = await connect(
            f"{ws_url}/ws/guard",
            additional_headers={"Authorization": f"Bearer {self.token}"},
            open_timeout=60,
            compression=self.compression,
        )
        await self.ws.send('{"type":"hello"}')
        await self._expect("welcome")

    async def on_duty(self) -> None:
        assert self.ws is not None
        await self.ws.send('{"type":"duty","on":true}')
        await self._expect("duty.updated")
        await self.ws.send(self.location())

    async def _expect(self, frame_type: str, timeout: float = 60.0) -> dict[str, Any]:
        assert self.ws is not None
        async with asyncio.timeout(timeout):
            while True:
                frame = json.loads(await self.ws.recv())
                if frame["type"] == frame_type:
                    return dict(frame)
                if frame["type"] == "error":
                    raise RuntimeError(f"guard {self.guard_id}: {frame}")

    def location(self) -> str:
        """The next valid location frame (moves WALK_MPS × elapsed, at most MAX_STEP_M)."""
        at_us = max(time.time_ns() // 1000, self._last_us + 1)
        if self._last_us:
            step = min(self.MAX_STEP_M, self.WALK_MPS * (at_us - self._last_us) / 1e6)
            heading = random.random() * math.tau
            self.lat, self.lon = offset(
                self.lat, self.lon, step * math.cos(heading), step * math.sin(heading)
            )
        self._last_us = at_us
        return (
            f'{{"type":"location","lat":{self.lat!r},"lon":{self.lon!r},'
            f'"accuracy_m":5,"at":"{iso_us(at_us)}"}}'
        )

    def start_reader(self) -> None:
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.ws is not None
        with contextlib.suppress(ConnectionClosed):
            async for raw in self.ws:
                arrived = time.perf_counter_ns()
                frame = json.loads(raw)
                kind = frame.get("type")
                if kind == "offer":
                    incident_id = frame["incident"]["id"]
                    self.offers[incident_id] = (arrived, frame)
                    _wake(self._offer_waiters.pop(incident_id, None))
                elif kind == "offer.withdrawn":
                    self._withdrawn.add(frame["offer_id"])
                    _wake(self._withdraw_waiters.pop(frame["offer_id"], None))
                elif kind == "pong":
                    _wake(self._pong)
                elif kind == "error":
                    self.errors[frame.get("code", "?")] += 1
                if "seq" in frame:
                    await self.ws.send(f'{{"type":"ack","seq":{int(frame["seq"])}}}')

    async def round_trip(self) -> None:
        """App-level ping → pong: every frame sent before it has been handled."""
        assert self.ws is not None
        self._pong = asyncio.get_running_loop().create_future()
        await self.ws.send('{"type":"ping"}')
        await self._pong

    async def offer_for(self, incident_id: str, timeout: float) -> tuple[int, dict[str, Any]]:
        """(perf_counter_ns at arrival, frame) of the offer for this incident."""
        if incident_id not in self.offers:
            waiter = self._offer_waiters.setdefault(
                incident_id, asyncio.get_running_loop().create_future()
            )
            await asyncio.wait_for(waiter, timeout)
        return self.offers.pop(incident_id)

    async def withdrawn(self, offer_id: str, timeout: float) -> None:
        if offer_id not in self._withdrawn:
            waiter = self._withdraw_waiters.setdefault(
                offer_id, asyncio.get_running_loop().create_future()
            )
            await asyncio.wait_for(waiter, timeout)
        self._withdrawn.discard(offer_id)

    async def close(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


async def connect_phones(
    phones: Sequence[GuardPhone], ws_url: str, *, duty: bool, concurrency: int = 32
) -> None:
    """Connect (and put on duty) every phone, a bounded number at a time; start readers."""
    gate = asyncio.Semaphore(concurrency)

    async def one(phone: GuardPhone) -> None:
        async with gate:
            await phone.connect(ws_url)
            if duty:
                await phone.on_duty()
        phone.start_reader()

    await asyncio.gather(*(one(p) for p in phones))


async def keep_pinging(phone: GuardPhone, interval_s: float) -> None:
    """A location ping every interval_s (±20 % jitter), first one at a random offset."""
    assert phone.ws is not None
    await asyncio.sleep(random.uniform(0, interval_s))
    with contextlib.suppress(ConnectionClosed):
        while True:
            await phone.ws.send(phone.location())
            await asyncio.sleep(interval_s * random.uniform(0.8, 1.2))
