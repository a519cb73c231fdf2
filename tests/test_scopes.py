"""The scopes the app asks for are exactly those it uses: derived from every Web API call a full
run makes (by Slack's method reference, which the fake enforces), and compared with manifest.yml
and the OAuth install's list."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.sandbox.faults import APPLIED_THEN_500
from bot.sandbox.simulator import button_value
from bot.slack.oauth import BOT_SCOPES
from tests.conftest import ESC_CHANNEL, JUNIOR, SENIORS, Bot
from tests.helpers import FORM, card_text, escalate, eventually, settle

ROOT = Path(__file__).resolve().parent.parent
GROUP = "S0SENIORS"
PRIVATE = "G0PRIVATE"


@pytest.fixture
def bot_overrides() -> dict[str, Any]:
    return {"slack_senior_usergroup": GROUP, "slack_senior_user_ids": [], "slack_leads_channel": "C0LEADS"}


async def test_the_scopes_asked_for_are_exactly_the_ones_a_full_run_needs(bot: Bot) -> None:
    fake = bot.fake
    fake.usergroups[GROUP] = [SENIORS[0]]
    fake.users.update({"U0ADMIN": "Ada"})
    fake.admins.add("U0ADMIN")
    fake.add_channel(PRIVATE, "support-private", private=True)

    # An escalation whose card Slack takes but never confirms: the retry reads the channel back.
    fake.fail_next("chat.postMessage", APPLIED_THEN_500)
    card = await escalate(bot)
    await eventually(lambda: _sent(bot, "post_card:1"), timeout=20)
    # A claim (a senior by user group) whose DM Slack takes but never confirms: the DM is read back.
    # (Aimed at the DM: the claim's thread note is posted at the same time, in either order.)
    fake.fail_next("chat.postMessage", APPLIED_THEN_500, channel=JUNIOR)
    assert (await bot.slack.click(SENIORS[0], card, "claim", value=button_value(card, "claim"))).status == 200
    await eventually(lambda: _sent(bot, "notify:1:claimed:2"), timeout=20)
    # A message escalated from a private channel: its thread is copied.
    root = fake.say(PRIVATE, JUNIOR, "Billing export is stuck")
    assert (await bot.slack.message_shortcut(JUNIOR, root)).status == 200
    form = (await fake.wait_for(lambda: [v for v in fake.views_for(JUNIOR) if "Escalating a message" in str(v)]))[-1]
    assert (await bot.slack.submit(JUNIOR, form, {**FORM, "tried": ""})).status == 200
    await fake.wait_for(lambda: any("What's been tried" in card_text(m) for m in fake.channel_messages(ESC_CHANNEL)))
    # The Home tab, the settings form (an admin check) and the weekly report with its chart.
    await bot.slack.open_home(SENIORS[0])
    await fake.wait_for(lambda: [v for v in fake.views if v.get("_home")])
    assert (await bot.slack.command("U0ADMIN", "config")).status == 200
    await fake.wait_for(lambda: fake.views_for("U0ADMIN"))
    await bot.runtime.service.queue_report_now(await bot.workspace_id(), date(2026, 11, 16))
    bot.runtime.worker.wake()
    await fake.wait_for(lambda: fake.files, timeout=20)
    await settle(bot)

    needed = fake.scopes_needed() | {"commands"}  # `commands`: the slash command itself, not a Web API call
    manifest = yaml.safe_load((ROOT / "manifest.yml").read_text())["oauth_config"]["scopes"]["bot"]
    assert needed == set(manifest) == set(BOT_SCOPES), needed ^ set(manifest)
    assert [c.method for c in fake.calls if c.error == "missing_scope"] == []  # nothing was refused for one


async def _sent(bot: Bot, key: str) -> bool:
    row = await bot.runtime.service.outbox_row(key)
    return row is not None and row.status == "sent"
