"""`/escalate`: ack, then open the form at once (the trigger id lives 3 seconds).

`/escalate mine`, `/escalate stats`, `/escalate help` and `/escalate config` are answered to
the caller alone. Anything else typed after the command is the start of a summary.
"""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond
from slack_sdk.models.blocks import ContextBlock, MarkdownTextObject
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import messages
from bot.slack import text as t
from bot.slack.deps import SlackDeps
from bot.slack.listeners import leads_page
from bot.slack.listeners.common import admin_refusal, escalation_refusal, guarded, open_form
from bot.slack.listeners.queues import config_queue
from bot.slack.modals import config_modal, escalate_modal, prefill_from_text, slack_id
from bot.slack.queue_modals import queues_summary
from bot.slack.report_blocks import report_blocks, report_fallback
from handoff.domain import Closed, Done, NotAllowed
from handoff.queues import route
from storage.db import StorageUnavailable

HELP_WORDS = {"help", "-h", "--help", "?"}
SUBCOMMANDS = {"mine", "stats", "config", "dashboard"}


def register(app: AsyncApp, deps: SlackDeps) -> None:
    @app.command("/escalate")
    @guarded
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
        if word == "cancel" or word.startswith("cancel "):
            await ack()
            try:
                ws = await deps.workspace(context)
                h = await deps.service.by_ref(ws, typed[len("cancel") :])
                if h is None:
                    await respond(text=messages.CANCEL_USAGE, response_type="ephemeral")
                    return
                outcome = await deps.service.cancel(ws, h.id, user)
            except StorageUnavailable:
                deps.count("storage_unavailable")
                await respond(text=messages.TRY_AGAIN, response_type="ephemeral")
                return
            if isinstance(outcome, Done):
                reply = messages.cancelled_reply(outcome.handoff.ref)
            elif isinstance(outcome, NotAllowed):
                reply = f"Only the person who escalated {h.ref} can cancel it."
            elif isinstance(outcome, Closed):
                reply = messages.closed(outcome.handoff)
            else:
                reply = messages.NOT_FOUND
            await respond(text=reply, response_type="ephemeral")
            return
        if word.startswith("config "):
            await ack()
            try:
                ws = await deps.workspace(context)
                refusal = await admin_refusal(client, user)
                if refusal:
                    await respond(text=refusal, response_type="ephemeral")
                    return
                await config_queue(deps, ws, typed.split()[1:], command, client, respond)
            except StorageUnavailable:
                deps.count("storage_unavailable")
                await respond(text=messages.TRY_AGAIN, response_type="ephemeral")
            return
        if word == "baseline" or word.startswith("baseline "):
            await ack()
            try:
                ws = await deps.workspace(context)
                await respond(
                    text=await leads_page.baseline(deps, ws, user, typed[len("baseline") :]), response_type="ephemeral"
                )
            except StorageUnavailable:
                deps.count("storage_unavailable")
                await respond(text=messages.TRY_AGAIN, response_type="ephemeral")
            return
        if word in SUBCOMMANDS or word.startswith("stats "):
            await ack()
            try:
                ws = await deps.workspace(context)
                if word == "mine":
                    queues = await deps.service.queues(ws)
                    names = {q.id: q.name for q in queues} if len(queues) > 1 else None
                    await respond(
                        text=messages.mine(await deps.service.mine(ws, user), names), response_type="ephemeral"
                    )
                elif word.startswith("stats"):
                    await _stats(ws, user, typed[len("stats") :].strip(), respond)
                elif word == "dashboard":
                    await respond(text=await leads_page.sign_in_link(deps, ws, user), response_type="ephemeral")
                else:
                    await _config(ws, user, command, client, respond)
            except StorageUnavailable:
                deps.count("storage_unavailable")
                await respond(text=messages.TRY_AGAIN, response_type="ephemeral")
            return
        refusal = await escalation_refusal(deps, context)
        if refusal:
            await ack(response_type="ephemeral", text=refusal)
            return
        await ack()
        channel = command.get("channel_id")
        channel = channel if slack_id(channel) else None
        try:
            queues = await deps.service.queues(await deps.workspace(context))
        except StorageUnavailable:
            queues = []  # the form opens all the same; storing it says if the database is still away
        queue_id = None
        if len(queues) > 1:
            queue, typed = route(queues, channel=channel, text=typed)
            queue_id = queue.id
        summary, details = prefill_from_text(typed)
        view = escalate_modal(
            summary=summary, details=details, origin_channel=channel, queues=queues, queue_id=queue_id
        )
        await open_form(client, command["trigger_id"], view, respond, messages.open_form_failed())

    async def _stats(ws: int, user: str, queue_name: str, respond: AsyncRespond) -> None:
        """This week so far, for the workspace or (`/escalate stats billing`) one queue: for the
        workspace's leads, or that queue's."""
        queue = None
        if queue_name:
            queue = next((q for q in await deps.service.queues(ws) if q.answers_to(queue_name)), None)
            if queue is None:
                await respond(text=f"There is no queue called {t.fit(queue_name, 80)}.", response_type="ephemeral")
                return
        leads = list((await deps.workspaces.config(ws)).lead_user_ids)
        if queue is not None:
            leads += (await deps.workspaces.queue_config(ws, queue)).lead_user_ids
        if leads and user not in leads:
            await respond(text=messages.STATS_FOR_LEADS, response_type="ephemeral")
            return
        report = await deps.stats_for(ws, queue.id if queue is not None else None)
        blocks = report_blocks(report)
        blocks.insert(1, ContextBlock(elements=[MarkdownTextObject(text="*This week so far*, up to now.")]))
        await respond(blocks=[b.to_dict() for b in blocks], text=report_fallback(report), response_type="ephemeral")

    async def _config(
        ws: int, user: str, command: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond
    ) -> None:
        refusal = await admin_refusal(client, user)
        if refusal:
            await respond(text=refusal, response_type="ephemeral")
            return
        cfg = await deps.workspaces.config(ws)
        failed = "I couldn't open the settings in time. Run `/escalate config` again."
        summary = queues_summary(await deps.service.queues(ws))
        view = config_modal(cfg, summary, default_retention=deps.workspaces.settings.retention_days)
        await open_form(client, command["trigger_id"], view, respond, failed)
