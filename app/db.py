"""Engine, sessions and transactions for SQLite (embedded) and PostgreSQL (production)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import traceback
from collections.abc import AsyncIterator, Callable, Generator
from functools import partial
from typing import Any

import aiosqlite
import asyncpg
from sqlalchemy import event, exc, make_url, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from app.errors import DatabaseUnavailable

log = logging.getLogger(__name__)

_AFTER_COMMIT = "after_commit"
SERIAL = "serial"
LONG_READ_TIMEOUT_S = 60


def pg_dsn(url: str) -> str:
    """A libpq / asyncpg DSN from a SQLAlchemy URL (postgresql+asyncpg://… → postgresql://…)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


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
        connect_timeout_s: float = 5.0,
        statement_timeout_s: float = 5.0,
        pool_timeout_s: float = 5.0,
        retry_after_s: int = 5,
        echo: bool = False,
    ) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.pool_timeout_s = pool_timeout_s
        self.retry_after_s = retry_after_s
        if self.is_sqlite:
            path = make_url(url).database or ":memory:"
            self.engine = create_async_engine(
                url, echo=echo, async_creator=partial(_InlineSQLite.open, path)
            )
            _configure_sqlite(self.engine.sync_engine, sqlite_synchronous, sqlite_busy_timeout_ms)
            # Long reads (reports) run on aiosqlite's own worker thread: sqlite3 lets go of
            # the GIL while it steps, so dispatch goes on during a seconds-long aggregation.
            self.long_read_engine = create_async_engine(f"sqlite+aiosqlite:///{path}", echo=echo)
            _configure_sqlite(
                self.long_read_engine.sync_engine, sqlite_synchronous, sqlite_busy_timeout_ms
            )
            _read_only(self.long_read_engine.sync_engine)
        else:
            connect_args = {
                "timeout": connect_timeout_s,
                # The server cancels a slow statement and the connection stays usable; the
                # client-side timeout, a second later, covers a server that no longer answers.
                "server_settings": {"statement_timeout": str(int(statement_timeout_s * 1000))},
                "command_timeout": statement_timeout_s + 1.0,
            }
            self.engine = create_async_engine(
                url,
                echo=echo,
                pool_size=10,
                max_overflow=20,
                pool_pre_ping=True,
                pool_timeout=pool_timeout_s,
                connect_args=connect_args,
            )
            # Its own few connections, with time for a report (the server's limit is set per
            # transaction; this is the client's, which would otherwise cut it at 6 s).
            self.long_read_engine = create_async_engine(
                url,
                echo=echo,
                pool_size=2,
                max_overflow=2,
                pool_pre_ping=True,
                pool_timeout=pool_timeout_s,
                connect_args={**connect_args, "command_timeout": LONG_READ_TIMEOUT_S + 5.0},
            )
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        # SQLite: writers queue here, in process, without holding a connection (one
        # process owns the file; SQLite's busy handler sleeps would dominate dispatch
        # latency otherwise). PostgreSQL has no writer lock: constraints and row locks
        # settle races, and the event feed keeps the stream in id order (app/events/feed.py).
        self._writer = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def transaction(
        self, *, readonly: bool = False, serial: bool = True
    ) -> AsyncIterator[AsyncSession]:
        """A session in one transaction: committed on success, rolled back on error.

        Writers are `serial` by default: they may record events. On SQLite every writer
        holds `_writer` through commit and its after-commit callbacks, so event ids
        become visible in id order. On PostgreSQL writers run concurrently; the event
        feed publishes ids in order without a lock (app/events/watermark.py). Writers
        that never record events (position write-behind, acks) pass serial=False.
        """
        if self.is_sqlite:
            # SQLite runs on the loop's thread and its awaits never suspend: yield once
            # per transaction, so a loop of transactions cannot starve other tasks.
            await asyncio.sleep(0)
        exclusive = not readonly and self.is_sqlite
        if exclusive:
            await self._writer_turn()
        try:
            session = self.sessionmaker()
            callbacks: list[Callable[[], Any]] = []
            try:
                if self.is_sqlite:
                    await session.connection(
                        execution_options={"sqlite_begin": "DEFERRED" if readonly else "IMMEDIATE"}
                    )
                session.info[SERIAL] = serial and not readonly
                yield session
                if not readonly:  # a reader just closes: rollback would expire its objects
                    await session.commit()
                    callbacks = session.info.pop(_AFTER_COMMIT, [])
            except BaseException as error:
                await _abandon(session, error)
                raise
            finally:
                await session.close()
            for callback in callbacks:
                try:
                    callback()
                except Exception:  # a notification must never undo a committed change
                    log.exception("after-commit callback failed")
        finally:
            if exclusive:
                self._writer.release()

    @contextlib.asynccontextmanager
    async def long_read(self) -> AsyncIterator[AsyncSession]:
        """A read-only session for an aggregation that takes seconds. On SQLite it runs
        off the event loop's thread (a `transaction()` would hold the loop throughout);
        on PostgreSQL on connections of its own, with LONG_READ_TIMEOUT_S to finish."""
        session = AsyncSession(self.long_read_engine, expire_on_commit=False)
        try:
            if self.is_sqlite:
                await session.connection(execution_options={"sqlite_begin": "DEFERRED"})
            else:
                await session.execute(
                    text(f"SET LOCAL statement_timeout = '{LONG_READ_TIMEOUT_S}s'")
                )
            yield session
        except BaseException as error:
            await _abandon(session, error)
            raise
        finally:
            await session.close()

    async def _writer_turn(self) -> None:
        """Wait for the writer lock, but no longer than for a pooled connection: behind a
        hung transaction every writer would otherwise queue for its full timeout in turn."""
        try:
            async with asyncio.timeout(self.pool_timeout_s):
                await self._writer.acquire()
        except TimeoutError:
            raise self.unavailable("the database is not keeping up with writes") from None

    def unavailable(self, reason: str) -> DatabaseUnavailable:
        return DatabaseUnavailable(
            f"database unavailable ({reason}); retry later", retry_after_s=self.retry_after_s
        )

    async def dispose(self) -> None:
        await self.engine.dispose()
        await self.long_read_engine.dispose()


