"""The message shortcut "Escalate this message": the escalation form, prefilled from the message.

The thread is read later, by the worker, before the card goes out: the trigger id lives
three seconds and the form must open inside them.
"""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.inbound import dict_at, text_at
from bot.slack import messages
from bot.slack.deps import SlackDeps
from bot.slack.ids import CallbackId
from bot.slack.listeners.common import escalation_refusal, guarded, open_form
from bot.slack.modals import escalate_modal, prefill_from_text, slack_id, slack_ts
from handoff.queues import route
from storage.db import StorageUnavailable


def register(app: AsyncApp, deps: SlackDeps) -> None:
    @app.shortcut(CallbackId.ESCALATE_MESSAGE)
    @guarded
    async def escalate_message(
        ack: AsyncAck,
        shortcut: dict[str, Any],
        client: AsyncWebClient,
        respond: AsyncRespond,
        context: AsyncBoltContext,
    ) -> None:
        await ack()
        message = dict_at(shortcut, "message")
        channel = text_at(shortcut, "channel", "id")
        trigger = text_at(shortcut, "trigger_id")
        refusal = await escalation_refusal(deps, context)
        if refusal or trigger is None:
            await respond(text=refusal or messages.open_form_failed(), response_type="ephemeral")
            return
        summary, details = prefill_from_text(text_at(message, "text") or "")
        channel = channel if slack_id(channel) else None
        try:
            queues = await deps.service.queues(await deps.workspace(context))
        except StorageUnavailable:
            queues = []
        view = escalate_modal(
            summary=summary,
            details=details,
            origin_channel=channel,
            source_ts=slack_ts(text_at(message, "ts")),
            source_thread=slack_ts(text_at(message, "thread_ts")),
            queues=queues,
            queue_id=route(queues, channel=channel, text="")[0].id if len(queues) > 1 else None,
        )
        await open_form(client, trigger, view, respond, messages.open_form_failed())
