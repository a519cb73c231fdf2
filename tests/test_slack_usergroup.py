"""Seniors defined by a Slack user group (SLACK_SENIOR_USERGROUP), with no list of ids."""

from __future__ import annotations

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
