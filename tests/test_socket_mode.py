"""With SLACK_APP_TOKEN set, the bot also connects Socket Mode and serves the same listeners there."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import pytest

from tests.conftest import JUNIOR, Bot


@pytest.fixture
def bot_overrides(fake_slack) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return {"slack_app_token": fake_slack.app_token}


async def test_socket_mode_connects_and_serves_the_command(bot: Bot) -> None:
    fake = bot.fake
    await fake.wait_for(lambda: fake.sockets)
    assert fake.calls_to("apps.connections.open")[0].token == fake.app_token
    payload = dict(parse_qsl(bot.slack.command_body(JUNIOR, "help")))
    envelope = await fake.socket_send("slash_commands", payload)
    ack = await fake.wait_for(lambda: fake.socket_acks.get(envelope) is not None and fake.socket_acks[envelope])
    assert ack["response_type"] == "ephemeral" and "/escalate" in ack["text"]

    payload = dict(parse_qsl(bot.slack.command_body(JUNIOR, "Checkout broken")))
    await fake.socket_send("slash_commands", payload)
    views = await fake.wait_for(lambda: fake.views_for(JUNIOR))
    assert views[0]["blocks"][0]["element"]["initial_value"] == "Checkout broken"
