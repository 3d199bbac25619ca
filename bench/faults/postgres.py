"""The local PostgreSQL cluster under the database URL: which one, restart it, is it up.

The cluster is found with `pg_lsclusters` by the URL's port (Debian's postgresql-common),
so the suite restarts the server it actually uses and nothing else.
"""

from __future__ import annotations

import asyncio
import subprocess
import time

import asyncpg

from bench.common import PG_URL, pg_dsn

CTL_TIMEOUT_S = 60


def cluster_of(url: str = PG_URL) -> tuple[str, str]:
    """(version, name) of the local cluster listening on the URL's port."""
    dsn, _ = pg_dsn(url)
    port = dsn.rpartition(":")[2] if dsn.count(":") >= 2 else "5432"
    listed = subprocess.run(
        ["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=True, timeout=10
    ).stdout
    for line in listed.splitlines():
        version, name, cluster_port, *_ = line.split()
        if cluster_port == port:
            return version, name
    raise RuntimeError(f"no local PostgreSQL cluster on port {port} (pg_lsclusters)")


def _ctl(action: str, cluster: tuple[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", *cluster, action],
        capture_output=True,
        text=True,
        check=False,
        timeout=CTL_TIMEOUT_S,
    )


def restart(cluster: tuple[str, str]) -> float:
    """Restart the cluster (fast shutdown: sessions are cut); the seconds it took."""
    started = time.monotonic()
    done = _ctl("restart", cluster)
    if done.returncode != 0:
        raise RuntimeError(f"pg_ctlcluster restart failed: {done.stderr.strip()}")
    return time.monotonic() - started


async def wait_accepting(url: str = PG_URL, timeout_s: float = 60.0) -> float:
    """Seconds until the server accepts a connection and answers (bounded)."""
    dsn, name = pg_dsn(url)
    started = time.monotonic()
    deadline = started + timeout_s
    while True:
        try:
            conn = await asyncpg.connect(f"{dsn}/{name}", timeout=2)
            try:
                await conn.fetchval("SELECT 1", timeout=2)
                return time.monotonic() - started
            finally:
                await conn.close()
        except (OSError, asyncpg.PostgresError, TimeoutError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def ensure_up(cluster: tuple[str, str], url: str = PG_URL) -> None:
    """Start the cluster if it is not answering (whatever a scenario left behind)."""
    try:
        await wait_accepting(url, timeout_s=5)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        await asyncio.to_thread(_ctl, "start", cluster)
        await wait_accepting(url, timeout_s=60)
