"""The message shortcut "Escalate this message": the escalation form, prefilled from the message.

The thread is read later, by the worker, before the card goes out: the trigger id lives
three seconds and the form must open inside them.
"""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import messages
from bot.slack.deps import SlackDeps
from bot.slack.ids import CallbackId
from bot.slack.listeners.common import escalation_refusal, open_form
from bot.slack.modals import escalate_modal, prefill_from_text


def register(app: AsyncApp, deps: SlackDeps) -> None:
    @app.shortcut(CallbackId.ESCALATE_MESSAGE)
    async def escalate_message(
        ack: AsyncAck,
        shortcut: dict[str, Any],
        client: AsyncWebClient,
        respond: AsyncRespond,
        context: AsyncBoltContext,
    ) -> None:
        await ack()
        message = shortcut.get("message") or {}
        channel = (shortcut.get("channel") or {}).get("id")
        refusal = await escalation_refusal(deps, context)
        if refusal:
            await respond(text=refusal, response_type="ephemeral")
            return
        summary, details = prefill_from_text(str(message.get("text") or ""))
        view = escalate_modal(
            summary=summary,
            details=details,
            origin_channel=channel,
            source_ts=message.get("ts"),
            source_thread=message.get("thread_ts"),
        )
        await open_form(client, shortcut["trigger_id"], view, respond, messages.open_form_failed())
