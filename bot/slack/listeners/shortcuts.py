"""The message shortcut "Escalate this message": the escalation form, prefilled from the message.

The thread is read later, by the worker, before the card goes out: the trigger id lives
three seconds and the form must open inside them.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import messages
from bot.slack.deps import SlackDeps
from bot.slack.ids import CallbackId
from bot.slack.modals import escalate_modal, prefill_from_text
from storage.db import StorageUnavailable

log = logging.getLogger(__name__)


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
        try:
            ws = await deps.workspace(context)
            configured = (await deps.workspaces.config(ws)).escalation_channel
        except StorageUnavailable:
            deps.count("storage_unavailable")
            await respond(text=messages.TRY_AGAIN, response_type="ephemeral")
            return
        if not configured:
            await respond(text=messages.NOT_CONFIGURED, response_type="ephemeral")
            return
        summary, details = prefill_from_text(str(message.get("text") or ""))
        view = escalate_modal(
            summary=summary,
            details=details,
            origin_channel=channel,
            source_ts=message.get("ts"),
            source_thread=message.get("thread_ts"),
        )
        try:
            await client.views_open(trigger_id=shortcut["trigger_id"], view=view)
        except SlackApiError as exc:
            log.warning("views.open for a message shortcut failed: %s", exc.response.get("error"))
            await respond(text=messages.open_form_failed(), response_type="ephemeral")
