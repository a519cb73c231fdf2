"""What operators and later features rely on: the outbox CLI, /metrics, thread replies as
first actions, and Slack's event retries handled once."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import time_machine

from bot.sandbox.simulator import button_value
from tests.conftest import ESC_CHANNEL, JUNIOR, SENIORS, Bot
from tests.helpers import FORM, escalate, events_handled, eventually, open_form
from tests.test_delivery_faults import outbox_row
from tests.test_slack_flow import click, wait_card

ANA, BEN = SENIORS[0], SENIORS[1]


def cli(db_url: str, *args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_URL", "TEAMS_", "TIMEZONE"))}
    env = {**clean, **(env or {}), "DATABASE_URL": db_url}
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )


async def test_dead_messages_are_listed_and_can_be_sent_again(bot: Bot, db_url: str, tmp_path: Path) -> None:
    """The bot was never invited to the escalation channel: the card can't go out, and what needed
    the card (the requester's confirmation, a reminder) dies with it instead of waiting for ever.
    Re-sending the card brings them back."""
    bot.fake.channels[ESC_CHANNEL].bot_member = False
    view = await open_form(bot)
    await bot.slack.submit(JUNIOR, view, FORM)
    row = await outbox_row(bot, "post_card:1", until=lambda r: r.status == "dead")
    assert row.status == "dead"
    notify = await outbox_row(bot, "notify:1:created", until=lambda r: r.status == "dead")
    assert notify.status == "dead" and notify.last_error.startswith("card never posted: ")
    # A reminder falls due later: it too dies with the card, instead of deferring for ever.
    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=11), tick=True):
        assert await bot.runtime.service.queue_reminders(reminder_minutes=10, lead_alert_minutes=30) == 1
        bot.runtime.worker.wake()
        reminder = await outbox_row(bot, "reminded:1", until=lambda r: r.status == "dead")
    assert reminder.status == "dead" and reminder.last_error.startswith("card never posted: ")

    listed = await asyncio.to_thread(cli, db_url, "outbox", "list", "--dead", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "post_card" in listed.stdout and "T0ACME/ESC-1" in listed.stdout
    assert "not_in_channel" in listed.stdout and "invite the bot" in listed.stdout
    assert listed.stdout.count("card never posted") == 2

    # The operator invites the bot and re-sends the card; what died with it comes back with it.
    bot.fake.channels[ESC_CHANNEL].bot_member = True
    retried = await asyncio.to_thread(cli, db_url, "outbox", "retry", str(row.id), cwd=tmp_path)
    assert retried.returncode == 0 and "queued 1 of 1" in retried.stdout
    cards = await bot.fake.wait_for(lambda: bot.fake.channel_messages(ESC_CHANNEL), timeout=10)
    await bot.fake.wait_for(lambda: bot.fake.dms_to(JUNIOR))
    await bot.fake.wait_for(lambda: bot.fake.thread(ESC_CHANNEL, cards[0].ts))  # the reminder
    assert len(cards) == 1
    after = await asyncio.to_thread(cli, db_url, "outbox", "list", "--dead", cwd=tmp_path)
    assert "no dead messages" in after.stdout


async def test_metrics_count_escalations_claims_and_the_outbox(bot: Bot) -> None:
    card = await escalate(bot)
    value = button_value(card, "claim")  # the button as everyone saw it, before the card changes
    await click(bot, ANA, card, "claim", value=value)
    await click(bot, BEN, card, "claim", value=value)
    await click(bot, "U0OUTSIDER", card, "claim", value=value)
    await wait_card(bot, card, "Claimed by")
    expected = [
        'escalation_bot_escalations_created_total{platform="slack"} 1.0',
        'escalation_bot_claims_total{outcome="won",platform="slack"} 1.0',
        'escalation_bot_claims_total{outcome="conflict",platform="slack"} 1.0',
        'escalation_bot_claims_total{outcome="refused",platform="slack"} 1.0',
        'escalation_bot_time_to_claim_seconds_count{platform="slack"} 1.0',
        'escalation_bot_outbox_rows{status="dead"} 0.0',
        'escalation_bot_ack_duration_seconds_count{platform="slack",request="interactive"}',
        'escalation_bot_delivery_duration_seconds_count{kind="post_card",result="sent"} 1.0',
        'escalation_bot_submission_to_card_seconds_count{platform="slack"} 1.0',
        'escalation_bot_platform_api_calls_total{method="chat.postMessage",outcome="ok",platform="slack"}',
        'escalation_bot_open_escalations{queue="General",severity="P2",state="claimed"} 1.0',
        "escalation_bot_delivery_lag_seconds_bucket",
    ]

    async def figures() -> str | None:  # delivery figures are recorded just after the send they measure
        async with aiohttp.ClientSession() as s, s.get(bot.url + "/metrics") as r:
            assert r.status == 200
            text = await r.text()
        return text if all(e in text for e in expected) else None

    await eventually(figures)


def reply_event(card, user: str, text: str = "On it", **extra) -> dict:  # type: ignore[no-untyped-def]
    event = {
        "type": "message",
        "channel": card.channel,
        "user": user,
        "text": text,
        "ts": f"{float(card.ts) + 10:.6f}",
        "thread_ts": card.ts,
        "channel_type": "channel",
    }
    event.update(extra)
    return event


async def first_actions(bot: Bot) -> list[dict]:
    ws = await bot.workspace_id()
    return [e for e in await bot.runtime.service.events(ws, 1) if e["kind"] == "first_action"]


async def test_only_the_claimers_first_thread_reply_is_the_first_action(bot: Bot) -> None:
    card = await escalate(bot)
    await click(bot, ANA, card, "claim")
    # Someone else's reply, a bot's note, an edit, and the claimer's reply outside the thread: none count.
    assert (await bot.slack.event(reply_event(card, BEN))).status == 200
    await bot.slack.event(reply_event(card, ANA, bot_id="B1"))
    await bot.slack.event(reply_event(card, ANA, subtype="message_changed"))
    await bot.slack.event({**reply_event(card, ANA), "thread_ts": None})
    await events_handled(bot, 4)
    assert await first_actions(bot) == []
    await bot.slack.event(reply_event(card, ANA, "Looking at the IdP logs"))
    await bot.slack.event(reply_event(card, ANA, "Found it"))
    await events_handled(bot, 6)
    found = await first_actions(bot)
    assert len(found) == 1 and found[0]["actor"] == ANA
    ws = await bot.workspace_id()
    h = await bot.runtime.service.get(ws, 1)
    assert h is not None and h.first_action_at == found[0]["at"]


async def test_a_retried_event_counts_once(bot: Bot) -> None:
    card = await escalate(bot)
    await click(bot, ANA, card, "claim")
    await wait_card(bot, card, "Claimed by")
    await click(bot, ANA, card, "release")  # the first reply must come from the current claimer
    await wait_card(bot, card, "Open · waiting")
    await click(bot, BEN, card, "claim")
    event = reply_event(card, BEN)
    answers = await asyncio.gather(
        bot.slack.event(event, event_id="Ev0RETRY1"),
        bot.slack.event(event, event_id="Ev0RETRY1", retry_num=1),
        bot.slack.event(event, event_id="Ev0RETRY1", retry_num=2),
    )
    assert [a.status for a in answers] == [200, 200, 200]
    await events_handled(bot, 3)
    assert len(await first_actions(bot)) == 1
    # The first-action rule alone would also hold; the two re-deliveries are recognised as such.
    async with aiohttp.ClientSession() as s, s.get(bot.url + "/metrics") as r:
        assert 'escalation_bot_duplicate_events_total{platform="slack"} 2.0' in await r.text()
