"""Bolt's signature check stays on: unsigned, forged or stale requests get 401 and change nothing."""

from __future__ import annotations

import time

from tests.conftest import ESC_CHANNEL, JUNIOR, SENIORS, Bot
from tests.helpers import FORM, escalate, open_form


async def test_bad_signature_is_401_and_opens_nothing(bot: Bot) -> None:
    body = bot.slack.command_body(JUNIOR, "hello")
    answer = await bot.slack.post(body, "application/x-www-form-urlencoded", signature="v0=" + "0" * 64)
    assert answer.status == 401
    assert bot.fake.views_for(JUNIOR) == []


async def test_stale_signature_is_401(bot: Bot) -> None:
    # Correctly signed, but six minutes old: a replay.
    body = bot.slack.command_body(JUNIOR, "hello")
    answer = await bot.slack.post(body, "application/x-www-form-urlencoded", timestamp=int(time.time()) - 360)
    assert answer.status == 401
    assert bot.fake.views_for(JUNIOR) == []


async def test_forged_submission_stores_nothing(bot: Bot) -> None:
    view = await open_form(bot)
    body = bot.slack.view_submission_body(JUNIOR, view, FORM)
    answer = await bot.slack.post(body, "application/x-www-form-urlencoded", signature="v0=deadbeef")
    assert answer.status == 401
    stale = await bot.slack.post(body, "application/x-www-form-urlencoded", timestamp=int(time.time()) - 301 - 60)
    assert stale.status == 401
    await bot.runtime.worker.drain()
    ws = await bot.workspace_id()
    assert await bot.runtime.service.get(ws, 1) is None
    assert bot.fake.channel_messages(ESC_CHANNEL) == []


async def test_forged_claim_changes_nothing(bot: Bot) -> None:
    card = await escalate(bot)
    body = bot.slack.click_body(SENIORS[0], card, "claim")
    answer = await bot.slack.post(body, "application/x-www-form-urlencoded", signature="v0=forged")
    assert answer.status == 401
    missing = await bot.slack.post(body, "application/x-www-form-urlencoded", headers={"X-Slack-Signature": ""})
    assert missing.status == 401
    await bot.runtime.worker.drain()
    ws = await bot.workspace_id()
    h = await bot.runtime.service.get(ws, 1)
    assert h is not None and h.status == "open"
    assert bot.fake.replies_to(SENIORS[0]) == []
