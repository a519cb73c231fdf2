"""`/escalate`: ack, then open the form at once (the trigger id lives 3 seconds).

`/escalate mine`, `/escalate stats`, `/escalate help` and `/escalate config` are answered to
the caller alone. Anything else typed after the command is the start of a summary.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import ContextBlock, MarkdownTextObject
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import messages
from bot.slack.deps import SlackDeps
from bot.slack.modals import config_modal, escalate_modal, prefill_from_text
from bot.slack.report_blocks import report_blocks, report_fallback
from storage.db import StorageUnavailable

log = logging.getLogger(__name__)

HELP_WORDS = {"help", "-h", "--help", "?"}
SUBCOMMANDS = {"mine", "stats", "config"}


class CannotCheckAdmin(Exception):
    """Slack would not say whether the user is an admin (most often: the app lacks users:read)."""


async def is_workspace_admin(client: AsyncWebClient, user: str) -> bool:
    try:
        info = (await client.users_info(user=user)).get("user") or {}
    except SlackApiError as exc:
        error = exc.response.get("error")
        log.warning("users.info for %s failed: %s", user, error)
        raise CannotCheckAdmin(str(error)) from exc
    return bool(info.get("is_admin") or info.get("is_owner") or info.get("is_primary_owner"))


def register(app: AsyncApp, deps: SlackDeps) -> None:
    @app.command("/escalate")
    async def escalate_command(
        ack: AsyncAck,
        command: dict[str, Any],
        client: AsyncWebClient,
        respond: AsyncRespond,
        context: AsyncBoltContext,
    ) -> None:
        typed = (command.get("text") or "").strip()
        word = typed.lower()
        if word in HELP_WORDS:
            await ack(response_type="ephemeral", text=messages.HELP)
            return
        user = command["user_id"]
        if word in SUBCOMMANDS:
            await ack()
            try:
                ws = await deps.workspace(context)
                if word == "mine":
                    await respond(text=messages.mine(await deps.service.mine(ws, user)), response_type="ephemeral")
                elif word == "stats":
                    await _stats(ws, user, respond)
                else:
                    await _config(ws, user, command, client, respond)
            except StorageUnavailable:
                deps.count("storage_unavailable")
                await respond(text=messages.TRY_AGAIN, response_type="ephemeral")
            return
        try:
            ws = await deps.workspace(context)
            cfg = await deps.workspaces.config(ws)
        except StorageUnavailable:
            deps.count("storage_unavailable")
            await ack(response_type="ephemeral", text=messages.TRY_AGAIN)
            return
        if not cfg.escalation_channel:
            await ack(response_type="ephemeral", text=messages.NOT_CONFIGURED)
            return
        await ack()
        summary, details = prefill_from_text(typed)
        view = escalate_modal(summary=summary, details=details, origin_channel=command.get("channel_id"))
        try:
            await client.views_open(trigger_id=command["trigger_id"], view=view)
        except SlackApiError as exc:
            log.warning("views.open failed: %s", exc.response.get("error"))
            await respond(text=messages.open_form_failed(), response_type="ephemeral")

    async def _stats(ws: int, user: str, respond: AsyncRespond) -> None:
        leads = (await deps.workspaces.config(ws)).lead_user_ids
        if leads and user not in leads:
            await respond(text=messages.STATS_FOR_LEADS, response_type="ephemeral")
            return
        report = await deps.stats_for(ws)
        blocks = report_blocks(report)
        blocks.insert(1, ContextBlock(elements=[MarkdownTextObject(text="*This week so far*, up to now.")]))
        await respond(blocks=[b.to_dict() for b in blocks], text=report_fallback(report), response_type="ephemeral")

    async def _config(
        ws: int, user: str, command: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond
    ) -> None:
        try:
            admin = await is_workspace_admin(client, user)
        except CannotCheckAdmin as exc:
            await respond(text=messages.cannot_check_admin(str(exc)), response_type="ephemeral")
            return
        if not admin:
            await respond(text=messages.ADMINS_ONLY, response_type="ephemeral")
            return
        cfg = await deps.workspaces.config(ws)
        try:
            await client.views_open(trigger_id=command["trigger_id"], view=config_modal(cfg))
        except SlackApiError as exc:
            log.warning("views.open for config failed: %s", exc.response.get("error"))
            await respond(text="I couldn't open the settings in time. Run `/escalate config` again.")
