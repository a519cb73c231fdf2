"""Secrets never appear in logs, even at DEBUG; JSON logs are one object per line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.sandbox.fake_slack import FakeSlack
from bot.sandbox.process import ServeProcess
from bot.sandbox.simulator import SlackSimulator
from tests.conftest import ESC_CHANNEL, JUNIOR, SECRET, SENIORS, TEAM, TOKEN
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
