"""aiosqlite, with the short statements run on the event loop instead of its thread.

aiosqlite runs every call (cursor, execute, fetch, commit, close) on a thread of its own and
wakes the event loop when it is done. For the statements an escalation makes (a row read or
written by its key, microseconds of work in SQLite) the two thread switches and the wake-up cost
far more than the statement: they were most of the bot's CPU on SQLite. Here they run in place.
What can wait goes to the thread as before, so the loop never sleeps on it:

* `BEGIN IMMEDIATE` when another process holds the write lock: it is tried in place without the
  busy handler first, and only if the lock is taken does it wait (up to the busy timeout) on the
  thread. Once it returns this connection holds the write lock, so the statements after it
  cannot wait on others.
* the statements of a connection marked `offload` (a full-text search or a weekly report over a
  long history: milliseconds to seconds of work), with the fetches that follow them.
* the WAL checkpoint, which writes and syncs the database file. The connections do not
  checkpoint on commit (`wal_autocheckpoint=0`); every CHECKPOINT_EVERY-th commit (or sooner, after
  CHECKPOINT_ROWS rows changed) runs on the thread and checkpoints after committing (PASSIVE: it never
  waits for readers).

In WAL mode a reader never waits for a writer, so the reads that run in place do not block
the loop. Each connection is used by one task at a time (SQLAlchemy's pool), so the thread and
the loop never use one sqlite3 connection at once.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from functools import partial
from typing import Any

import aiosqlite

CHECKPOINT_EVERY = 100
# ... or sooner, once the commits since the last have changed this many rows (sqlite3's total_changes:
# rows written by the statements and their triggers). The WAL holds every page written since the last
# checkpoint, and a retention batch (50 escalations: their rows, index and full-text entries) writes
# 85 KB to 4 MB of it: a hundred of those between two checkpoints is up to 400 MB. (A long read holds
# the WAL too; see SQLITE_WAL_KEPT_BYTES in storage/db.py.)
CHECKPOINT_ROWS = 2000


class _SinceCheckpoint:
    """This process's commits and rows changed since its last checkpoint (all on the event loop)."""

    commits = 0
    rows = 0

    @classmethod
    def due(cls, rows: int) -> bool:
        cls.commits += 1
        cls.rows += rows
        if cls.commits < CHECKPOINT_EVERY and cls.rows < CHECKPOINT_ROWS:
            return False
        cls.commits = cls.rows = 0
        return True


def _commit_and_checkpoint(conn: sqlite3.Connection) -> None:
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


class InlineConnection(aiosqlite.Connection):
    """An aiosqlite connection that runs quick calls on the caller's thread (see the module)."""

    def __init__(self, connector: Callable[[], sqlite3.Connection], iter_chunk_size: int) -> None:
        super().__init__(connector, iter_chunk_size)
        self.offload = False  # set by Database.read(heavy=True) for the length of one block
        self.busy_timeout_ms = 5000
        self._heavy_cursor: Any = None
        # Calls handed to the thread and not finished there. While there are any (a search whose
        # caller stopped waiting still runs), every call queues behind them: the sqlite3 connection
        # is never used from two threads at once.
        self._on_thread = 0
        self._count = threading.Lock()
        self._changes_counted = 0  # this connection's total_changes at its last commit

    @property
    def all_on_loop(self) -> bool:
        """Nothing of this connection's is on its thread: its next quick call runs in place."""
        return not self._on_thread

    async def _thread_call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with self._count:
            self._on_thread += 1

        def call() -> Any:
            try:
                return fn(*args, **kwargs)
            finally:
                with self._count:
                    self._on_thread -= 1

        return await super()._execute(call)

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        if self._on_thread:
            return await self._thread_call(fn, *args, **kwargs)
        sql = args[0] if args and isinstance(args[0], str) else None
        if sql is not None and sql.startswith("BEGIN IMMEDIATE"):
            if self._try_begin_now(fn, sql):
                return None
            return await self._thread_call(fn, *args, **kwargs)  # another process writes: wait off the loop
        owner = getattr(fn, "__self__", None)
        if owner is not None and owner is self._heavy_cursor:
            return await self._thread_call(fn, *args, **kwargs)  # the fetches of a statement run there
        self._heavy_cursor = None
        if sql is not None and self.offload:
            self._heavy_cursor = owner
            return await self._thread_call(fn, *args, **kwargs)
        return fn(*args, **kwargs)

    def _try_begin_now(self, begin: Callable[..., Any], sql: str) -> bool:
        """Take the write lock at once if it is free (nearly always: this process's writers take
        turns before they get here), without the busy handler's sleeps on the loop."""
        conn = self._conn
        conn.execute("PRAGMA busy_timeout=0")
        try:
            begin(sql)
            return True
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                return False
            raise
        finally:
            conn.execute(f"PRAGMA busy_timeout={self.busy_timeout_ms}")

    async def commit(self) -> None:
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        if not self._connection.in_transaction:
            return  # nothing written: a read's transaction
        total = self._connection.total_changes
        changed, self._changes_counted = total - self._changes_counted, total
        if _SinceCheckpoint.due(changed):
            await self._thread_call(_commit_and_checkpoint, self._connection)
        elif self._on_thread:
            await self._thread_call(self._connection.commit)
        else:
            self._connection.commit()


def connect(database: str, **kwargs: Any) -> InlineConnection:
    """For SQLAlchemy's aiosqlite dialect (`async_creator_fn`), as aiosqlite.connect()."""
    kwargs["check_same_thread"] = False  # opened on aiosqlite's thread, used on the loop's too
    connection = InlineConnection(partial(sqlite3.connect, database, **kwargs), 64)
    connection.busy_timeout_ms = int(float(kwargs.get("timeout", 5.0)) * 1000)
    connection._thread.daemon = True
    return connection
