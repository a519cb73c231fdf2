"""Card buttons. Each acks first, then makes one service call and replies to the
clicker alone (ephemeral, through the click's response_url). Card changes go
through the outbox, never from here."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.inbound import dict_at, text_at
from bot.logs import bind_log
from bot.slack import messages
from bot.slack.deps import SlackDeps
from bot.slack.home import publish_home
from bot.slack.ids import ActionId, BadMetadata, CardAction
from bot.slack.listeners.common import after_ack, guarded, may_move
from bot.slack.modals import move_modal, resolve_modal
from handoff.domain import (
    AlreadyYours,
    ChangeOutcome,
    Closed,
    Conflict,
    Done,
    Handoff,
    MovedAway,
    NotAllowed,
    NotFound,
    NotHolder,
    Status,
    Won,
)
from storage.db import StorageUnavailable

log = logging.getLogger(__name__)


Tell = Callable[[str], Awaitable[None]]


def _teller(
    deps: SlackDeps, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient, context: AsyncBoltContext
) -> Tell:
    """How to answer the clicker alone: ephemerally under the card, or, for a click on the App
    Home tab (which has no response_url), on their Home tab itself, refreshed."""
    if body.get("response_url"):

        async def ephemeral(text: str) -> None:
            await respond(text=text, response_type="ephemeral", replace_original=False)

        return ephemeral

    if dict_at(body, "container").get("type") == "view":

        async def on_home(text: str) -> None:
            try:
                ws = await deps.workspace(context)
                await publish_home(
                    client, deps.service, ws, body["user"]["id"], notice=text, workspaces=deps.workspaces
                )
            except (StorageUnavailable, SlackApiError) as exc:
                log.warning("could not answer on the Home tab: %s", exc)

        return on_home

    async def nowhere(text: str) -> None:  # Slack always sends one of the two; be quiet, not broken
        log.warning("a click with no response_url and no view to answer on: %s", text)

    return nowhere


async def _clicked(ack: AsyncAck, action: dict[str, Any], tell: Tell, context: AsyncBoltContext) -> CardAction | None:
    """Ack at once, then read the button: a forged or broken value is refused, plainly."""
    await ack()
    await after_ack(context)
    try:
        return CardAction.parse(action.get("value"))
    except BadMetadata:
        await tell(messages.BROKEN_BUTTON)
        return None


async def _unavailable(deps: SlackDeps, tell: Tell) -> None:
    deps.count("storage_unavailable")
    await tell(messages.TRY_AGAIN)


def _change_reply(outcome: ChangeOutcome, done: str) -> str:
    if isinstance(outcome, Done):
        return done
    if isinstance(outcome, NotHolder):
        return messages.not_holder(outcome.handoff)
    if isinstance(outcome, Closed):
        return messages.closed(outcome.handoff)
    return messages.NOT_FOUND


async def _moved_away(deps: SlackDeps, ws: int, h: Handoff, value: CardAction) -> str | None:
    """For a click on the card of a queue the escalation has left: where it went."""
    if value.q is None or h.queue_id == value.q:
        return None
    return messages.moved_away(h, (await deps.service.queue(ws, h.queue_id)).name)


def _no_form(h: Handoff | None, moved: str | None) -> str | None:
    """Why a button that opens a form (Resolve, Move) opens none: the escalation is not found, has
    moved to another queue, or is closed."""
    if h is None:
        return messages.NOT_FOUND
    if moved is not None:
        return moved
    if h.status in (Status.RESOLVED, Status.CANCELLED):
        return messages.closed(h)
    return None


async def _open_form(
    client: AsyncWebClient, body: dict[str, Any], view: Any, tell: Tell, form: str, button: str
) -> None:
    """Open a button's form inside its trigger's 3 seconds, or tell the clicker to press again."""
    trigger = text_at(body, "trigger_id")
    if trigger is None:
        await tell(f"I couldn't open {form}. Please click {button} again.")
        return
    try:
        await client.views_open(trigger_id=trigger, view=view)
    except SlackApiError as exc:
        log.warning("views.open for %s failed: %s", form, exc.response.get("error"))
        await tell(f"I couldn't open {form} in time. Please click {button} again.")


def register(app: AsyncApp, deps: SlackDeps) -> None:
    service = deps.service

    @app.action(ActionId.CLAIM)
    @guarded
    async def claim_clicked(
        ack: AsyncAck,
        body: dict[str, Any],
        action: dict[str, Any],
        respond: AsyncRespond,
        context: AsyncBoltContext,
        client: AsyncWebClient,
    ) -> None:
        tell = _teller(deps, body, respond, client, context)
        value = await _clicked(ack, action, tell, context)
        if value is None:
            return
        user = body["user"]["id"]
        try:
            ws = await deps.workspace(context)
            seniors = await deps.seniors(ws, value.q)
            may = await seniors.may_claim(client, user)
            outcome = await service.claim(ws, value.h, user, may_claim=may, queue_id=value.q)
            moved = await _moved_away(deps, ws, outcome.handoff, value) if isinstance(outcome, MovedAway) else None
        except StorageUnavailable:
            await _unavailable(deps, tell)
            return
        if not isinstance(outcome, NotFound):
            bind_log(workspace=context.get("team_id"), handoff=outcome.handoff.ref)
        if isinstance(outcome, Won):
            log.info("%s claimed by %s", outcome.handoff.ref, user)
            if deps.metrics is not None:
                deps.metrics.won("slack", outcome.handoff)
            reply, label = messages.you_won(outcome.handoff), "won"
        elif isinstance(outcome, Conflict):
            reply, label = messages.conflict(outcome, service.clock()), "conflict"
        elif isinstance(outcome, AlreadyYours):
            reply, label = messages.ALREADY_YOURS, "already_yours"
        elif isinstance(outcome, NotAllowed):
            reply, label = (messages.OWN if outcome.reason == "own" else seniors.refusal()), "refused"
        elif isinstance(outcome, Closed):
            reply, label = messages.closed(outcome.handoff), "closed"
        elif isinstance(outcome, MovedAway):
            reply, label = moved or messages.NOT_FOUND, "moved"
        else:
            assert isinstance(outcome, NotFound)
            reply, label = messages.NOT_FOUND, "not_found"
        deps.count("claims", "slack", label)
        await tell(reply)

    @app.action(ActionId.RELEASE)
    @guarded
    async def release_clicked(
        ack: AsyncAck,
        body: dict[str, Any],
        action: dict[str, Any],
        respond: AsyncRespond,
        context: AsyncBoltContext,
        client: AsyncWebClient,
    ) -> None:
        tell = _teller(deps, body, respond, client, context)
        value = await _clicked(ack, action, tell, context)
        if value is None:
            return
        user = body["user"]["id"]
        try:
            ws = await deps.workspace(context)
            outcome = await service.release(ws, value.h, user)
            moved = await _moved_away(deps, ws, outcome.handoff, value) if isinstance(outcome, NotHolder) else None
        except StorageUnavailable:
            await _unavailable(deps, tell)
            return
        reply = _change_reply(outcome, messages.released(outcome.handoff) if isinstance(outcome, Done) else "")
        await tell(moved or reply)

    @app.action(ActionId.RESOLVE)
    @guarded
    async def resolve_clicked(
        ack: AsyncAck,
        body: dict[str, Any],
        action: dict[str, Any],
        respond: AsyncRespond,
        context: AsyncBoltContext,
        client: AsyncWebClient,
    ) -> None:
        tell = _teller(deps, body, respond, client, context)
        value = await _clicked(ack, action, tell, context)
        if value is None:
            return
        user = body["user"]["id"]
        try:
            ws = await deps.workspace(context)
            h: Handoff | None = await service.get(ws, value.h)
            moved = await _moved_away(deps, ws, h, value) if h is not None else None
        except StorageUnavailable:
            await _unavailable(deps, tell)
            return
        # Only a courtesy check, so the holder-less don't fill in a form for nothing;
        # the resolve itself is a compare-and-set when the form is submitted.
        why_not = _no_form(h, moved) or (messages.not_holder(h) if h and h.claimed_by != user else None)
        if why_not is not None or h is None:
            await tell(why_not or messages.NOT_FOUND)
            return
        view = resolve_modal(h, channel=text_at(body, "channel", "id"))
        await _open_form(client, body, view, tell, "the resolve form", "Resolve")

    @app.action(ActionId.MOVE)
    @guarded
    async def move_clicked(
        ack: AsyncAck,
        body: dict[str, Any],
        action: dict[str, Any],
        respond: AsyncRespond,
        context: AsyncBoltContext,
        client: AsyncWebClient,
    ) -> None:
        tell = _teller(deps, body, respond, client, context)
        value = await _clicked(ack, action, tell, context)
        if value is None:
            return
        user = body["user"]["id"]
        try:
            ws = await deps.workspace(context)
            h: Handoff | None = await service.get(ws, value.h)
            moved = await _moved_away(deps, ws, h, value) if h is not None else None
            allowed = h is not None and await may_move(deps, client, ws, h, user)
            queues = await service.queues(ws)
        except StorageUnavailable:
            await _unavailable(deps, tell)
            return
        # A courtesy check before the form; the move itself is a compare-and-set on submission.
        why_not = _no_form(h, moved) or (None if allowed else messages.MOVE_REFUSED)
        if why_not is not None or h is None:
            await tell(why_not or messages.NOT_FOUND)
            return
        view = move_modal(h, queues, holder=h.claimed_by == user)
        await _open_form(client, body, view, tell, "the move form", "it")
