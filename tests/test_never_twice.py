"""Never twice, whatever failed: Slack took the post and then answered 500, never answered, or
dropped the connection. The bot cannot tell, so it looks before it sends again: on the first retry,
on every later one, and after an operator's `outbox retry`; and when it cannot look (the history is
unreadable or Slack rate-limits the reading), it waits and looks again rather than post blind."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.sandbox.faults import APPLIED_THEN_500, APPLIED_THEN_RESET, Fail, applied_then_silent
from bot.sandbox.simulator import button_value
from tests.conftest import ESC_CHANNEL, JUNIOR, SENIORS, Bot
from tests.helpers import FORM, card_text, escalate, eventually, open_form, settle
from tests.test_operations import cli

ANA = SENIORS[0]
AMBIGUOUS = [
    pytest.param(APPLIED_THEN_500, id="applied-then-500"),
    pytest.param(APPLIED_THEN_RESET, id="applied-then-reset"),
    pytest.param(applied_then_silent(3.0), id="applied-then-no-answer"),
]


@pytest.fixture
def bot_overrides() -> dict[str, object]:
    # A short client timeout so "no answer" is seen in a second, not Slack's 10.
    return {"slack_api_timeout_seconds": 1}


async def row(bot: Bot, key: str) -> object:
    return await bot.runtime.service.outbox_row(key)


@pytest.mark.parametrize("failure", AMBIGUOUS)
async def test_a_card_slack_took_but_never_confirmed_is_posted_once(bot: Bot, failure: Fail) -> None:
    bot.fake.fail_next("chat.postMessage", failure)
    view = await open_form(bot)
    assert (await bot.slack.submit(JUNIOR, view, FORM)).status == 200
    await bot.fake.wait_for(lambda: bot.fake.dms_to(JUNIOR), timeout=20)  # the card's link went out
    await settle(bot)
    cards = bot.fake.channel_messages(ESC_CHANNEL)
    assert len(cards) == 1 and "ESC-1" in card_text(cards[0])
    # The second attempt looked first (and found it), it did not post again.
    assert len(bot.fake.calls_to("conversations.history")) >= 1
    posts = bot.fake.calls_to("chat.postMessage", ok=None)
    assert len([c for c in posts if c.applied and c.args.get("channel") == ESC_CHANNEL]) == 1


@pytest.mark.parametrize("failure", AMBIGUOUS)
async def test_every_post_is_once_dms_thread_notes_and_reminders(bot: Bot, failure: Fail) -> None:
    card = await escalate(bot)
    await settle(bot)
    # The claim's DM to the requester and its thread note: each fails after Slack took it.
    bot.fake.fail_next("chat.postMessage", failure, failure)
    assert (await bot.slack.click(ANA, card, "claim", value=button_value(card, "claim"))).status == 200
    await eventually(lambda: len(bot.fake.dms_to(JUNIOR)) >= 2, timeout=20)
    await eventually(lambda: bot.fake.thread(card.channel, card.ts), timeout=20)
    await settle(bot, timeout=20)
    assert [m.text for m in bot.fake.dms_to(JUNIOR)].count(bot.fake.dms_to(JUNIOR)[-1].text) == 1
    assert len(bot.fake.dms_to(JUNIOR)) == 2  # "posted", then "picked up": once each
    assert len(bot.fake.thread(card.channel, card.ts)) == 1


async def test_an_operator_retry_of_a_post_that_went_through_does_not_repeat_it(
    bot: Bot, db_url: str, tmp_path: Path
) -> None:
    # Slack takes the card every time but never says so; after the last attempt the row is dead.
    bot.fake.fail_next("chat.postMessage", *[APPLIED_THEN_500] * 1)
    bot.runtime.worker.max_attempts = 1
    view = await open_form(bot)
    assert (await bot.slack.submit(JUNIOR, view, FORM)).status == 200
    dead = await eventually(lambda: _dead(bot, "post_card:1"), timeout=20)
    assert "500" in dead.last_error
    assert len(bot.fake.channel_messages(ESC_CHANNEL)) == 1  # it is there, though the bot never heard
    bot.runtime.worker.max_attempts = 10
    retried = await asyncio.to_thread(cli, db_url, "outbox", "retry", str(dead.id), cwd=tmp_path)
    assert retried.returncode == 0, retried.stderr
    bot.runtime.worker.wake()
    await bot.fake.wait_for(lambda: bot.fake.dms_to(JUNIOR), timeout=20)
    await settle(bot)
    assert len(bot.fake.channel_messages(ESC_CHANNEL)) == 1  # looked, found, recorded: not posted again


async def test_a_card_found_after_a_lost_answer_shows_what_happened_since(
    bot: Bot, db_url: str, tmp_path: Path
) -> None:
    # Slack took the card but the bot never heard, and a senior claimed from the card meanwhile. When
    # the row is retried the bot finds the card it posted: it shows the escalation as it was then,
    # so the claim must still reach it; finding the card is not rendering the claim.
    bot.fake.fail_next("chat.postMessage", APPLIED_THEN_500)
    bot.runtime.worker.max_attempts = 1
    view = await open_form(bot)
    assert (await bot.slack.submit(JUNIOR, view, FORM)).status == 200
    await eventually(lambda: _dead(bot, "post_card:1"), timeout=20)
    card = bot.fake.channel_messages(ESC_CHANNEL)[0]
    assert (await bot.slack.click(ANA, card, "claim", value=button_value(card, "claim"))).status == 200
    await eventually(lambda: bot.fake.replies_to(ANA), timeout=20)  # "You claimed ESC-1"
    bot.runtime.worker.max_attempts = 10
    dead = await row(bot, "post_card:1")
    retried = await asyncio.to_thread(cli, db_url, "outbox", "retry", str(dead.id), cwd=tmp_path)  # type: ignore[attr-defined]
    assert retried.returncode == 0, retried.stderr
    bot.runtime.worker.wake()
    await eventually(lambda: f"Claimed by <@{ANA}>" in card_text(card), timeout=20)
    await settle(bot)
    assert len(bot.fake.channel_messages(ESC_CHANNEL)) == 1


async def _dead(bot: Bot, key: str) -> object:
    found = await bot.runtime.service.outbox_row(key)
    return found if found is not None and found.status == "dead" else None


async def test_when_the_history_cannot_be_read_the_row_waits_instead_of_posting_blind(bot: Bot) -> None:
    # The post went through, then Slack said 500; and the app may not read the channel back (an install
    # without channels:history). Sending again might double the card, so it doesn't: it waits.
    bot.fake.set_scopes(bot.fake.bot_token or "", [s for s in bot.fake.default_scopes if s != "channels:history"])
    bot.fake.fail_next("chat.postMessage", APPLIED_THEN_500)
    view = await open_form(bot)
    assert (await bot.slack.submit(JUNIOR, view, FORM)).status == 200

    async def checked_and_waiting() -> object:
        r = await bot.runtime.service.outbox_row("post_card:1")
        return r is not None and r.attempts >= 2 and r.last_error and "read the history back" in r.last_error and r

    waiting = await eventually(checked_and_waiting, timeout=20)
    assert waiting.status == "pending" and "missing_scope" in waiting.last_error
    assert len(bot.fake.channel_messages(ESC_CHANNEL)) == 1  # the one Slack took: not a second


async def test_the_check_keeps_to_slacks_limits_for_apps_outside_the_marketplace(bot: Bot) -> None:
    """One history call a minute and 15 messages a call: when Slack says wait, the row waits
    (Retry-After) and checks again; it never posts without having looked."""
    bot.fake.limits.non_marketplace = True
    card = await escalate(bot)
    await settle(bot)
    # Use up this minute's history calls, then have the DM and the thread note fail after Slack took them.
    for method in (bot.runtime.slack_client.conversations_replies, bot.runtime.slack_client.conversations_history):
        used = await method(channel=ESC_CHANNEL, ts=card.ts, limit=15)
        assert used["ok"]
    bot.fake.fail_next("chat.postMessage", APPLIED_THEN_500, APPLIED_THEN_500)
    await bot.slack.click(ANA, card, "claim", value=button_value(card, "claim"))

    async def rate_limited_checks() -> object:
        rows = [await bot.runtime.service.outbox_row(k) for k in ("note:1:claimed:2", "notify:1:claimed:2")]
        waiting = [r for r in rows if r is not None and r.last_error and "rate-limited" in r.last_error]
        return len(waiting) == 2 and waiting

    waiting = await eventually(rate_limited_checks, timeout=20)
    assert all(r.status == "pending" for r in waiting)
    # Told to wait a minute, they wait: no reading again and again inside that minute.
    reads = bot.fake.calls_to("conversations.replies", ok=None) + bot.fake.calls_to("conversations.history", ok=None)
    assert len([c for c in reads if c.status == 429]) <= 4  # each row's check, plus slack_sdk's one short retry
    # Each was taken once by Slack, and not posted again without a look.
    assert len(bot.fake.thread(card.channel, card.ts)) == 1
    assert len(bot.fake.dms_to(JUNIOR)) == 2
