"""Engine, sessions and transactions for SQLite (embedded) and PostgreSQL (production)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Generator
from functools import partial
from typing import Any

import aiosqlite
from sqlalchemy import event, make_url, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

log = logging.getLogger(__name__)

_AFTER_COMMIT = "after_commit"
SERIAL = "serial"
EVENT_ORDER_LOCK = 0x6469_7370  # "disp": the advisory lock that orders event writers


def after_commit(session: AsyncSession, callback: Callable[[], Any]) -> None:
    """Run `callback` once the session's transaction has committed (never on rollback)."""
    session.info.setdefault(_AFTER_COMMIT, []).append(callback)


class Database:
    """One engine and its sessionmaker; `transaction()` is the only way to open a session."""

    def __init__(
        self,
        url: str,
        *,
        sqlite_synchronous: str = "NORMAL",
        sqlite_busy_timeout_ms: int = 5000,
        echo: bool = False,
    ) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            path = make_url(url).database or ":memory:"
            self.engine = create_async_engine(
                url, echo=echo, async_creator=partial(_InlineSQLite.open, path)
            )
            _configure_sqlite(self.engine.sync_engine, sqlite_synchronous, sqlite_busy_timeout_ms)
        else:
            self.engine = create_async_engine(
                url, echo=echo, pool_size=10, max_overflow=20, pool_pre_ping=True
            )
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        # Serial writers queue here, in process, without holding a connection. On SQLite
        # every writer does (one process owns the file; SQLite's busy handler sleeps
        # would dominate dispatch latency otherwise).
        self._writer = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def transaction(
        self, *, readonly: bool = False, serial: bool = True
    ) -> AsyncIterator[AsyncSession]:
        """A session in one transaction: committed on success, rolled back on error.

        Writers are `serial` by default: they may record events, and event ids must become
        visible, and be published, in commit order, so a stream resuming "after id N"
        never skips one. In process, serial writers hold `_writer` through commit and
        their after-commit callbacks; across processes, PostgreSQL's transaction-scoped
        advisory lock (taken first, so no cycle with row locks is possible) orders them.
        Only writers that never record events (position write-behind, acks) pass
        serial=False.
        """
        if self.is_sqlite:
            # SQLite runs on the loop's thread and its awaits never suspend: yield once
            # per transaction, so a loop of transactions cannot starve other tasks.
            await asyncio.sleep(0)
        exclusive = not readonly and (serial or self.is_sqlite)
        lock: contextlib.AbstractAsyncContextManager[Any] = (
            self._writer if exclusive else contextlib.nullcontext()
        )
        async with lock:
            session = self.sessionmaker()
            callbacks: list[Callable[[], Any]] = []
            try:
                if self.is_sqlite:
                    await session.connection(
                        execution_options={"sqlite_begin": "DEFERRED" if readonly else "IMMEDIATE"}
                    )
                elif serial and not readonly:
                    await session.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": EVENT_ORDER_LOCK}
                    )
                session.info[SERIAL] = serial and not readonly
                yield session
                if not readonly:  # a reader just closes: rollback would expire its objects
                    await session.commit()
                    callbacks = session.info.pop(_AFTER_COMMIT, [])
            except BaseException:
                await session.rollback()
                raise
            finally:
                await session.close()
            for callback in callbacks:
                try:
                    callback()
                except Exception:  # a notification must never undo a committed change
                    log.exception("after-commit callback failed")

    async def dispose(self) -> None:
        await self.engine.dispose()


class _InlineSQLite(aiosqlite.Connection):
    """aiosqlite's interface, run on the event loop's own thread.

    A statement on a local SQLite file takes tens of microseconds; handing it to
    aiosqlite's worker thread and back costs several hundred on a busy loop, and a
    dispatch runs twenty of them. Writers are serialised in process (Database), WAL
    readers never wait, and synchronous=NORMAL commits do not fsync, so nothing here
    blocks for long; only another process holding the write lock (the CLI) can make a
    writer wait, up to the busy timeout.
    """

    def __init__(self, path: str) -> None:
        super().__init__(
            partial(sqlite3.connect, path, check_same_thread=False), iter_chunk_size=64
        )
        self._tx = _RunNow()  # type: ignore[assignment]

    def __await__(self) -> Generator[Any, None, _InlineSQLite]:
        return self._connect().__await__()  # type: ignore[return-value]  # no thread to start

    @classmethod
    async def open(cls, path: str) -> _InlineSQLite:
        return await cls(path)


class _RunNow:
    """Stands in for the queue to aiosqlite's worker thread: runs each call at once."""

    def put_nowait(self, item: tuple[asyncio.Future[Any] | None, Callable[[], Any]]) -> None:
        future, function = item
        try:
            result = function()
        except BaseException as exc:
            if future is None:
                raise
            future.set_exception(exc)
        else:
            if future is not None:
                future.set_result(result)


def _configure_sqlite(sync_engine: Any, synchronous: str, busy_timeout_ms: int) -> None:
    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let us issue BEGIN ourselves (pysqlite's implicit BEGIN is DEFERRED and late).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
        cursor.execute("PRAGMA foreign_keys=ON")  # off by default in SQLite
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")  # other processes (CLI)
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Writers take the write lock up front: SQLite's stand-in for SELECT … FOR UPDATE.
        mode = connection.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        connection.exec_driver_sql(f"BEGIN {mode}")
