"""Form submissions. Validate and store inside the ack window, so a bad field or
a database hiccup keeps the form open with a message instead of losing it."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from bot.logs import bind_log
from bot.slack import messages
from bot.slack.deps import SlackDeps
from bot.slack.ids import BadMetadata, CallbackId, EscalateMeta, MoveMeta, ResolveMeta
from bot.slack.ids import Field_ as F
from bot.slack.listeners.common import admin_refusal, guarded, may_move, save_budget
from bot.slack.modals import (
    broken_fields,
    field_errors,
    read_config_form,
    read_escalate_form,
    read_move_form,
    read_note,
    read_queue,
)
from bot.slack.text import user as mention
from handoff.domain import Changed, Closed, Done, Moved, NotAllowed, NotFound, NotHolder
from handoff.validation import FormErrors, clean, validate_draft, validate_note
from storage.db import StorageUnavailable

log = logging.getLogger(__name__)

SAVE_FAILED = (
    "I couldn't save this just now (my database didn't answer in time). Nothing is lost: press the button again."
)
FORM_BROKEN = "This form is out of date. Close it and run /escalate again; nothing was stored."


def register(app: AsyncApp, deps: SlackDeps) -> None:
    @app.view(CallbackId.ESCALATE)
    @guarded
    async def escalate_submitted(
        ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        user = body["user"]["id"]
        view_id = view.get("id")
        if not isinstance(view_id, str) or not view_id or len(view_id) > 64:
            # Without its id the form can't be stored exactly once: ask for a fresh one.
            await ack(response_action="errors", errors={F.SUMMARY: FORM_BROKEN})
            return
        fields: dict[str, Any] = read_escalate_form(view)
        chosen_queue = read_queue(view)
        source: dict[str, Any] | None = None
        try:
            meta = EscalateMeta.parse(view.get("private_metadata"))
            fields["origin_channel"] = meta.channel
            if meta.src_ts and meta.channel:
                # Escalated from a message: the worker copies (or links) its thread before the card goes out.
                source = {
                    "channel": meta.channel,
                    "ts": meta.src_ts,
                    "thread_ts": meta.src_thread or meta.src_ts,
                    "thread": "pending",
                }
        except BadMetadata:
            fields["origin_channel"] = None
        broken = broken_fields(view)
        try:
            draft = validate_draft(fields, requester_id=user, source=source)
        except FormErrors as exc:
            await ack(response_action="errors", errors={**field_errors(exc.errors), **broken})
            return
        if broken:
            await ack(response_action="errors", errors=broken)
            return
        try:
            # Slack gives up on us after 3 s; answer inside that, stored or not. The view id is the
            # same on every re-submission, so pressing again never stores it twice.
            async with asyncio.timeout(save_budget(context)):
                ws = await deps.workspace(context)
                queues = await deps.service.queues(ws)
                queue_id = chosen_queue if any(q.id == chosen_queue for q in queues) else None
                if len(queues) > 1 and queue_id is None:
                    await ack(response_action="errors", errors={F.QUEUE: "Choose the queue it goes to."})
                    return
                result = await deps.service.escalate(ws, user, draft, key=f"slack-view:{view_id}", queue_id=queue_id)
        except (StorageUnavailable, TimeoutError):
            deps.count("storage_unavailable")
            log.warning("escalation from %s not stored: database unavailable", user)
            await ack(response_action="errors", errors={F.SUMMARY: SAVE_FAILED})
            return
        bind_log(workspace=context.get("team_id"), handoff=result.handoff.ref)
        if result.created:
            deps.count("escalations", "slack")
        log.info(
            "%s %s by %s",
            result.handoff.ref,
            "stored" if result.created else "re-submitted (no-op)",
            user,
            extra={"handoff": result.handoff.ref},
        )
        await ack()

    @app.view(CallbackId.CONFIG)
    @guarded
    async def config_submitted(
        ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], context: AsyncBoltContext, client: AsyncWebClient
    ) -> None:
        user = body["user"]["id"]
        cfg, errors = read_config_form(view)
        errors = {**errors, **broken_fields(view)}
        if errors:
            await ack(response_action="errors", errors=errors)
            return
        refusal = await admin_refusal(client, user)
        if refusal:
            await ack(response_action="errors", errors={F.ESCALATION_CHANNEL: refusal})
            return
        try:
            async with asyncio.timeout(save_budget(context)):
                ws = await deps.workspace(context)
                await deps.workspaces.save(ws, cfg)
        except (StorageUnavailable, TimeoutError):
            deps.count("storage_unavailable")
            await ack(response_action="errors", errors={F.ESCALATION_CHANNEL: SAVE_FAILED})
            return
        log.info("workspace %s configured by %s: cards to %s", context.get("team_id"), user, cfg.escalation_channel)
        await ack()

    @app.view(CallbackId.RESOLVE)
    @guarded
    async def resolve_submitted(
        ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        user = body["user"]["id"]
        try:
            meta = ResolveMeta.parse(view.get("private_metadata"))
        except BadMetadata:
            await ack(response_action="errors", errors={F.NOTE: "This form is out of date; open Resolve again."})
            return
        try:
            note = validate_note(read_note(view))
        except FormErrors as exc:
            await ack(response_action="errors", errors={**exc.errors, **broken_fields(view)})
            return
        try:
            async with asyncio.timeout(save_budget(context)):
                ws = await deps.workspace(context)
                outcome = await deps.service.resolve(ws, meta.h, user, note)
        except (StorageUnavailable, TimeoutError):
            deps.count("storage_unavailable")
            await ack(response_action="errors", errors={F.NOTE: SAVE_FAILED})
            return
        if isinstance(outcome, Done):
            await ack()
            return
        if isinstance(outcome, NotHolder):
            h = outcome.handoff
            why = (
                f"Someone else holds {h.ref} now, so you can't resolve it."
                if h.claimed_by
                else f"{h.ref} was released and is open again; claim it first."
            )
        elif isinstance(outcome, Closed):
            why = f"{outcome.handoff.ref} is already {outcome.handoff.status.value}."
        else:
            assert isinstance(outcome, NotFound)
            why = messages.NOT_FOUND
        await ack(response_action="errors", errors={F.NOTE: why})

    @app.view(CallbackId.MOVE)
    @guarded
    async def move_submitted(
        ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], context: AsyncBoltContext, client: AsyncWebClient
    ) -> None:
        user = body["user"]["id"]
        try:
            meta = MoveMeta.parse(view.get("private_metadata"))
        except BadMetadata:
            await ack(response_action="errors", errors={F.QUEUE: "This form is out of date; click Move again."})
            return
        to_queue, note_text, tried_text = read_move_form(view)
        note, tried = clean(note_text), clean(tried_text)
        errors = broken_fields(view)
        if to_queue is None:
            errors.setdefault(F.QUEUE, "Choose the queue to move it to.")
        if not note:
            errors.setdefault(F.NOTE, "Say why, so the seniors there know where to start.")
        if errors:
            await ack(response_action="errors", errors=errors)
            return
        assert to_queue is not None
        try:
            async with asyncio.timeout(save_budget(context)):
                ws = await deps.workspace(context)
                h = await deps.service.get(ws, meta.h)
                allowed = h is not None and await may_move(deps, client, ws, h, user)
                outcome = await deps.service.move(
                    ws,
                    meta.h,
                    user,
                    to_queue_id=to_queue,
                    expected_version=meta.v,
                    note=note,
                    may_move=allowed,
                    tried=tried or None,
                )
        except (StorageUnavailable, TimeoutError):
            deps.count("storage_unavailable")
            await ack(response_action="errors", errors={F.QUEUE: SAVE_FAILED})
            return
        if isinstance(outcome, Moved):
            log.info(
                "%s moved from %s to %s by %s",
                outcome.handoff.ref,
                outcome.from_queue.name,
                outcome.to_queue.name,
                user,
            )
            await ack()
            return
        if isinstance(outcome, Changed):
            c = outcome.handoff
            now = (
                f"claimed by {mention(c.claimed_by)}"
                if c.status == "claimed"
                else "resolved"
                if c.status == "resolved"
                else "changed (released, or moved by someone else)"
            )
            why = f"{c.ref} was {now} while this form was open, so nothing was moved. Close it and look again."
        elif isinstance(outcome, NotAllowed):
            why = "It is in that queue already." if outcome.reason == "same_queue" else messages.MOVE_REFUSED
        elif isinstance(outcome, Closed):
            why = f"{outcome.handoff.ref} is already {outcome.handoff.status.value}."
        else:
            why = messages.NOT_FOUND
        await ack(response_action="errors", errors={F.QUEUE: why})
