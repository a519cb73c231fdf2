"""Invariant 2: nothing lost. Slack failing, or the process dying, delays a card; it never
loses or doubles one."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.sandbox.fake_slack import Fail, FakeSlack
from bot.sandbox.process import ServeProcess
from bot.sandbox.simulator import SlackSimulator
from storage.tables import outbox
from tests.conftest import ESC_CHANNEL, JUNIOR, SECRET, TEAM, TOKEN, Bot
from tests.helpers import FORM, escalate, eventually, open_form, outbox_quiet


async def outbox_row(bot: Bot, key: str, until, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        async with bot.runtime.db.read() as conn:
            row = (await conn.execute(select(outbox).where(outbox.c.dedupe_key == key))).one()
        if until(row) or time.monotonic() > deadline:
            return row
        await asyncio.sleep(0.05)


async def test_429_then_500_the_card_still_arrives_exactly_once(bot: Bot) -> None:
    bot.fake.fail_next("chat.postMessage", Fail(status=429, retry_after=1), Fail(status=500))
    card = await escalate(bot)
    await bot.runtime.worker.drain()
    await bot.fake.wait_for(lambda: bot.fake.dms_to(JUNIOR))
    assert len(bot.fake.channel_messages(ESC_CHANNEL)) == 1
    assert len(bot.fake.dms_to(JUNIOR)) == 1
    failed = bot.fake.calls_to("chat.postMessage", ok=False)
    assert [c.status for c in failed] == [429, 500]
    # Retry-After: 1 was honoured before the next try.
    posted = next(c for c in bot.fake.calls_to("chat.postMessage") if c.args.get("channel") == ESC_CHANNEL)
    assert posted.at - failed[0].at >= 1.0
    assert card.ts


@pytest.mark.parametrize("bot_overrides", [{"outbox_backoff_cap_seconds": 1.0}])
async def test_an_operator_can_cap_the_wait_between_attempts(bot: Bot) -> None:
    # Four failures in a row: the outbox would wait 2, 4 and then 8 s; capped, about a second each.
    bot.fake.fail_next("chat.postMessage", *[Fail(status=500)] * 4, channel=ESC_CHANNEL)
    view = await open_form(bot)
    assert (await bot.slack.submit(JUNIOR, view, FORM)).status == 200
    await bot.fake.wait_for(lambda: bot.fake.channel_messages(ESC_CHANNEL), timeout=10)
    tries = [c.at for c in bot.fake.calls_to("chat.postMessage", ok=None) if c.args.get("channel") == ESC_CHANNEL]
    gaps = [b - a for a, b in itertools.pairwise(tries)]
    assert len(tries) == 5 and len(bot.fake.channel_messages(ESC_CHANNEL)) == 1
    assert max(gaps) < 1.2 + 0.8, gaps  # the jittered cap, and the worker's poll and lease on top


async def test_outbox_retries_after_the_client_gives_up_honouring_retry_after(bot: Bot) -> None:
    # More failures than the client's own retries: the outbox row waits Retry-After and tries again.
    bot.fake.fail_next("chat.postMessage", *[Fail(status=429, retry_after=1)] * 3)
    view = await open_form(bot)
    assert (await bot.slack.submit(JUNIOR, view, FORM)).status == 200
    cards = await bot.fake.wait_for(lambda: bot.fake.channel_messages(ESC_CHANNEL), timeout=20)
    row = await outbox_row(bot, "post_card:1", until=lambda r: r.status != "pending")
    assert len(cards) == 1
    assert row.status == "sent" and row.attempts == 2


async def test_a_permanent_error_makes_a_dead_row_logged_with_its_reason(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    bot.fake.channels[ESC_CHANNEL].bot_member = False  # nobody invited the bot
    view = await open_form(bot)
    with caplog.at_level(logging.ERROR, logger="bot.delivery.worker"):
        assert (await bot.slack.submit(JUNIOR, view, FORM)).status == 200
        row = await outbox_row(bot, "post_card:1", until=lambda r: r.status != "pending")
        assert row.status == "dead" and "not_in_channel" in row.last_error
        assert "invite the bot" in row.last_error
        await eventually(
            lambda: any("not_in_channel" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)
        )
    assert bot.fake.channel_messages(ESC_CHANNEL) == []


async def test_killed_after_storing_before_posting_posts_once_after_restart(
    db_url: str, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    env = {
        "DATABASE_URL": db_url,
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_BASE_URL": fake_slack.base_url,
        "SLACK_ESCALATION_CHANNEL": ESC_CHANNEL,
        "OUTBOX_LEASE_SECONDS": "2",
        "OUTBOX_POLL_SECONDS": "0.2",
    }
    # Slack hangs on the card: the bot has stored the escalation and is mid-send when it dies.
    fake_slack.fail_next("chat.postMessage", Fail(stall=60))
    first = ServeProcess(env, cwd=tmp_path, log_path=tmp_path / "first.log").start()
    try:
        await first.wait_ready()
        async with SlackSimulator(first.url, SECRET, fake=fake_slack, team_id=TEAM) as slack:
            await slack.command(JUNIOR, "")
            view = (await fake_slack.wait_for(lambda: fake_slack.views_for(JUNIOR)))[-1]
            answer = await slack.submit(JUNIOR, view, FORM)
            assert answer.status == 200 and not answer.body
        # The card's post has reached Slack and hangs there (the fake records a call as it arrives).
        await fake_slack.wait_for(lambda: fake_slack.calls_to("chat.postMessage", ok=None), timeout=10)
        first.kill()
    finally:
        first.stop()
    assert fake_slack.channel_messages(ESC_CHANNEL) == []

    second = ServeProcess(env, cwd=tmp_path, log_path=tmp_path / "second.log").start()
    try:
        await second.wait_ready()
        await fake_slack.wait_for(lambda: fake_slack.dms_to(JUNIOR), timeout=20)
        await outbox_quiet(db_url)  # nothing left to send: anything doubled would have been sent
    finally:
        second.stop()
    cards = fake_slack.channel_messages(ESC_CHANNEL)
    assert len(cards) == 1 and "ESC-1" in cards[0].text
    assert len(fake_slack.dms_to(JUNIOR)) == 1
