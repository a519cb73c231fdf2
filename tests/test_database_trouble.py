"""A database the bot cannot use: one line naming the problem at start-up (for every command that
opens it), and /readyz saying why while it is running."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bot.sandbox.fake_slack import FakeSlack
from bot.sandbox.simulator import SlackSimulator
from bot.server import RUNTIME
from storage.db import Database
from tests.conftest import (
    JUNIOR,
    PG_URL,
    SECRET,
    TEAM,
    Bot,
    _admin,
    _drop_pg_database,
    _fresh_pg_database,
    bot_settings,
    start_bot,
)
from tests.helpers import FORM, open_form

SLACK_ENV = {
    "SLACK_SIGNING_SECRET": "signing-secret-for-startup",
    "SLACK_BOT_TOKEN": "xoxb-startup-test",
    "SLACK_ESCALATION_CHANNEL": "C0ESCALATE",
    "SLACK_API_BASE_URL": "http://127.0.0.1:9/api/",
}
COMMANDS = [["serve", "--port", "0"], ["db", "upgrade"], ["report"], ["outbox", "list"]]


@contextmanager
def hung_port() -> Iterator[int]:
    """A port that accepts connections and never says a word (a firewall, a wedged server)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


@contextmanager
def immutable(*paths: Path) -> Iterator[None]:
    """Files even root cannot write (chattr +i), as a read-only mount or a locked-down volume would be."""
    subprocess.run(["chattr", "+i", *map(str, paths)], check=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", *map(str, paths)], check=True)


async def run_cli(args: list[str], cwd: Path, database_url: str) -> tuple[int, list[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "TEAMS_", "DATABASE_URL", "LOG_"))}
    env.update(SLACK_ENV, DATABASE_URL=database_url)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", *args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        _out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    except TimeoutError:
        proc.kill()
        raise
    return proc.returncode or 0, [line for line in err.decode().splitlines() if line.strip()]


def migrated_sqlite(tmp_path: Path) -> Path:
    path = tmp_path / "migrated.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATABASE_URL")}
    env["DATABASE_URL"] = f"sqlite+aiosqlite:///{path}"
    subprocess.run([sys.executable, "-m", "bot.cli", "db", "upgrade"], env=env, cwd=tmp_path, check=True, timeout=60)
    return path


async def test_every_command_names_the_database_problem_in_one_line(tmp_path: Path) -> None:
    ro = migrated_sqlite(tmp_path)
    (tmp_path / "a-folder.db").mkdir()
    with hung_port() as hung, immutable(ro):
        cases: dict[str, tuple[str, int, str]] = {
            # name: (DATABASE_URL, exit status, what the line says)
            "refused": ("postgresql+asyncpg://postgres@127.0.0.1:9/x", 1, "connection refused"),
            "hung": (f"postgresql+asyncpg://postgres@127.0.0.1:{hung}/x", 1, "no answer within 3 s"),
            "missing folder": (f"sqlite+aiosqlite:///{tmp_path}/nope/x.db", 1, "does not exist"),
            "a folder": (f"sqlite+aiosqlite:///{tmp_path}/a-folder.db", 1, "is a folder"),
            "under /proc": ("sqlite+aiosqlite:////proc/escalations.db", 1, "cannot create the SQLite file"),
            "read-only file": (f"sqlite+aiosqlite:///{ro}", 1, "is read-only"),
            "in memory": ("sqlite+aiosqlite:///", 2, "give the SQLite file's path"),
            "other driver": ("postgresql+pg8000://u@127.0.0.1/x", 2, "not supported"),
            "not a url": ("nonsense", 2, "not a database URL"),
        }
        if PG_URL:
            base = make_url(PG_URL)
            cases["missing database"] = (
                base.set(database="eb_no_such_db").render_as_string(hide_password=False),
                1,
                'the database "eb_no_such_db" does not exist',
            )
            cases["unknown role"] = (
                base.set(username="eb_nobody").render_as_string(hide_password=False),
                1,
                'role "eb_nobody" does not exist',
            )
        runs = [(name, cmd) for name in cases for cmd in COMMANDS]
        results = await asyncio.gather(*(run_cli(cmd, tmp_path, cases[name][0]) for name, cmd in runs))
    wrong = []
    for (name, cmd), (status, lines) in zip(runs, results, strict=True):
        _url, expected_status, says = cases[name]
        if name == "read-only file" and cmd[0] == "outbox":
            ok = status == 0  # listing only reads: a read-only database is fine for it
        else:
            ok = (
                status == expected_status
                and len(lines) == 1
                and lines[0].startswith("escalation-bot: DATABASE_URL: ")
                and says in lines[0]
            )
        if not ok:
            wrong.append(f"{name} / {' '.join(cmd)}: status {status}, {lines[:3]}")
    assert wrong == []


