"""Secrets never appear in logs, even at DEBUG; JSON logs are one object per line."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from bot.sandbox.fake_slack import FakeSlack
from bot.sandbox.process import ServeProcess
from bot.sandbox.simulator import SlackSimulator
from tests.conftest import (
    ESC_CHANNEL,
    JUNIOR,
    PG_URL,
    SECRET,
    SENIORS,
    TEAM,
    TOKEN,
    _drop_pg_database,
    _fresh_pg_database,
)
from tests.helpers import FORM


@pytest.mark.parametrize("fmt", ["text", "json"])
async def test_no_secret_in_debug_logs(fmt: str, fake_slack: FakeSlack, tmp_path: Path) -> None:
    log_file = tmp_path / "serve.log"
    env = {
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_BASE_URL": fake_slack.base_url,
        "SLACK_ESCALATION_CHANNEL": ESC_CHANNEL,
        "LOG_LEVEL": "DEBUG",
        "LOG_FORMAT": fmt,
    }
    proc = ServeProcess(env, cwd=tmp_path, log_path=log_file).start()
    try:
        await proc.wait_ready()
        async with SlackSimulator(proc.url, SECRET, fake=fake_slack, team_id=TEAM) as slack:
            await slack.command(JUNIOR, "Login broken")
            view = (await fake_slack.wait_for(lambda: fake_slack.views_for(JUNIOR)))[-1]
            await slack.submit(JUNIOR, view, FORM)
            card = (await fake_slack.wait_for(lambda: fake_slack.channel_messages(ESC_CHANNEL)))[0]
            await slack.click(SENIORS[0], card, "claim")
            await fake_slack.wait_for(lambda: fake_slack.replies_to(SENIORS[0]))
            await fake_slack.wait_for(lambda: card.edits)
    finally:
        proc.stop()
    logs = log_file.read_text()
    assert "chat.postMessage" in logs  # DEBUG really was on: the Web API calls are logged
    assert TOKEN not in logs and SECRET not in logs
    assert "xoxb-" not in logs
    if fmt == "json":
        lines = [json.loads(line) for line in logs.splitlines() if line.strip()]
        assert all({"ts", "level", "logger", "msg"} <= set(obj) for obj in lines)
        assert any(obj.get("handoff") == "ESC-1" for obj in lines)


async def test_the_database_password_never_appears_in_logs_or_in_a_refusal(
    fake_slack: FakeSlack, tmp_path: Path
) -> None:
    """A password in DATABASE_URL (and DATABASE_MIGRATION_URL) is a secret like the tokens: not in
    the DEBUG log of a serving bot, not in the one line a database it cannot use gets."""
    if not PG_URL:
        pytest.skip("TEST_DATABASE_URL not set: needs PostgreSQL")
    import subprocess
    import sys

    from sqlalchemy.engine import make_url

    password = "db-Pa55word-never-logged"  # this machine's PostgreSQL trusts loopback: any password works
    url, name = await _fresh_pg_database()
    with_password = make_url(url).set(password=password).render_as_string(hide_password=False)
    log_file = tmp_path / "serve.log"
    env = {
        "DATABASE_URL": with_password,
        "DATABASE_MIGRATION_URL": with_password,
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_BASE_URL": fake_slack.base_url,
        "SLACK_ESCALATION_CHANNEL": ESC_CHANNEL,
        "LOG_LEVEL": "DEBUG",
    }
    proc = ServeProcess(env, cwd=tmp_path, log_path=log_file).start()
    try:
        await proc.wait_ready()
        async with SlackSimulator(proc.url, SECRET, fake=fake_slack, team_id=TEAM) as slack:
            await slack.command(JUNIOR, "Login broken")
            view = (await fake_slack.wait_for(lambda: fake_slack.views_for(JUNIOR)))[-1]
            await slack.submit(JUNIOR, view, FORM)
            await fake_slack.wait_for(lambda: fake_slack.channel_messages(ESC_CHANNEL))
    finally:
        proc.stop()
        await _drop_pg_database(name)
    logs = log_file.read_text()
    assert "DEBUG" in logs and password not in logs
    missing = make_url(with_password).set(database="eb_no_such_database").render_as_string(hide_password=False)
    refused = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "bot.cli", "db", "upgrade"],
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL": missing},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 1 and "eb_no_such_database" in refused.stderr
    assert password not in refused.stderr + refused.stdout
    # And should a line ever carry the URL, the log's filter takes the password out of it.
    from bot.config import Settings
    from bot.logs import RedactSecrets

    settings = Settings(_env_file=None, database_url=missing)  # type: ignore[call-arg]
    assert password not in RedactSecrets(settings.secrets()).scrub(f"connecting to {missing}")
