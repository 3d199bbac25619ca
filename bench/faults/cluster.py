"""Replicas: several `python -m app serve` processes on one PostgreSQL database.

Each replica is a bench.common.Server with its own port, log file and DISPATCH_REPLICA_ID.
A replica may reach the database through a TcpProxy (a hung database for that replica
only). Killing is SIGKILL, with no shutdown of any kind; a restart starts the same
command on the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from pathlib import Path

from bench.common import Server, pg_dsn
from bench.faults.proxy import TcpProxy

OFFER_TIMEOUT_S = 3  # short, so offers expire (timers fire) within a scenario
DB_TIMEOUT_S = 5  # DISPATCH_DB_{CONNECT,STATEMENT,POOL}_TIMEOUT_S: the defaults, named

SETTINGS: dict[str, object] = {
    "webhook_allow_networks": "127.0.0.0/8",  # the receiver is on loopback
    "webhook_timeout_s": 2,
    "policy": json.dumps(
        {"priority": {str(p): {"offer_timeout_s": OFFER_TIMEOUT_S} for p in (1, 2, 3, 4)}}
    ),
    "db_connect_timeout_s": DB_TIMEOUT_S,
    "db_statement_timeout_s": DB_TIMEOUT_S,
    "db_pool_timeout_s": DB_TIMEOUT_S,
    "ws_ping_interval_s": 5,  # the server notices a half-open guard socket in ~10 s
    "log_level": "WARNING",
}


def _descendants(pid: int) -> list[int]:
    """Every process below `pid`, from /proc (children first found, then theirs)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rpartition(")")[2].split()
            parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, queue = [], [pid]
    while queue:
        for child in parents.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def slowest_answer_s() -> float:
    """The longest a request should wait on a hung database: asyncpg's command timeout
    (the statement timeout + 1 s, app/db.py) is the largest of the configured timeouts."""
    return DB_TIMEOUT_S + 1.0


class Cluster:
    """N replicas on `url`; `proxied` replicas reach PostgreSQL through their own proxy."""

    def __init__(self, url: str, tmp: Path, replicas: int, proxied: frozenset[int]) -> None:
        self.url = url
        self.tmp = tmp
        self.proxies: dict[int, TcpProxy] = {}
        self.servers: list[Server] = []
        self._proxied = proxied
        self._count = replicas

    async def prepare(self) -> Server:
        """Make the replicas (not started) and their proxies; the first one runs the CLI."""
        dsn, _ = pg_dsn(self.url)
        host_port = dsn.rpartition("@")[2]
        host, _, port = host_port.partition(":")
        for i in range(self._count):
            url = self.url
            if i in self._proxied:
                proxy = TcpProxy(host, int(port or 5432))
                await proxy.start()
                self.proxies[i] = proxy
                url = self.url.replace(host_port, f"127.0.0.1:{proxy.port}")
            server = Server(url, self.tmp, replica_id=f"r{i}", **SETTINGS)
            server.log_path = self.tmp / f"replica-{i}.log"
            self.servers.append(server)
        return self.servers[0]

    @property
    def http_urls(self) -> list[str]:
        return [s.base_url for s in self.servers]

    @property
    def ws_urls(self) -> list[str]:
        return [s.ws_url for s in self.servers]

    def alive(self, i: int) -> bool:
        process = self.servers[i].process
        return process is not None and process.poll() is None

    async def start(self, i: int) -> None:
        await self.servers[i].start(timeout_s=60)

    def kill(self, i: int) -> None:
        """SIGKILL to the replica and any process it started (`serve --workers N`): no
        lifespan shutdown, no flush, sockets reset by the kernel."""
        process = self.servers[i].process
        if process is not None and process.poll() is None:
            for pid in [process.pid, *_descendants(process.pid)]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            process.wait(10)

    async def stop(self) -> None:
        await asyncio.gather(*(s.stop() for s in self.servers), return_exceptions=True)
        for proxy in self.proxies.values():
            await proxy.close()

    def log_tails(self, lines: int = 15) -> str:
        return "\n".join(
            f"--- replica {i} ({s.log_path.name}) ---\n{s.log_tail(lines)}"
            for i, s in enumerate(self.servers)
        )
