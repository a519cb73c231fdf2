"""Seniors defined by a Slack user group (SLACK_SENIOR_USERGROUP), with no list of ids."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.conftest import SENIORS, Bot
from tests.helpers import escalate
from tests.test_slack_flow import click

GROUP = "S0TIER2"
MEMBER = "U0GROUPMEMBER"


@pytest.fixture
def bot_overrides() -> dict[str, Any]:
    return {"slack_senior_user_ids": [], "slack_senior_usergroup": GROUP}


async def test_only_group_members_may_claim(bot: Bot) -> None:
    bot.fake.usergroups[GROUP] = [MEMBER]
    card = await escalate(bot)
    refused = await click(bot, SENIORS[0], card, "claim")
    assert refused == f"Only seniors can claim escalations here: members of <!subteam^{GROUP}>."
    assert (await click(bot, MEMBER, card, "claim")).startswith("You claimed ESC-1")
    assert len(bot.fake.calls_to("usergroups.users.list")) == 1  # cached between clicks


async def test_a_storm_of_first_clicks_asks_slack_for_the_group_once(bot: Bot) -> None:
    # usergroups.users.list is Tier 2 (about 20 a minute): 30 seniors pressing Claim together while the
    # bot has not read the group yet must not be 30 calls, some refused with 429 and their clicks
    # refused or held until Slack lets the bot ask again.
    members = [f"U0MEMBER{i:02d}" for i in range(30)]
    bot.fake.usergroups[GROUP] = members
    card = await escalate(bot)
    answers = await asyncio.gather(*(click(bot, m, card, "claim") for m in members))
    assert len(bot.fake.calls_to("usergroups.users.list")) == 1
    won = [a for a in answers if a.startswith("You claimed ESC-1")]
    assert len(won) == 1, answers
    assert all(a.startswith("Already claimed by") for a in answers if a not in won), answers
