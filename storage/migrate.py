"""Run the Alembic migrations: the only way the schema is created or changed.

Migrations expand, then contract (docs/operations.md, "Upgrades"): each one only adds what the
release before it ignores and runs while that release serves; removing or renaming waits for a
later release. Each declares `serves_from`, the oldest migration head a release may have and still
serve the schema it leaves, and after every upgrade or downgrade that value is written to the
`schema_release` row (migration 0009). A release that finds the database at a revision it does not
know (a newer release migrated it) reads that row: it serves the schema when its own head is at
least `serves_from`, and otherwise refuses in one line.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from storage.db import Database, DatabaseProblem

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
# Any constant will do: replicas starting together take turns to migrate.
_PG_MIGRATION_LOCK = 0x65736362  # "escb"


# Schema the migrations create that `storage.tables` does not model: slack_sdk's OAuth tables
# (its stores define them) and the full-text search machinery (one kind per database).
UNMODELLED_TABLES = ("slack_installations", "slack_bots", "slack_oauth_states", "handoffs_fts")


class SchemaProblem(DatabaseProblem):
    """The schema is one this release cannot serve or migrate: one line for the operator."""


def include_object(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    """For autogenerate comparisons: leave out what the tables module does not model."""
    if type_ == "table" and name is not None and name.startswith(UNMODELLED_TABLES):
        return False
    if type_ == "column" and name == "search_vector":
        return False
    if type_ == "index" and name == "ix_handoffs_search_vector":
        return False
    return True


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    head = scripts().get_current_head()
    assert head is not None
    return head


def known_revisions() -> list[str]:
    """This release's migrations, oldest first."""
    return [r.revision for r in reversed(list(scripts().walk_revisions()))]


def serves_from(revision: str) -> str:
    """What a migration declares: the oldest head that serves the schema it leaves (itself if it says nothing)."""
    module = scripts().get_revision(revision).module
    return str(getattr(module, "serves_from", revision))


@dataclass(frozen=True)
class SchemaState:
    current: str | None  # the database's revision (None: no schema yet)
    head: str  # this release's newest migration
    known: bool  # this release has the database's revision
    serves_from: str | None  # what the database says: the oldest head that serves it (0009 on)

    @property
    def newer(self) -> bool:
        return self.current is not None and not self.known

    @property
    def servable(self) -> bool:
        """This release can serve the schema as it is: at its head, or newer but still compatible."""
        if self.current == self.head:
            return True
        return self.newer and self.serves_from is not None and self.serves_from in known_revisions()

    def refusal(self) -> str:
        return (
            f"the database's schema is at revision {self.current}, newer than this release (which knows up to "
            f"{self.head}), and needs a release with migrations up to {self.serves_from or 'an unknown revision'}: "
            "run a newer release"
        )


@contextmanager
def _quietly() -> Iterator[None]:
    """Alembic says which dialect it uses each time it looks ("Context impl …"): not news to anyone."""
    chatty = logging.getLogger("alembic.runtime.migration")
    level = chatty.level
    chatty.setLevel(logging.WARNING)
    try:
        yield
    finally:
        chatty.setLevel(level)


def _state(conn: Connection) -> SchemaState:
    with _quietly():
        current = MigrationContext.configure(conn).get_current_revision()
    marker = None
    if "schema_release" in inspect(conn).get_table_names():
        marker = conn.execute(text("SELECT serves_from FROM schema_release WHERE id = 1")).scalar()
    return SchemaState(current, head_revision(), current is None or current in known_revisions(), marker)


async def state(db: Database) -> SchemaState:
    async with db.read() as conn:
        return await conn.run_sync(_state)


def _write_marker(conn: Connection) -> None:
    """`schema_release` says what the revision now at the head of the database declares."""
    with _quietly():
        current = MigrationContext.configure(conn).get_current_revision()
    if current is None or "schema_release" not in inspect(conn).get_table_names():
        return
    conn.execute(text("DELETE FROM schema_release"))
    conn.execute(
        text("INSERT INTO schema_release (id, serves_from, updated_at) VALUES (1, :v, :at)"),
        {"v": serves_from(current), "at": datetime.now(UTC)},
    )


