"""The database handle: one async engine, with the transaction kinds we use.

SQLite is the embedded default (WAL, a busy timeout, foreign keys on);
PostgreSQL is what several replicas share. Write transactions on SQLite start
with `BEGIN IMMEDIATE`, so two writers queue on the busy timeout instead of
one failing when it upgrades its read lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sqlite3
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, InvalidatePoolError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from storage import sqlite_inline

SQLITE_BUSY_TIMEOUT_MS = 15_000
# The WAL file is cut back to this once a checkpoint has emptied it. SQLite reuses the file rather than
# shrinking it, so without a limit a burst of writes under a long read (which no checkpoint can pass)
# keeps its size on disk: 991 MB after a year's purge, 3.6 GB once.
SQLITE_WAL_KEPT_BYTES = 64 * 2**20
SQLITE_POOL_SIZE = 8  # at most this many kept (and as many again at a peak); DATABASE_POOL_SIZE if smaller
POSTGRES_POOL_SIZE = 10  # DATABASE_POOL_SIZE's default: the connections a replica keeps (see Database)
# DATABASE_POOLER: what stands between the bot and PostgreSQL. "pgbouncer": PgBouncer in transaction
# pooling, where consecutive transactions of one client may run on different server sessions.
POOLERS = ("none", "pgbouncer")


class StorageUnavailable(Exception):
    """The database could not be reached or did not answer in time."""


_BEGIN = {mode: f"BEGIN {mode}" for mode in ("DEFERRED", "IMMEDIATE", "EXCLUSIVE")}


class DatabaseProblem(Exception):
    """The database cannot be used at all (start-up): one line for the operator."""


async def open_checked(url: str, *, write: bool = True, pooler: str = "none") -> Database:
    """A Database just shown to be reachable (and writable, unless `write` is False), or
    DatabaseProblem saying why not."""
    try:
        db = Database(url, pooler=pooler)
    except ValueError as exc:
        raise DatabaseProblem(str(exc)) from None
    problem = await db.problem(write=write)
    if problem is not None:
        await db.dispose()
        raise DatabaseProblem(problem)
    return db


# sqlite3's own OperationalError too: our BEGIN goes straight to the driver, unwrapped.
_UNAVAILABLE = (OperationalError, sqlite3.OperationalError, PoolTimeout, ConnectionError, OSError, asyncio.TimeoutError)


def _closes_in_place(conn: AsyncConnection) -> bool:
    """True when closing `conn` cannot suspend, so nothing can cut it short: a SQLite connection with
    nothing on its thread (every call runs on the loop), or a PostgreSQL one with no transaction
    open in the driver (the block committed, or read in autocommit), whose return to the pool sends
    nothing to the server. The latter reads SQLAlchemy's asyncpg adapter's `_transaction`; if that
    name ever goes, every close is SQLAlchemy's shielded one again, slower but the same."""
    try:
        fairy = conn.sync_connection.connection  # type: ignore[union-attr]
        driver, dbapi = fairy.driver_connection, fairy.dbapi_connection
    except Exception:  # closed or invalidated already: let SQLAlchemy's own close deal with it
        return False
    if isinstance(driver, sqlite_inline.InlineConnection):
        return driver.all_on_loop
    return getattr(dbapi, "_transaction", True) is None


def _is_read_only(exc: BaseException) -> bool:
    return any("readonly" in str(e) for e in (exc, getattr(exc, "orig", None), exc.__cause__) if e is not None)


# Errors that mean the database is away (not that a statement was wrong): by name, anywhere in the
# chain of causes, or by SQLSTATE class (08 connection, 53 resources, 57P operator intervention).
_UNAVAILABLE_NAMES = {
    "ReadOnlySQLTransactionError",
    "ConnectionDoesNotExistError",
    "CannotConnectNowError",
    "ConnectionFailureError",
    "InterfaceError",
    "AdminShutdownError",
    "CrashShutdownError",
    "InternalClientError",
    "TooManyConnectionsError",
}


