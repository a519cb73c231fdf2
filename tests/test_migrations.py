"""Migrations an operator can live with: a release starts on a newer schema it can serve (and says
in one line when it cannot), `db upgrade` on a newer database is one line, `db downgrade` undoes
what can be undone, and an index on a live PostgreSQL table is built CONCURRENTLY."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text

from bot.sandbox.fake_slack import FakeSlack
from bot.sandbox.process import ServeProcess
from storage import migrate
from storage.db import Database
from tests.conftest import ESC_CHANNEL, PG_URL, SECRET, TOKEN, _drop_pg_database, _fresh_pg_database

ROOT = Path(__file__).resolve().parent.parent


def cli(db_url: str, *args: str, cwd: Path, more: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "TEAMS_", "DATABASE_"))}
    env["DATABASE_URL"] = db_url
    env.update(more or {})
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


async def pretend_a_newer_release_migrated(db: Database, serves_from: str) -> None:
    """What a later release's `db upgrade` leaves: a revision this code does not know, and the marker."""
    async with db.write() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = '0042'"))
        await conn.execute(text("UPDATE schema_release SET serves_from = :v"), {"v": serves_from})


async def test_a_release_serves_a_newer_schema_it_is_compatible_with_and_refuses_one_it_is_not_in_one_line(
    db: Database, db_url: str, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    await pretend_a_newer_release_migrated(db, serves_from=migrate.head_revision())
    upgraded = await asyncio.to_thread(cli, db_url, "db", "upgrade", cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stdout.strip() == (
        f"the database is at revision 0042, newer than this release ({migrate.head_revision()}), which can serve it "
        f"(it serves releases from {migrate.head_revision()}): nothing to upgrade"
    )
    env = {
        "DATABASE_URL": db_url,
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_BASE_URL": fake_slack.base_url,
        "SLACK_ESCALATION_CHANNEL": ESC_CHANNEL,
    }
    replica = ServeProcess(env, cwd=tmp_path, log_path=tmp_path / "old.log").start()  # it migrates at start
    try:
        await replica.wait_ready()
    finally:
        replica.stop()
    assert "newer than this release's" in (tmp_path / "old.log").read_text()

    await pretend_a_newer_release_migrated(db, serves_from="0041")  # a contract this release predates
    refused = await asyncio.to_thread(cli, db_url, "db", "upgrade", cwd=tmp_path)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines() == [
        f"escalation-bot: DATABASE_URL: the database's schema is at revision 0042, newer than this release (which "
        f"knows up to {migrate.head_revision()}), and needs a release with migrations up to 0041: run a newer release"
    ]
    serving = await asyncio.to_thread(cli, db_url, "serve", "--port", "0", cwd=tmp_path, more=env)
    assert serving.returncode == 1 and len(serving.stderr.strip().splitlines()) == 1 and "0041" in serving.stderr


async def test_db_downgrade_undoes_what_can_be_undone_and_says_what_cannot(db_url: str, tmp_path: Path) -> None:
    assert (await asyncio.to_thread(cli, db_url, "db", "upgrade", cwd=tmp_path)).returncode == 0
    back = await asyncio.to_thread(cli, db_url, "db", "downgrade", "0008", cwd=tmp_path)
    assert back.returncode == 0, back.stderr
    undone = ", ".join(f"{n:04d}" for n in range(int(migrate.head_revision()), 8, -1))  # the head … 0009
    assert f"undid {undone}" in back.stdout and "database at revision 0008" in back.stdout
    kept = await asyncio.to_thread(cli, db_url, "db", "downgrade", "0005", cwd=tmp_path)
    assert kept.returncode == 1 and len(kept.stderr.strip().splitlines()) == 1
    assert "migration 0007 cannot be undone without losing data: go back no further than 0007" in kept.stderr
    again = await asyncio.to_thread(cli, db_url, "db", "upgrade", cwd=tmp_path)
    assert again.returncode == 0 and f"database at revision {migrate.head_revision()}" in again.stdout
    db = Database(db_url)
    try:
        assert (await migrate.state(db)).serves_from == migrate.serves_from(migrate.head_revision())
    finally:
        await db.dispose()


def test_the_version_is_the_projects() -> None:
    import tomllib

    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    shown = subprocess.run([sys.executable, "-m", "bot.cli", "--version"], capture_output=True, text=True, timeout=60)
    assert shown.stdout.strip() == f"escalation-bot {version}"
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"## {version}" in changelog


def test_every_migration_declares_who_serves_it_and_a_contract_says_so() -> None:
    """Expand, then contract: a migration that drops, renames or narrows what the release before it
    reads cannot say that release still serves it."""
    import inspect as pyinspect

    for revision in migrate.known_revisions():
        if revision < "0008":
            continue  # before the rule
        module = migrate.scripts().get_revision(revision).module
        assert hasattr(module, "serves_from") and hasattr(module, "reversible"), revision
        upgrade = pyinspect.getsource(module.upgrade)
        contracts = any(word in upgrade for word in ("drop_column", "drop_table", "rename", "alter_column", "DROP "))
        if contracts:
            assert module.serves_from == revision, f"{revision} removes or changes what older code reads"


@pytest.fixture
async def pg_url() -> object:
    if not PG_URL:
        pytest.skip("TEST_DATABASE_URL not set: PostgreSQL only")
    url, name = await _fresh_pg_database()
    try:
        yield url
    finally:
        await _drop_pg_database(name)


LIVE_TABLES = ("outbox", "handoffs", "handoff_events", "processed_events", "workspaces")


async def test_an_index_on_a_live_postgresql_table_is_built_concurrently(pg_url: str, tmp_path: Path) -> None:
    """Migration 0008's index, built while the outbox has 300,000 rows: PostgreSQL's own progress view
    says CREATE INDEX CONCURRENTLY (a plain CREATE INDEX blocks every outbox write while it builds)."""
    db = Database(pg_url)
    try:
        await migrate.upgrade(db, "0007")
    finally:
        await db.dispose()
    plain = pg_url.replace("+asyncpg", "")
    conn = await asyncpg.connect(plain)
    try:
        await conn.execute(
            "INSERT INTO workspaces (id, platform, external_id, created_at) VALUES (1, 'slack', 'T1', now())"
        )
        await conn.execute(
            "INSERT INTO outbox (workspace_id, kind, payload, dedupe_key, status, next_attempt_at, created_at) "
            "SELECT 1, 'post_card', '{}', 'k' || g, 'pending', now(), now() FROM generate_series(1, 300000) g"
        )
        seen: set[str] = set()
        upgrade = asyncio.create_task(asyncio.to_thread(cli, pg_url, "db", "upgrade", cwd=tmp_path))
        while not upgrade.done():
            rows = await conn.fetch(
                "SELECT p.command, c.relname FROM pg_stat_progress_create_index p JOIN pg_class c ON c.oid = p.relid"
            )
            # Indexes on tables that were there before (live, written by the previous release); a new
            # table's indexes are built with it, before anything writes to it.
            seen |= {r["command"] for r in rows if r["relname"] in LIVE_TABLES}
            await asyncio.sleep(0.005)
        assert (await upgrade).returncode == 0
        valid = await conn.fetchval(
            "SELECT indisvalid FROM pg_index JOIN pg_class c ON c.oid = indexrelid "
            "WHERE relname = 'ix_outbox_pending_lanes'"
        )
    finally:
        await conn.close()
    assert seen == {"CREATE INDEX CONCURRENTLY"}, seen
    assert valid is True