def _run(conn: Connection, action: str, revision: str) -> None:
    """Alembic's upgrade or downgrade on `conn`, each migration in a transaction of its own (so one
    may build an index CONCURRENTLY outside it), then the marker."""
    found = _state(conn)
    conn.commit()
    if found.newer:  # another release got there first
        if not found.servable:
            raise SchemaProblem(found.refusal())
        return
    cfg = alembic_config()
    cfg.attributes["connection"] = conn
    (command.upgrade if action == "upgrade" else command.downgrade)(cfg, revision)
    _write_marker(conn)
    conn.commit()


_TRY_LOCK = text("SELECT pg_try_advisory_lock(:k)")
_UNLOCK = text("SELECT pg_advisory_unlock(:k)")


async def _migrate(db: Database, action: str, revision: str) -> None:
    """On a connection of its own, not in a transaction (Alembic begins one per migration). On
    PostgreSQL under a session advisory lock, so replicas starting together take turns (the second
    finds nothing to do); a direct connection, then (DATABASE_MIGRATION_URL behind a pooler). The
    lock is asked for again and again, not waited for inside a statement: a session waiting inside
    one holds a snapshot, which CREATE INDEX CONCURRENTLY waits for, while it waits for the lock."""
    async with db.engine.connect() as conn:
        if db.is_postgres:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            while not (await conn.execute(_TRY_LOCK, {"k": _PG_MIGRATION_LOCK})).scalar():
                await conn.commit()  # (SQLAlchemy's bookkeeping: nothing reaches the server in autocommit)
                await asyncio.sleep(0.2)  # a lock in another session: nothing here to wait on but time
            await conn.commit()
            await conn.execution_options(isolation_level="READ COMMITTED")
        else:
            await conn.execution_options(sqlite_begin="IMMEDIATE")  # the writer's lock from the start
        try:
            await conn.run_sync(_run, action, revision)
        finally:
            if db.is_postgres:
                await conn.rollback()
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(_UNLOCK, {"k": _PG_MIGRATION_LOCK})
                await conn.commit()


async def upgrade(db: Database, revision: str = "head") -> SchemaState:
    """Upgrade to `revision`. A database already newer than this release is left as it is when this
    release can serve it (logged), and refused with SchemaProblem when it cannot. Returns the state
    found before."""
    before = await state(db)
    if before.newer:
        if not before.servable:
            raise SchemaProblem(before.refusal())
        log.info(
            "the database's schema (%s) is newer than this release's (%s) and serves releases from %s: nothing to "
            "upgrade",
            before.current,
            before.head,
            before.serves_from,
        )
        return before
    await _migrate(db, "upgrade", revision)
    return before


def reversible(revision: str) -> bool:
    return bool(getattr(scripts().get_revision(revision).module, "reversible", False))


async def downgrade(db: Database, target: str) -> list[str]:
    """Undo the migrations after `target`, newest first, when each of them can be undone without
    losing what people stored (`reversible = True`); SchemaProblem (one line) otherwise. Returns the
    revisions undone."""
    found = await state(db)
    order = known_revisions()
    if found.newer:
        raise SchemaProblem(
            f"the database is at {found.current}, newer than this release: downgrade with the release that made it"
        )
    if target not in order:
        raise SchemaProblem(f"no migration {target!r} in this release (it has {', '.join(order)})")
    if found.current is None or order.index(target) >= order.index(found.current):
        return []
    undone = list(reversed(order[order.index(target) + 1 : order.index(found.current) + 1]))
    kept = [r for r in undone if not reversible(r)]  # newest first
    if kept:
        raise SchemaProblem(
            f"migration {kept[0]} cannot be undone without losing data: go back no further than {kept[0]}"
        )
    await _migrate(db, "downgrade", target)
    return undone


async def current_revision(db: Database) -> str | None:
    return (await state(db)).current


async def serving_problem(db: Database) -> str | None:
    """Why this release cannot serve the database's schema as it is (for `serve` when migrations are
    a step of their own), in one line; None when it can."""
    found = await state(db)
    if found.servable:
        if found.newer:
            log.info(
                "the database's schema (%s) is newer than this release's (%s) and serves releases from %s",
                found.current,
                found.head,
                found.serves_from,
            )
        return None
    if found.current is None:
        return "the database has no schema yet: run `escalation-bot db upgrade` first"
    if found.newer:
        return found.refusal()
    return (
        f"the database is at revision {found.current} and this release needs {found.head}: "
        "run `escalation-bot db upgrade`"
    )
