"""`/escalate`: ack, then open the form at once (the trigger id lives 3 seconds)."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import messages
from bot.slack.deps import SlackDeps
from bot.slack.modals import escalate_modal, prefill_from_text

log = logging.getLogger(__name__)

HELP_WORDS = {"help", "-h", "--help", "?"}


def register(app: AsyncApp, deps: SlackDeps) -> None:
    @app.command("/escalate")
    async def escalate_command(
        ack: AsyncAck, command: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond
    ) -> None:
        typed = (command.get("text") or "").strip()
        if typed.lower() in HELP_WORDS:
            await ack(response_type="ephemeral", text=messages.HELP)
            return
        await ack()
        summary, details = prefill_from_text(typed)
        view = escalate_modal(summary=summary, details=details, origin_channel=command.get("channel_id"))
        try:
            await client.views_open(trigger_id=command["trigger_id"], view=view)
        except SlackApiError as exc:
            log.warning("views.open failed: %s", exc.response.get("error"))
            await respond(text=messages.open_form_failed(), response_type="ephemeral")
