"""The database handle: one async engine, with the transaction kinds we use.

SQLite is the embedded default (WAL, a busy timeout, foreign keys on);
PostgreSQL is what several replicas share. Write transactions on SQLite start
with `BEGIN IMMEDIATE`, so two writers queue on the busy timeout instead of
one failing when it upgrades its read lock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

SQLITE_BUSY_TIMEOUT_MS = 15_000


class StorageUnavailable(Exception):
    """The database could not be reached or did not answer in time."""


_UNAVAILABLE = (OperationalError, PoolTimeout, ConnectionError, OSError, asyncio.TimeoutError)


def _is_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, _UNAVAILABLE):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    # asyncpg raises its own connection errors, wrapped as DBAPIError (InterfaceError).
    name = type(getattr(exc, "orig", exc)).__name__
    return name in {
        "ConnectionDoesNotExistError",
        "CannotConnectNowError",
        "ConnectionFailureError",
        "InterfaceError",
        "AdminShutdownError",
        "InternalClientError",
        "TooManyConnectionsError",
    }


def normalise_url(url: str) -> str:
    """Accept the plain driver names operators tend to type."""
    u = make_url(url)
    if u.drivername in ("sqlite", "sqlite+pysqlite"):
        u = u.set(drivername="sqlite+aiosqlite")
    elif u.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        u = u.set(drivername="postgresql+asyncpg")
    return u.render_as_string(hide_password=False)


class Database:
    def __init__(self, url: str, *, pool_size: int = 15, connect_timeout: float = 3.0, echo: bool = False):
        self.url = normalise_url(url)
        parsed = make_url(self.url)
        self.dialect = parsed.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported database {parsed.drivername!r}: use sqlite+aiosqlite or postgresql+asyncpg")
        kwargs: dict[str, Any] = {"echo": echo}
        if self.dialect == "sqlite":
            kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
            kwargs["pool_size"] = pool_size
            kwargs["max_overflow"] = pool_size
            kwargs["pool_timeout"] = 30
        else:
            kwargs["pool_pre_ping"] = True
            # Connections rest in autocommit: a read or a one-statement write is one round trip, and
            # so is the ping before each use (outside a transaction it is a bare `;`, not BEGIN / ; /
            # ROLLBACK). Write transactions ask for READ COMMITTED, which is what issues their BEGIN.
            kwargs["isolation_level"] = "AUTOCOMMIT"
            # Big enough that a busy replica reuses connections instead of opening and closing
            # overflow ones; three replicas stay well inside PostgreSQL's default 100 connections.
            kwargs["pool_size"] = pool_size
            kwargs["max_overflow"] = 10
            kwargs["pool_timeout"] = 10
            kwargs["connect_args"] = {"timeout": connect_timeout, "command_timeout": 15}
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        self._write_turn: asyncio.Lock | None = asyncio.Lock() if self.dialect == "sqlite" else None
        if self.dialect == "sqlite":
            self._install_sqlite_hooks()

    def _install_sqlite_hooks(self) -> None:
        sync_engine = self.engine.sync_engine

        @event.listens_for(sync_engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # We issue BEGIN ourselves (below); stop the driver doing it implicitly.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(sync_engine, "begin")
        def _on_begin(conn: Any) -> None:
            mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
            conn.exec_driver_sql(f"BEGIN {mode}")

    @property
    def transactional_engine(self) -> AsyncEngine:
        """The engine for code of others that runs its own `engine.begin()` blocks (slack_sdk's
        OAuth stores): on PostgreSQL, one whose connections really begin a transaction."""
        if self.dialect == "postgresql":
            return self.engine.execution_options(isolation_level="READ COMMITTED")
        return self.engine

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A read-write transaction; committed when the block exits cleanly."""
        if self._write_turn is not None:
            # SQLite has one writer at a time. Writers of this process queue here in order instead
            # of polling the file lock (its busy handler sleeps up to 100 ms a try). This is only
            # for speed: correctness never rests on it, other processes still meet at the file lock.
            async with self._write_turn:
                async with self._write() as conn:
                    yield conn
        else:
            async with self._write() as conn:
                yield conn

    @asynccontextmanager
    async def _connect(self, **options: Any) -> AsyncIterator[AsyncConnection]:
        """A pooled connection; a database that is down or too slow becomes StorageUnavailable."""
        try:
            async with self.engine.connect() as conn:
                if options:
                    await conn.execution_options(**options)
                yield conn
        except BaseException as exc:
            if _is_unavailable(exc):
                raise StorageUnavailable(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc
            raise

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        options = {"sqlite_begin": "IMMEDIATE"} if self.dialect == "sqlite" else {"isolation_level": "READ COMMITTED"}
        async with self._connect(**options) as conn:
            async with conn.begin():
                yield conn

    @asynccontextmanager
    async def single(self) -> AsyncIterator[AsyncConnection]:
        """For one self-contained write statement: its own implicit transaction on PostgreSQL
        (no locks held across round trips), a queued write transaction on SQLite."""
        if self.dialect == "sqlite":
            async with self.write() as conn:
                yield conn
        else:
            async with self.autocommit() as conn:
                yield conn

    @asynccontextmanager
    async def autocommit(self) -> AsyncIterator[AsyncConnection]:
        """Each statement its own transaction: for a counter that must not stay locked."""
        async with self._connect(isolation_level="AUTOCOMMIT") as conn:
            yield conn

    @asynccontextmanager
    async def read(self, *, snapshot: bool = False) -> AsyncIterator[AsyncConnection]:
        """For reading. Each statement sees the latest committed data (no BEGIN/COMMIT round
        trips); pass snapshot=True when several statements must see one moment."""
        if snapshot:
            # One snapshot for every statement: REPEATABLE READ on PostgreSQL (READ COMMITTED takes
            # a new one per statement); a read transaction is one snapshot on SQLite already.
            options = {"isolation_level": "REPEATABLE READ"} if self.dialect == "postgresql" else {}
            async with self._connect(**options) as conn:
                async with conn.begin():
                    yield conn
        else:
            async with self._connect(isolation_level="AUTOCOMMIT") as conn:
                yield conn

    async def ping(self, timeout: float = 2.0) -> bool:
        try:
            async with asyncio.timeout(timeout):
                async with self.read() as conn:
                    await conn.execute(text("SELECT 1"))
            return True
        except (StorageUnavailable, TimeoutError):
            return False

    async def dispose(self) -> None:
        await self.engine.dispose()