_TCPI_BYTES_RECEIVED = 128  # offset of tcpi_bytes_received in Linux's struct tcp_info (since 4.1)


def _bytes_received(driver: Any) -> int | None:
    """How many bytes an asyncpg connection's TCP socket has received so far (the kernel's count,
    whether or not asyncpg has read them yet); None where that cannot be told (a Unix socket, not
    Linux)."""
    transport = getattr(driver, "_transport", None)
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None or not hasattr(socket, "TCP_INFO"):
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    except (OSError, ValueError):
        return None
    if len(info) < _TCPI_BYTES_RECEIVED + 8:
        return None
    return int.from_bytes(info[_TCPI_BYTES_RECEIVED : _TCPI_BYTES_RECEIVED + 8], sys.byteorder)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """This exception and every one behind it: the driver's (`orig`), its cause, its context."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending += [getattr(current, "orig", None), current.__cause__, current.__context__]


def _connection_lost(exc: BaseException) -> bool:
    """Whether this failure was a pooled connection found dead (SQLAlchemy invalidated it)."""
    return any(isinstance(e, DBAPIError) and e.connection_invalidated for e in _chain(exc))


def _is_unavailable(exc: BaseException) -> bool:
    for current in _chain(exc):
        if isinstance(current, _UNAVAILABLE):
            return True
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        if type(current).__name__ in _UNAVAILABLE_NAMES:
            return True
        sqlstate = str(getattr(current, "sqlstate", "") or "")
        if sqlstate[:2] in ("08", "53") or sqlstate.startswith("57P"):
            return True
    return False


SQLITE_DRIVERS = ("sqlite", "sqlite+pysqlite", "sqlite+aiosqlite")
POSTGRES_DRIVERS = ("postgresql", "postgres", "postgresql+psycopg2", "postgresql+psycopg", "postgresql+asyncpg")


def url_problem(url: str) -> str | None:
    """What is wrong with a database URL before anything connects, or None."""
    try:
        u = make_url(url)
    except Exception:  # SQLAlchemy raises ArgumentError, ValueError…: all mean "not a URL"
        return "not a database URL (e.g. sqlite+aiosqlite:///escalation-bot.db)"
    if u.drivername in SQLITE_DRIVERS:
        if not u.database or u.database == ":memory:" or u.database.startswith("file::memory:"):
            return (
                "give the SQLite file's path, e.g. sqlite+aiosqlite:///escalation-bot.db "
                "(an in-memory database would lose every escalation at restart)"
            )
        return None
    if u.drivername in POSTGRES_DRIVERS:
        if not u.host and not u.query.get("host"):
            return "give PostgreSQL's host, e.g. postgresql+asyncpg://user@127.0.0.1:5432/escalations"
        return None
    return (
        f"the driver {u.drivername!r} is not supported: use sqlite+aiosqlite:///FILE "
        "or postgresql+asyncpg://USER@HOST/DB"
    )


def normalise_url(url: str) -> str:
    """Accept the plain driver names operators tend to type."""
    u = make_url(url)
    if u.drivername in SQLITE_DRIVERS:
        u = u.set(drivername="sqlite+aiosqlite")
    elif u.drivername in POSTGRES_DRIVERS:
        u = u.set(drivername="postgresql+asyncpg")
    return u.render_as_string(hide_password=False)


def describe(url: str, exc: BaseException) -> str:
    """One line, for an operator, on why the database at `url` cannot be used. Never the password."""
    u = make_url(url)
    where = f"{u.host or 'localhost'}:{u.port or 5432}"
    causes = [exc]
    while causes[-1].__cause__ is not None and len(causes) < 8:
        causes.append(causes[-1].__cause__)
    names = {type(c).__name__ for c in causes} | {type(getattr(c, "orig", c)).__name__ for c in causes}
    text = " ".join(str(c) for c in causes)
    if u.get_backend_name() == "sqlite":
        return _describe_sqlite(u.database or "", text)
    if "InvalidAuthorizationSpecificationError" in names or ("role" in text and "does not exist" in text):
        return f'PostgreSQL at {where} refused the login: role "{u.username}" does not exist'
    if "InvalidCatalogNameError" in names or ("does not exist" in text and "database" in text):
        return f'the database "{u.database}" does not exist on {where} (create it: createdb {u.database})'
    if "InvalidPasswordError" in names or "password authentication failed" in text:
        return f'PostgreSQL at {where} refused the login: wrong password for "{u.username}"'
    if "ReadOnlySQLTransactionError" in names or "read-only" in text:
        return f"the database on {where} is read-only (a standby, or default_transaction_read_only is on)"
    if "gaierror" in names or "Name or service not known" in text:
        return f"cannot reach the database: unknown host {u.host!r}"
    if "ConnectionRefusedError" in names or "Connect call failed" in text or "Errno 111" in text:
        return f"cannot reach the database at {where}: connection refused (is PostgreSQL running there?)"
    if names & {"TimeoutError", "CancelledError"} or "timeout" in text.lower():
        return f"cannot reach the database at {where}: no answer within {CONNECT_TIMEOUT:.0f} s"
    first = (str(exc).splitlines() or [type(exc).__name__])[0]
    return f"cannot use the database at {where}: {first[:200]}"


def _describe_sqlite(path: str, text: str) -> str:
    file = Path(path)
    if "readonly" in text or "read-only" in text:
        return f"the SQLite file {file} is read-only: the bot must be able to write to it and to its folder"
    if file.is_dir():
        return f"{file} is a folder, not a SQLite file: give a file's path"
    if not file.parent.exists():
        return f"cannot open the SQLite file {file}: the folder {file.parent} does not exist"
    if not file.exists():
        return f"cannot create the SQLite file {file}: the folder {file.parent} does not take new files"
    if "locked" in text:
        return f"the SQLite file {file} is locked by another process and stayed locked"
    if "file is not a database" in text:
        return f"{file} is not a SQLite database"
    return f"cannot open the SQLite file {file}: {text.splitlines()[0][:200] if text else 'unknown error'}"


CONNECT_TIMEOUT = 3.0
# A PostgreSQL connection that rested this long is pinged before it is handed out (see _install_postgres_hooks).
PING_AFTER_REST_SECONDS = 1.0


# Behind PgBouncer in transaction pooling, a client's session on the server is not its own: the
# next transaction, or the next round trip outside one, may run on another server session that
# other clients use too. Named prepared statements (asyncpg's __asyncpg_stmt_N__, cached per
# connection) then collide ("already exists") or go missing ("does not exist"). With no statement
# cache, asyncpg prepares every statement unnamed and sends its Parse again in the same message
# batch as its Bind and Execute, so each execution is complete on whichever session runs it, and
# nothing is left behind on a server session to leak or to collide. SQLAlchemy's own cache of
# prepared statements goes too (it would hold asyncpg's). The price: every statement is parsed
# and planned by PostgreSQL each time it runs, with one more round trip (docs/operations.md).
_PGBOUNCER_CONNECT_ARGS = {"statement_cache_size": 0, "prepared_statement_cache_size": 0}


class WriteTurn:
    """One writer at a time, first come first served, except that an urgent writer goes before
    those waiting (never before the one writing)."""

    def __init__(self) -> None:
        self._busy = False
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._urgent: deque[asyncio.Future[None]] = deque()

    async def acquire(self, *, urgent: bool = False) -> None:
        if not self._busy:
            self._busy = True
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        (self._urgent if urgent else self._waiting).append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.release()  # handed the turn just as it was cancelled: pass it on
            else:
                with contextlib.suppress(ValueError):
                    (self._urgent if urgent else self._waiting).remove(turn)
            raise

    def release(self) -> None:
        for queue in (self._urgent, self._waiting):
            while queue:
                turn = queue.popleft()
                if not turn.done():
                    turn.set_result(None)  # the turn passes straight on: still busy
                    return
        self._busy = False


class Database:
    def __init__(
        self,
        url: str,
        *,
        pool_size: int = POSTGRES_POOL_SIZE,
        connect_timeout: float = CONNECT_TIMEOUT,
        echo: bool = False,
        pooler: str = "none",
    ):
        problem = url_problem(url)
        if problem is not None:
            raise ValueError(problem)
        if pooler not in POOLERS:
            raise ValueError(f"unknown pooler {pooler!r}: one of {', '.join(POOLERS)}")
        self.pooler = pooler
        self.url = normalise_url(url)
        parsed = make_url(self.url)
        self.dialect = parsed.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported database {parsed.drivername!r}: use sqlite+aiosqlite or postgresql+asyncpg")
        kwargs: dict[str, Any] = {"echo": echo}
        if self.dialect == "sqlite":
            kwargs["connect_args"] = {
                "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
                "async_creator_fn": sqlite_inline.connect,  # quick statements on the loop (see there)
            }
            # Quick statements run on the loop, one at a time, so a process needs few connections; each
            # one opened holds its own page cache and prepared statements (~2.5 MB once warm). At the
            # old 25 (+25) the pool kept opening connections at peaks and bench/soak.py's RSS grew
            # +10-11% in 10 minutes (126 MB at the end); at 8 (+8) it kept up as well and ended at 113 MB.
            size = min(pool_size, SQLITE_POOL_SIZE)
            kwargs["pool_size"] = size
            kwargs["max_overflow"] = size
            kwargs["pool_timeout"] = 30
        else:
            # Not pool_pre_ping: a ping before every use doubled the round trips of every statement,
            # each two context switches, which three replicas sharing two cores paid for most. What
            # checks a connection instead: _install_postgres_hooks.
            # Connections rest in autocommit: a read or a one-statement write is one round trip
            # (outside a transaction there is no BEGIN / COMMIT). Write transactions ask for READ
            # COMMITTED, which is what issues their BEGIN.
            kwargs["isolation_level"] = "AUTOCOMMIT"
            # Every connection a replica opens is kept: no overflow. An overflow connection is closed
            # when it comes back to a full pool, and under load that was one new PostgreSQL backend
            # every ~10 escalations: a fork, a login, and every statement prepared again on it, which
            # cost PostgreSQL more CPU than the escalations themselves (bench/intake.py, once the
            # CPU of backends that ended was counted). Past the pool, a block waits for a connection
            # (pool_timeout), as it did past the overflow. DATABASE_POOL_SIZE sizes it: 10 by default.
            # Each connection prepares every statement for itself, and PostgreSQL plans a prepared
            # statement afresh on its first five runs on a connection: spread over 25 connections a
            # replica, three replicas planned ~950 times in a 600-escalation bench/intake.py run, a
            # quarter of PostgreSQL's time (pg_stat_statements). At 10 each, three replicas got 7%
            # more through on two cores (254-258/s against 236-240/s, three runs each, 1,200
            # escalations); one replica did as well as at 25. Nine replicas fit in max_connections 100.
            kwargs["pool_size"] = pool_size
            kwargs["max_overflow"] = 0
            # The connection returned last goes out first (LIFO): a replica works on as few backends
            # as its load needs at once and the rest stay idle. Handed out in turn (FIFO), every block
            # went to a backend whose caches had gone cold: PostgreSQL's CPU per escalation was ~10%
            # lower with LIFO (bench/intake.py, four runs each). Not for SQLite: its connections live
            # in the process, and opened as load peaked (not all in the first minute) they showed as
            # growth in bench/soak.py (RSS +19.3%).
            kwargs["pool_use_lifo"] = True
            kwargs["pool_timeout"] = 10
            kwargs["connect_args"] = {"timeout": connect_timeout, "command_timeout": 15}
            if pooler == "pgbouncer":
                kwargs["connect_args"].update(_PGBOUNCER_CONNECT_ARGS)
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        self._write_turn: WriteTurn | None = WriteTurn() if self.dialect == "sqlite" else None
        if self.dialect == "sqlite":
            self._install_sqlite_hooks()
        else:
            self._install_postgres_hooks()

    def _install_postgres_hooks(self) -> None:
        """Whether a pooled connection still works, checked as it is handed out, as pool_pre_ping
        would, but without a round trip for one used a moment ago that has heard nothing since.
        PostgreSQL speaks unasked only to end a session (restart, failover, pg_terminate_backend: an
        error, then the end of the stream, a few milliseconds apart), so a connection that received
        anything while at rest, or rested PING_AFTER_REST_SECONDS or more (a firewall may have cut
        it without a word), or whose byte count cannot be read, is pinged. One closed, or not
        answering the ping, is replaced, and so is every connection opened before it, as after a
        failed pre-ping."""
        sync_engine = self.engine.sync_engine
        dialect = sync_engine.dialect

        @event.listens_for(sync_engine.pool, "checkin")
        def _on_checkin(dbapi_conn: Any, record: Any) -> None:
            if record is not None and dbapi_conn is not None:
                record.info["rested"] = (time.monotonic(), _bytes_received(dbapi_conn.driver_connection))

        @event.listens_for(sync_engine.pool, "checkout")
        def _on_checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
            rested = record.info.pop("rested", None)
            if rested is None:  # opened for this checkout
                return
            since, received = rested
            driver = dbapi_conn.driver_connection
            if driver.is_closed():
                raise InvalidatePoolError("closed by the server")
            if (
                received is not None
                and time.monotonic() - since < PING_AFTER_REST_SECONDS
                and _bytes_received(driver) == received
            ):
                return
            try:
                dialect.do_ping(dbapi_conn)
            except Exception as exc:
                raise InvalidatePoolError(f"no answer to a ping: {type(exc).__name__}") from exc

    def _install_sqlite_hooks(self) -> None:
        sync_engine = self.engine.sync_engine

        file = make_url(self.url).database or ""

        def writable() -> bool:
            return os.access(file, os.W_OK)

        @event.listens_for(sync_engine, "connect")
        def _on_connect(dbapi_conn: Any, record: Any) -> None:
            # SQLite opens a file it may not write (read-only mount, chattr +i, mode 0444) read-only,
            # and such a connection stays read-only after the file is writable again: remember it.
            if not writable():
                record.info["opened_read_only"] = True
            # We issue BEGIN ourselves (below); stop the driver doing it implicitly.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA wal_autocheckpoint=0")  # checkpoints run off the loop (sqlite_inline)
            cur.execute(f"PRAGMA journal_size_limit={SQLITE_WAL_KEPT_BYTES}")
            cur.close()

        @event.listens_for(sync_engine.pool, "checkout")
        def _on_checkout(_dbapi_conn: Any, record: Any, _proxy: Any) -> None:
            if record.info.get("opened_read_only") and writable():
                raise DisconnectionError("opened while the file was read-only")  # the pool opens a new one

        @event.listens_for(sync_engine, "begin")
        def _on_begin(conn: Any) -> None:
            mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
            if mode != "NONE":  # NONE: each statement its own transaction (reads that need no snapshot)
                # Straight to the driver: SQLAlchemy's execution machinery for one BEGIN cost more than it.
                cursor = conn.connection.dbapi_connection.cursor()
                try:
                    cursor.execute(_BEGIN[mode])
                finally:
                    cursor.close()

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
    async def write(self, *, urgent: bool = False) -> AsyncIterator[AsyncConnection]:
        """A read-write transaction; committed when the block exits cleanly. `urgent`: on SQLite,
        go before the writers already waiting (the delivery worker taking a card update while
        two hundred losing Claim clicks each record their conflict)."""
        if self._write_turn is not None:
            # SQLite has one writer at a time. Writers of this process queue here in order instead
            # of polling the file lock (its busy handler sleeps up to 100 ms a try). This is only
            # for speed: correctness never rests on it, other processes still meet at the file lock.
            await self._write_turn.acquire(urgent=urgent)
            try:
                async with self._write() as conn:
                    yield conn
            finally:
                self._write_turn.release()
        else:
            async with self._write() as conn:
                yield conn

    @asynccontextmanager
    async def _connect(self, **options: Any) -> AsyncIterator[AsyncConnection]:
        """A pooled connection; a database that is down or too slow becomes StorageUnavailable."""
        try:
            conn = await self.engine.connect()
            try:
                if options:
                    await conn.execution_options(**options)
                try:
                    yield conn
                except BaseException as exc:
                    if self.dialect == "sqlite" and _is_read_only(exc):
                        # SQLite opens a file it may not write read-only, and such a connection
                        # stays read-only after the file is writable again: drop it, the pool
                        # opens a new one for the next caller.
                        await conn.invalidate()
                    raise
            finally:
                await self._close(conn)
        except BaseException as exc:
            if _is_unavailable(exc):
                raise StorageUnavailable(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc
            raise

    async def _close(self, conn: AsyncConnection) -> None:
        """Back to the pool. SQLAlchemy's `async with` closes in a task of its own under
        asyncio.shield (so a cancelled caller cannot leave it half done): two more turns of the loop
        for every block, and in a storm of two hundred clicks each turn is tens of milliseconds that
        a claim's commit, and the card's change after it, waited; on PostgreSQL the task and the
        shield are CPU spent on every block too. A close that cannot suspend cannot be interrupted
        either, so it is done in place (`_closes_in_place`); any other keeps SQLAlchemy's."""
        if _closes_in_place(conn):
            await conn.close()
        else:
            await conn.__aexit__(None, None, None)

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        options = {"sqlite_begin": "IMMEDIATE"} if self.dialect == "sqlite" else {"isolation_level": "READ COMMITTED"}
        async with self._connect(**options) as conn:
            async with conn.begin():
                yield conn

    @asynccontextmanager
    async def single(self, *, urgent: bool = False) -> AsyncIterator[AsyncConnection]:
        """For one self-contained write statement: its own implicit transaction on PostgreSQL
        (no locks held across round trips), a queued write transaction on SQLite."""
        if self.dialect == "sqlite":
            async with self.write(urgent=urgent) as conn:
                yield conn
        else:
            async with self.autocommit() as conn:
                yield conn

    @asynccontextmanager
    async def autocommit(self) -> AsyncIterator[AsyncConnection]:
        """Each statement its own transaction: for a counter that must not stay locked."""
        async with self._connect(**self._autocommit) as conn:
            yield conn

    @asynccontextmanager
    async def read(self, *, snapshot: bool = False, heavy: bool = False) -> AsyncIterator[AsyncConnection]:
        """For reading. Each statement sees the latest committed data (no BEGIN/COMMIT round
        trips); pass snapshot=True when several statements must see one moment. `heavy`: the
        statements may take milliseconds or more (a full-text search, a weekly report), so on
        SQLite they run on the driver's thread, not on the event loop (see sqlite_inline)."""
        if snapshot:
            # One snapshot for every statement: REPEATABLE READ on PostgreSQL (READ COMMITTED takes
            # a new one per statement); a read transaction is one snapshot on SQLite already.
            options = {"isolation_level": "REPEATABLE READ"} if self.dialect == "postgresql" else {}
            async with self._connect(**options) as conn, self._offloaded(conn, heavy):
                async with conn.begin():
                    yield conn
        else:
            async with self._connect(**self._autocommit) as conn, self._offloaded(conn, heavy):
                yield conn

    @asynccontextmanager
    async def _offloaded(self, conn: AsyncConnection, heavy: bool) -> AsyncIterator[None]:
        driver = (await conn.get_raw_connection()).driver_connection if heavy and self.dialect == "sqlite" else None
        if not isinstance(driver, sqlite_inline.InlineConnection):
            yield
            return
        driver.offload = True
        try:
            yield
        finally:
            driver.offload = False

    @property
    def _autocommit(self) -> dict[str, Any]:
        # SQLite: no BEGIN at all, so each statement is its own transaction, as PostgreSQL's
        # AUTOCOMMIT. (Not the driver's isolation level: switching it there and back costs two trips
        # to aiosqlite's thread.)
        return {"isolation_level": "AUTOCOMMIT"} if self.dialect == "postgresql" else {"sqlite_begin": "NONE"}

    async def problem(self, timeout: float = CONNECT_TIMEOUT + 2, *, write: bool = True) -> str | None:
        """Why the bot could not work with this database right now (unreachable, refusing the login,
        missing, read-only), or None when it can read (and, with `write`, write). For start-up and
        for /readyz."""
        try:
            async with asyncio.timeout(timeout):
                if self.dialect == "sqlite":
                    # A fresh connection of its own: pooled ones opened before the file turned read-only
                    # only find out at their next commit.
                    await asyncio.to_thread(_sqlite_probe, make_url(self.url).database or "", write=write)
                elif not write:
                    async with self.read() as conn:
                        await conn.execute(text("SELECT 1"))
                else:
                    try:
                        standby, read_only = await self._standby_or_read_only()
                    except StorageUnavailable as exc:
                        # A pooled connection whose session PostgreSQL ended a moment ago (a restart,
                        # pg_terminate_backend) says nothing about the database: ask a new one.
                        if not _connection_lost(exc):
                            raise
                        standby, read_only = await self._standby_or_read_only()
                    if standby or read_only == "on":
                        return describe(self.url, RuntimeError("read-only"))
        except Exception as exc:  # whatever the driver raises, the operator gets one line
            return describe(self.url, exc)
        return None

    async def _standby_or_read_only(self) -> tuple[bool, str]:
        """PostgreSQL: whether the server is a standby, and whether a write transaction is read-only."""
        async with self._connect(isolation_level="READ COMMITTED") as conn:
            async with conn.begin():
                row = (
                    await conn.execute(text("SELECT pg_is_in_recovery(), current_setting('transaction_read_only')"))
                ).one()
        return bool(row[0]), str(row[1])

    async def ping(self, timeout: float = 2.0) -> bool:
        try:
            async with asyncio.timeout(timeout):
                async with self.read() as conn:
                    await conn.execute(text("SELECT 1"))
            return True
        except (StorageUnavailable, TimeoutError):
            return False

    def pool_status(self) -> tuple[int, int]:
        """(connections handed out now, connections the pool may keep): for the metrics."""
        pool: Any = self.engine.sync_engine.pool
        try:
            return int(pool.checkedout()), int(pool.size())
        except AttributeError:  # a pool without these (not one we build)
            return 0, 0

    async def dispose(self) -> None:
        await self.engine.dispose()


def _sqlite_probe(path: str, *, write: bool = True) -> None:
    """Open the file as the bot does and take the write lock: raises if it can't be read or written."""
    import sqlite3

    conn = sqlite3.connect(path, timeout=1.0, isolation_level=None)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchall()
        if not write:
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc):
                return  # busy with another writer: working, not broken
            raise
        try:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            conn.execute(f"PRAGMA user_version = {version}")  # a write, rolled back: fails if read-only
        finally:
            conn.execute("ROLLBACK")
    finally:
        conn.close()
