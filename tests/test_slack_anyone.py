"""With no seniors configured, anyone but the requester may claim."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import JUNIOR, Bot
from tests.helpers import escalate
from tests.test_slack_flow import click


@pytest.fixture
def bot_overrides() -> dict[str, Any]:
    return {"slack_senior_user_ids": [], "slack_senior_usergroup": None}


async def test_anyone_but_the_requester_may_claim(bot: Bot) -> None:
    card = await escalate(bot)
    assert (await click(bot, JUNIOR, card, "claim")).startswith("You can't claim your own")
    assert (await click(bot, "U0ANYBODY", card, "claim")).startswith("You claimed ESC-1")
