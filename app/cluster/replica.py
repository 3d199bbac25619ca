"""This process as one replica: its id, its heartbeat, and SQLite's one-server rule."""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import secrets
import socket
from pathlib import Path
from typing import IO

from sqlalchemy import delete, func, make_url, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import Database
from app.models import Replica

HEARTBEAT_S = 2.0
DEAD_AFTER_S = 10.0  # a replica silent this long is gone: its guards' sockets with it
FORGET_AFTER = dt.timedelta(days=1)  # rows of replicas gone this long are deleted


def new_replica_id(configured: str = "") -> str:
    """Unique per process start: a restarted replica is a new one (its sockets are gone)."""
    base = configured or f"{socket.gethostname()[:32]}-{os.getpid()}"
    return f"{base}-{secrets.token_hex(3)}"


async def database_now(session: AsyncSession) -> dt.datetime:
    """The database server's time: one clock for every replica, whatever their hosts'."""
    if session.get_bind().dialect.name == "sqlite":
        return dt.datetime.now(dt.UTC)
    value = await session.scalar(select(func.now()))
    assert isinstance(value, dt.datetime)
    return value


async def heartbeat(db: Database, replica_id: str, started_at: dt.datetime) -> None:
    insert = sqlite.insert if db.is_sqlite else postgresql.insert
    async with db.transaction(serial=False) as session:
        now = await database_now(session)
        await session.execute(
            insert(Replica)
            .values(id=replica_id, started_at=started_at, heartbeat_at=now)
            .on_conflict_do_update(index_elements=["id"], set_={"heartbeat_at": now})
        )
        await session.execute(delete(Replica).where(Replica.heartbeat_at < now - FORGET_AFTER))


async def alive(db: Database) -> set[str]:
    """The replicas whose heartbeat is fresh (by the database's clock)."""
    async with db.transaction(readonly=True) as session:
        since = await database_now(session) - dt.timedelta(seconds=DEAD_AFTER_S)
        found = await session.scalars(select(Replica.id).where(Replica.heartbeat_at >= since))
        return set(found.all())


async def leave(db: Database, replica_id: str) -> None:
    """On a clean shutdown: the others need not wait DEAD_AFTER_S to know."""
    async with db.transaction(serial=False) as session:
        await session.execute(delete(Replica).where(Replica.id == replica_id))


class SecondServer(RuntimeError):
    """Another server already runs on this SQLite file."""


_HELD: dict[str, tuple[IO[str], int]] = {}  # lock path → (open lock file, holders here)


def claim_sqlite_file(database_url: str) -> str | None:
    """SQLite is one process: hold a lock next to the database file while serving, so a
    second server on the same file stops at start with a clear message (SecondServer).
    Re-entrant within the process (the CLI checks before uvicorn starts, the app again).
    Returns what to pass to `release_sqlite_file`; None for PostgreSQL and in-memory."""
    if not database_url.startswith("sqlite"):
        return None
    path = make_url(database_url).database
    if not path or path == ":memory:":
        return None
    lock_path = str(Path(f"{path}.server-lock").resolve())
    if lock_path in _HELD:
        handle, holders = _HELD[lock_path]
        _HELD[lock_path] = (handle, holders + 1)
        return lock_path
    handle = open(lock_path, "a+")  # noqa: SIM115 - held open while serving
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise SecondServer(
            f"another server ({holder}) is already running on the SQLite database {path}. "
            "SQLite serves one process: stop that server, or run replicas on PostgreSQL "
            "(DISPATCH_DATABASE_URL=postgresql+asyncpg://…)."
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}\n")
    handle.flush()
    _HELD[lock_path] = (handle, 1)
    return lock_path


def release_sqlite_file(claim: str | None) -> None:
    if claim is None or claim not in _HELD:
        return
    handle, holders = _HELD[claim]
    if holders > 1:
        _HELD[claim] = (handle, holders - 1)
        return
    del _HELD[claim]
    handle.close()  # closing the file lets go of the lock