async def _abandon(session: AsyncSession, error: BaseException) -> None:
    """Roll back after `error`; on a connection that is gone or hung, drop it instead (a
    ROLLBACK would wait out another timeout), and never let the cleanup hide `error`."""
    try:
        if is_unavailable(error):
            await session.invalidate()
        else:
            await session.rollback()
    except Exception:
        log.warning("rollback after %s failed", type(error).__name__, exc_info=True)


# SQLSTATE classes of a database that cannot serve now: 08 connection exception,
# 53 insufficient resources (too many connections), 57 operator intervention (57014
# statement_timeout, 57P01 shutdown, 57P03 starting up); 55P03 lock_not_available;
# 40001 / 40P01, a serialization failure or deadlock victim: nothing was written, retry.
_UNAVAILABLE_SQLSTATES = ("08", "53", "57", "55P03", "40001", "40P01")
_SQLITE_UNAVAILABLE = (
    "database is locked",
    "database table is locked",
    "unable to open database file",
    "disk i/o error",
    "attempt to write a readonly database",
)
_DRIVER_MODULES = ("asyncpg", "sqlalchemy", "aiosqlite")


def is_unavailable(error: BaseException) -> bool:
    """Whether `error` (or what caused it) says the database is down, hung or locked, as
    opposed to a bug or a constraint: those answer 503 with Retry-After."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _says_unavailable(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def _says_unavailable(error: BaseException) -> bool:
    if isinstance(error, DatabaseUnavailable | exc.TimeoutError):  # exc.TimeoutError: pool
        return True
    if isinstance(error, exc.DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, asyncpg.PostgresError):
        return str(getattr(error, "sqlstate", "")).startswith(_UNAVAILABLE_SQLSTATES)
    if isinstance(error, asyncpg.InterfaceError):
        return "connection" in str(error) and "closed" in str(error)
    if isinstance(error, sqlite3.OperationalError):
        return str(error).lower().startswith(_SQLITE_UNAVAILABLE)
    if isinstance(error, OSError):  # refused, reset, timed out: only from the driver itself
        return _raised_in_driver(error)
    return False


def _raised_in_driver(error: BaseException) -> bool:
    for frame, _ in traceback.walk_tb(error.__traceback__):
        if frame.f_globals.get("__name__", "").startswith(_DRIVER_MODULES):
            return True
    return False


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


def _read_only(sync_engine: Any) -> None:
    """Long reads never write: SQLite refuses it, so none can take the write lock behind
    the in-process writer queue."""

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA query_only=ON")


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
