"""Steps several listeners share: who may change settings, whether an escalation can start
here, and opening a form inside the trigger's 3 seconds."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncBoltContext, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.models.views import View
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import messages
from bot.slack.deps import SlackDeps
from storage.db import StorageUnavailable

log = logging.getLogger(__name__)


async def admin_refusal(client: AsyncWebClient, user: str) -> str | None:
    """Why `user` may not change this workspace's settings, or None when they are an admin or owner."""
    try:
        info: dict[str, Any] = (await client.users_info(user=user)).get("user") or {}
    except SlackApiError as exc:
        error = str(exc.response.get("error"))
        log.warning("users.info for %s failed: %s", user, error)
        return messages.cannot_check_admin(error)
    if info.get("is_admin") or info.get("is_owner") or info.get("is_primary_owner"):
        return None
    return messages.ADMINS_ONLY


async def escalation_refusal(deps: SlackDeps, context: AsyncBoltContext) -> str | None:
    """Why no escalation can start in this workspace now (the database is down, or no escalation
    channel is set), or None when one can."""
    try:
        ws = await deps.workspace(context)
        channel = (await deps.workspaces.config(ws)).escalation_channel
    except StorageUnavailable:
        deps.count("storage_unavailable")
        return messages.TRY_AGAIN
    return None if channel else messages.NOT_CONFIGURED


async def open_form(client: AsyncWebClient, trigger_id: str, view: View, respond: AsyncRespond, failed: str) -> None:
    """Open a modal; if Slack refuses (most often: the trigger expired), tell the person `failed`."""
    try:
        await client.views_open(trigger_id=trigger_id, view=view)
    except SlackApiError as exc:
        log.warning("views.open for %s failed: %s", view.callback_id, exc.response.get("error"))
        await respond(text=failed, response_type="ephemeral")