@asynccontextmanager
async def read_only(db_url: str) -> AsyncIterator[None]:
    """Make the bot's database read-only under it, then writable again."""
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        path = Path(url.database or "")
        with immutable(*(p for p in (path, path.with_name(path.name + "-wal")) if p.exists())):
            yield
        return

    async def switch(on: bool) -> None:
        await _admin(f'ALTER DATABASE "{url.database}" SET default_transaction_read_only = {"on" if on else "off"}')
        # Sessions keep the setting they began with: end them, so the pool reconnects under the new one.
        await _admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{url.database}'")

    await switch(True)
    try:
        yield
    finally:
        await switch(False)


async def test_ready_says_why_while_the_database_is_read_only_and_recovers(bot: Bot, db_url: str) -> None:
    async with aiohttp.ClientSession() as http:

        async def ready() -> tuple[int, dict[str, str]]:
            async with http.get(bot.url + "/readyz") as resp:
                return resp.status, await resp.json()

        assert (await ready())[0] == 200
        view = await open_form(bot)
        async with read_only(db_url):
            status, body = await ready()
            assert status == 503 and "read-only" in body["database"], body
            answer = await bot.slack.submit("U0JUNIOR", view, FORM)
            assert answer.json()["response_action"] == "errors"  # the form stays open: nothing is lost
            async with http.get(bot.url + "/healthz") as health:
                assert health.status == 200  # the process itself is fine
        assert (await ready())[0] == 200
        again = await bot.slack.submit("U0JUNIOR", view, FORM)  # the person presses the button again
        assert again.status == 200 and not again.body
        await bot.fake.wait_for(lambda: bot.fake.channel_messages("C0ESCALATE"))


async def test_connections_opened_while_the_file_was_read_only_do_not_outlive_it(tmp_path: Path) -> None:
    # A busy bot opens pool connections during the outage too; SQLite opens those read-only, and
    # they would refuse every write after the file is writable again (seen in CI: the person's
    # second press after recovery failed).
    path = migrated_sqlite(tmp_path)
    db = Database(f"sqlite+aiosqlite:///{path}")
    try:

        async def reader() -> None:
            async with db.read() as conn:
                await conn.execute(text("SELECT count(*) FROM handoffs"))
                await asyncio.sleep(0.05)  # held, so the others need connections of their own

        with immutable(*(p for p in (path, path.with_name(path.name + "-wal")) if p.exists())):
            await asyncio.gather(*(reader() for _ in range(4)))  # reads still work while read-only

        async def writer() -> None:
            # Held together, so every pooled connection gets its turn whatever order the pool hands
            # them out in.
            async with db.read() as conn:
                await asyncio.sleep(0.05)
                await conn.execute(text("PRAGMA user_version = 7"))

        await asyncio.gather(*(writer() for _ in range(4)))
        async with db.write() as conn:
            await conn.execute(text("PRAGMA user_version = 8"))
    finally:
        await db.dispose()


async def test_each_replica_keeps_as_many_connections_as_database_pool_size_says(
    db_url: str, fake_slack: FakeSlack
) -> None:
    # Three replicas at the default fit PostgreSQL's 100 connections; more need a smaller pool.
    runner, _, app = await start_bot(bot_settings(db_url, fake_slack, database_pool_size=4), fake_slack)
    try:
        pool = app[RUNTIME].db.engine.pool
        assert pool.size() == 4  # type: ignore[attr-defined]
        if app[RUNTIME].db.is_postgres:  # and never more than that, so replicas x this is the most they hold
            assert pool._max_overflow == 0  # type: ignore[attr-defined]
    finally:
        await runner.cleanup()


