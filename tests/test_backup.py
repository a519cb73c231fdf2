"""Backups that restore. A backup taken while escalations are being written (SQLite's online backup
through `escalation-bot db backup`; PostgreSQL's pg_dump, as docs/operations.md says) is restored
into a fresh database and a bot started on it: every escalation acknowledged before the backup
began is there, and the outbox resumes without sending anything twice (the messages that were
still pending in the backup may have gone out after it: each is looked for first)."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from bot.sandbox.fake_slack import FakeSlack
from bot.sandbox.process import ServeProcess
from bot.sandbox.simulator import SlackSimulator
from bot.slack.modals import escalate_modal
from storage.db import Database
from storage.tables import handoffs
from tests.conftest import ESC_CHANNEL, PG_URL, SECRET, TEAM, TOKEN, _drop_pg_database, _fresh_pg_database
from tests.helpers import FORM, eventually, outbox_quiet


def env_for(db_url: str, fake: FakeSlack) -> dict[str, str]:
    return {
        "DATABASE_URL": db_url,
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_BASE_URL": fake.base_url,
        "SLACK_ESCALATION_CHANNEL": ESC_CHANNEL,
        "OUTBOX_POLL_SECONDS": "0.3",
    }


class Stream:
    """Escalations submitted one after another, each noted when Slack got its acknowledgement."""

    def __init__(self, sim: SlackSimulator):
        self.sim, self.acked, self.n, self.stopping = sim, [], 0, False  # type: ignore[var-annotated]

    async def run(self) -> None:
        while not self.stopping:
            self.n += 1
            view = escalate_modal().to_dict()
            view["id"] = f"VBACKUP{self.n:05d}"
            summary = f"Backup test {self.n:05d}"
            answer = await self.sim.submit(f"U0REQ{self.n:05d}", view, {**FORM, "summary": summary})
            if answer.status == 200 and not answer.body:
                self.acked.append(summary)
            await asyncio.sleep(0.02)


async def stored(db_url: str) -> set[str]:
    db = Database(db_url)
    try:
        async with db.read() as conn:
            return {s for (s,) in (await conn.execute(select(handoffs.c.summary))).all()}
    finally:
        await db.dispose()


def cards(fake: FakeSlack) -> Counter[str]:
    found = (re.search(r"Backup test \d+", c.text) for c in fake.channel_messages(ESC_CHANNEL))
    return Counter(m.group(0) for m in found if m)


async def backed_up_while_writing(db_url: str, fake: FakeSlack, tmp_path: Path, take: Any) -> tuple[list[str], Any]:
    """Run a bot, stream escalations, take the backup in the middle; return what was acknowledged
    before the backup began, and what `take` returned."""
    # Looking a message up reads the channel's history, which Slack allows an app outside the
    # Marketplace once a minute: this test is about what is sent, not Slack's pace, so the fake's
    # limits are raised a hundredfold.
    fake.limits.scale = 100
    bot = ServeProcess(env_for(db_url, fake), cwd=tmp_path, log_path=tmp_path / "before.log").start()
    try:
        await bot.wait_ready()
        async with SlackSimulator(bot.url, SECRET, fake=fake, team_id=TEAM) as sim:
            stream = Stream(sim)
            running = asyncio.create_task(stream.run())
            await eventually(lambda: len(stream.acked) >= 15, timeout=30)
            acked_before = list(stream.acked)
            result = await asyncio.to_thread(take)
            await eventually(lambda: len(stream.acked) >= len(acked_before) + 10, timeout=30)  # it keeps taking them
            stream.stopping = True
            await running
        await outbox_quiet(db_url, timeout=30)  # everything it took went out
    finally:
        bot.stop()
    return acked_before, result


async def restored_and_resumed(restored_url: str, fake: FakeSlack, tmp_path: Path, acked_before: list[str]) -> None:
    posted_before = cards(fake)
    assert all(n == 1 for n in posted_before.values())
    assert set(acked_before) <= await stored(restored_url), "an escalation acknowledged before the backup is missing"
    bot = ServeProcess(env_for(restored_url, fake), cwd=tmp_path, log_path=tmp_path / "after.log").start()
    try:
        await bot.wait_ready()
        await outbox_quiet(restored_url, timeout=60)  # what was pending in the backup has been dealt with
    finally:
        bot.stop()
    assert cards(fake) == posted_before, "a card was posted twice from the restored database"
    told = Counter(m.to_user for m in fake.messages if m.to_user)
    assert told and max(told.values()) == 1, "a requester was told twice"


async def test_a_sqlite_backup_taken_while_writing_restores_and_sends_nothing_twice(
    fake_slack: FakeSlack, tmp_path: Path
) -> None:
    live = tmp_path / "live.db"
    backup = tmp_path / "backup.db"

    def take() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bot.cli", "db", "backup", str(backup)],
            env={"PATH": "/usr/bin:/bin", "DATABASE_URL": f"sqlite+aiosqlite:///{live}"},
            capture_output=True,
            text=True,
            timeout=60,
        )

    acked_before, done = await backed_up_while_writing(f"sqlite+aiosqlite:///{live}", fake_slack, tmp_path, take)
    assert done.returncode == 0, done.stderr
    assert re.match(r"backed up \d+ escalation\(s\) to ", done.stdout), done.stdout
    restored = tmp_path / "restored.db"
    shutil.copy(backup, restored)  # restoring a SQLite backup: it is the database file
    await restored_and_resumed(f"sqlite+aiosqlite:///{restored}", fake_slack, tmp_path, acked_before)


async def test_a_postgresql_dump_taken_while_writing_restores_and_sends_nothing_twice(
    fake_slack: FakeSlack, tmp_path: Path
) -> None:
    if not PG_URL:
        pytest.skip("TEST_DATABASE_URL not set: PostgreSQL only")
    live, name = await _fresh_pg_database()
    target, restored_name = await _fresh_pg_database()
    plain = make_url(live).set(drivername="postgresql").render_as_string(hide_password=False)
    dump = tmp_path / "escalations.dump"
    try:

        def take() -> subprocess.CompletedProcess[str]:  # docs/operations.md, "Back up"
            return subprocess.run(
                ["pg_dump", "--format=custom", f"--file={dump}", plain], capture_output=True, text=True, timeout=60
            )

        acked_before, done = await backed_up_while_writing(live, fake_slack, tmp_path, take)
        assert done.returncode == 0, done.stderr
        into = make_url(target).set(drivername="postgresql").render_as_string(hide_password=False)
        loaded = await asyncio.to_thread(
            subprocess.run,
            ["pg_restore", "--no-owner", f"--dbname={into}", str(dump)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert loaded.returncode == 0, loaded.stderr
        recheck = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "bot.cli", "outbox", "recheck"],
            env={"PATH": "/usr/bin:/bin", "DATABASE_URL": target},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert recheck.returncode == 0 and "will be looked for before they are sent" in recheck.stdout
        await restored_and_resumed(target, fake_slack, tmp_path, acked_before)
    finally:
        await _drop_pg_database(name)
        await _drop_pg_database(restored_name)
