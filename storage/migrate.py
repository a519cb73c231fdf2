"""Run the Alembic migrations: the only way the schema is created or changed."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection

from storage.db import Database

MIGRATIONS = Path(__file__).parent / "migrations"
# Any constant will do: replicas starting together take turns to migrate.
_PG_MIGRATION_LOCK = 0x65736362  # "escb"


# Schema the migrations create that `storage.tables` does not model: slack_sdk's OAuth tables
# (its stores define them) and the full-text search machinery (one kind per database).
UNMODELLED_TABLES = ("slack_installations", "slack_bots", "slack_oauth_states", "handoffs_fts")


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


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def _upgrade(conn: Connection, revision: str) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
    cfg = alembic_config()
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, revision)


def _current(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


async def upgrade(db: Database, revision: str = "head") -> None:
    async with db.write() as conn:
        await conn.run_sync(_upgrade, revision)


async def current_revision(db: Database) -> str | None:
    async with db.read() as conn:
        return await conn.run_sync(_current)


async def serving_problem(db: Database) -> str | None:
    """Why this release cannot serve the database's schema as it is (for `serve` when migrations are
    a step of their own), in one line; None when it can."""
    current = await current_revision(db)
    head = head_revision()
    if current == head:
        return None
    if current is None:
        return "the database has no schema yet: run `escalation-bot db upgrade` first"
    return f"the database is at revision {current} and this release needs {head}: run `escalation-bot db upgrade`"