async def test_one_sqlite_process_keeps_few_connections_whatever_the_pool_size_says(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    # Statements run on the loop one at a time; each connection opened holds its own cache (~2.5 MB),
    # and at 25 (+25) a long run kept opening more at every new peak: memory that only grew.
    url = f"sqlite+aiosqlite:///{migrated_sqlite(tmp_path)}"
    runner, _, app = await start_bot(bot_settings(url, fake_slack, database_pool_size=25), fake_slack)
    try:
        pool = app[RUNTIME].db.engine.pool
        assert pool.size() == 8  # type: ignore[attr-defined]
        assert pool._max_overflow == 8  # type: ignore[attr-defined]
    finally:
        await runner.cleanup()


@pytest.fixture
async def pg_bot(fake_slack: FakeSlack) -> AsyncIterator[tuple[Bot, str]]:
    """The bot on a PostgreSQL database of its own (a read there can be made to wait; on SQLite,
    whose readers never wait for a writer, it cannot)."""
    if not PG_URL:
        pytest.skip("TEST_DATABASE_URL not set: PostgreSQL half skipped")
    url, name = await _fresh_pg_database()
    runner, bot_url, app = await start_bot(bot_settings(url, fake_slack), fake_slack)
    try:
        async with SlackSimulator(bot_url, SECRET, fake=fake_slack, team_id=TEAM) as sim:
            yield Bot(url=bot_url, app=app, fake=fake_slack, slack=sim), url
    finally:
        await runner.cleanup()
        await _drop_pg_database(name)


async def test_escalate_answers_within_slacks_three_seconds_while_the_database_stalls(
    pg_bot: tuple[Bot, str],
) -> None:
    bot, url = pg_bot
    parts = make_url(url)
    holder = await asyncpg.connect(
        host=parts.host, port=parts.port or 5432, user=parts.username, password=parts.password, database=parts.database
    )
    try:
        # Another session holds the workspaces table: every read of it waits (a stalled database).
        await holder.execute("BEGIN; LOCK TABLE workspaces IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        answer = await bot.slack.command(JUNIOR, "")
        took = time.monotonic() - started
        # Answered inside Slack's 3 s with words the person can act on, not Slack's own error.
        assert answer.status == 200 and took < 3, (answer.status, answer.body, took)
        assert "try again" in answer.json()["text"]
        assert bot.fake.views_for(JUNIOR) == []
    finally:
        await holder.execute("ROLLBACK")
        await holder.close()
    await open_form(bot)  # once the database answers, the form opens


async def test_a_replica_at_rest_after_a_burst_works_on_one_backend_and_leaves_the_rest_idle(
    pg_bot: tuple[Bot, str],
) -> None:
    # After a burst opened several connections, one request at a time keeps using the connection it
    # just returned, so the other backends stay idle (their caches are not needed, and a server-side
    # idle timeout can close them). Handed out in turn, every block met a cold backend.
    bot, _ = pg_bot
    db = bot.app[RUNTIME].db

    async def which() -> int:
        async with db.read() as conn:
            raw = await conn.get_raw_connection()
            await conn.execute(text("SELECT 1"))
            return id(raw.driver_connection)

    async def held() -> int:
        async with db.read() as conn:
            raw = await conn.get_raw_connection()
            await asyncio.sleep(0.05)  # held, so the others need connections of their own
            return id(raw.driver_connection)

    burst = await asyncio.gather(*(held() for _ in range(5)))
    assert len(set(burst)) == 5
    one_at_a_time = [await which() for _ in range(10)]
    assert len(set(one_at_a_time)) == 1, one_at_a_time


async def test_a_connection_used_a_moment_ago_is_not_pinged_and_one_postgresql_ended_is_replaced(
    pg_bot: tuple[Bot, str],
) -> None:
    # Every statement a person waits for used to be two round trips: a ping, then the statement.
    bot, _ = pg_bot
    db = bot.app[RUNTIME].db

    async def read() -> tuple[int, Any]:
        """The backend that answered, and the driver's connection to it."""
        async with db.read() as conn:
            driver = (await conn.get_raw_connection()).driver_connection
            return (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one(), driver

    first, driver = await read()
    before = driver._protocol.queries_count
    again, _ = await read()
    # One query, from taking the connection to giving it back: no ping, as it was in use a moment
    # ago and has heard nothing since.
    assert again == first and driver._protocol.queries_count - before == 1

    # PostgreSQL ends that session (a restart, a failover, an administrator): the next person's read
    # is answered all the same, by a new session, and without an error; whether asyncpg has read the
    # session's goodbye yet (the loop ran) or only the kernel has it (the loop was busy).
    await _admin(f"SELECT pg_terminate_backend({first})")
    time.sleep(0.2)  # noqa: ASYNC251 - on purpose: the loop is busy while the goodbye arrives
    replaced, _ = await read()
    assert replaced != first
    await _admin(f"SELECT pg_terminate_backend({replaced})")
    await asyncio.sleep(0.2)
    third, _ = await read()
    assert third not in (first, replaced)
