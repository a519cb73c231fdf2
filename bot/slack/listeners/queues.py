"""`/escalate config queue NAME` and `/escalate config remove NAME` (workspace admins): a queue's
settings in a modal, and removing one, asking where its open escalations go."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.deps import SlackDeps
from bot.slack.ids import BadMetadata, CallbackId, QueueMeta
from bot.slack.ids import Field_ as F
from bot.slack.listeners.common import admin_refusal, guarded, open_form, save_budget
from bot.slack.listeners.views import SAVE_FAILED
from bot.slack.modals import broken_fields, read_queue
from bot.slack.queue_modals import queue_modal, read_queue_form, remove_modal
from storage.db import StorageUnavailable

log = logging.getLogger(__name__)

USAGE = "Use `/escalate config queue NAME` to add or change a queue, `/escalate config remove NAME` to remove one."


async def config_queue(
    deps: SlackDeps, ws: int, words: list[str], command: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond
) -> None:
    """The modal for `/escalate config queue NAME` or `/escalate config remove NAME` (already checked
    to be a workspace admin's)."""
    action, name = (words[0].lower() if words else ""), " ".join(words[1:]).strip()
    if action not in ("queue", "remove") or not name:
        await respond(text=USAGE, response_type="ephemeral")
        return
    queues = await deps.service.queues(ws)
    found = next((q for q in queues if q.answers_to(name)), None)
    failed = "I couldn't open the form in time. Run the command again."
    if action == "queue":
        if found is not None and found.is_default:
            await respond(
                text="The default queue's settings are the workspace's: `/escalate config`.", response_type="ephemeral"
            )
            return
        await open_form(client, command["trigger_id"], queue_modal(found, name[:80]), respond, failed)
        return
    if found is None:
        await respond(text=f"There is no queue called {name[:80]}. {USAGE}", response_type="ephemeral")
        return
    if found.is_default:
        await respond(
            text="The default queue can't be removed: it is where everything else goes.", response_type="ephemeral"
        )
        return
    open_count = len(await deps.service.open_in_queue(ws, found.id))
    others = [q for q in queues if q.id != found.id]
    await open_form(client, command["trigger_id"], remove_modal(found, others, open_count), respond, failed)


def register(app: AsyncApp, deps: SlackDeps) -> None:
    @app.view(CallbackId.QUEUE)
    @guarded
    async def queue_saved(
        ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], context: AsyncBoltContext, client: AsyncWebClient
    ) -> None:
        user = body["user"]["id"]
        try:
            meta = QueueMeta.parse(view.get("private_metadata"))
        except BadMetadata:
            await ack(
                response_action="errors", errors={F.QUEUE_NAME: "This form is out of date; run the command again."}
            )
            return
        queue, errors = read_queue_form(view, meta.q)
        errors = {**errors, **broken_fields(view)}
        if errors:
            await ack(response_action="errors", errors=errors)
            return
        refusal = await admin_refusal(client, user)
        if refusal:
            await ack(response_action="errors", errors={F.QUEUE_NAME: refusal})
            return
        try:
            async with asyncio.timeout(save_budget(context)):
                ws = await deps.workspace(context)
                if meta.q is None:
                    saved = await deps.service.add_queue(ws, queue) is not None
                else:
                    saved = await deps.service.edit_queue(ws, queue)
        except (StorageUnavailable, TimeoutError):
            deps.count("storage_unavailable")
            await ack(response_action="errors", errors={F.QUEUE_NAME: SAVE_FAILED})
            return
        if not saved:
            await ack(
                response_action="errors",
                errors={F.QUEUE_NAME: "There is a queue of that name already (or this one was removed)."},
            )
            return
        log.info("queue %s saved by %s: cards to %s", queue.name, user, queue.escalation_channel)
        await ack()

    @app.view(CallbackId.QUEUE_REMOVE)
    @guarded
    async def queue_removed(
        ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], context: AsyncBoltContext, client: AsyncWebClient
    ) -> None:
        user = body["user"]["id"]
        try:
            meta = QueueMeta.parse(view.get("private_metadata"))
        except BadMetadata:
            meta = QueueMeta()
        target = read_queue(view)
        if meta.q is None or target is None:
            await ack(response_action="errors", errors={F.QUEUE: "This form is out of date; run the command again."})
            return
        refusal = await admin_refusal(client, user)
        if refusal:
            await ack(response_action="errors", errors={F.QUEUE: refusal})
            return
        try:
            async with asyncio.timeout(save_budget(context)):
                ws = await deps.workspace(context)
                moved = await deps.service.remove_queue(ws, meta.q, move_to=target, user=user)
        except (StorageUnavailable, TimeoutError):
            deps.count("storage_unavailable")
            await ack(response_action="errors", errors={F.QUEUE: SAVE_FAILED})
            return
        if moved is None:
            await ack(
                response_action="errors", errors={F.QUEUE: "That queue can't take them (or is gone); pick another."}
            )
            return
        log.info("queue %s removed by %s; %s escalation(s) moved to queue %s", meta.q, user, moved, target)
        await ack()
