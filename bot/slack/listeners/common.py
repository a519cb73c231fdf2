"""Steps several listeners share: who may change settings, whether an escalation can start
here, and opening a form inside the trigger's 3 seconds."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from slack_bolt.async_app import AsyncBoltContext, AsyncRespond
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.models.views import View
from slack_sdk.web.async_client import AsyncWebClient

from bot import inflight
from bot.slack import messages
from bot.slack.deps import SlackDeps
from bot.slack.ids import FIRST_FIELD
from handoff.domain import Handoff
from storage.db import StorageUnavailable

log = logging.getLogger(__name__)

# Set by the HTTP endpoint on a request's context: an event that is set once Bolt has handed back the
# request's ack. A click's work after its ack waits for it (`after_ack`).
ACKED = "escalation_bot_acked"


async def after_ack(context: AsyncBoltContext) -> None:
    """Wait until this request's ack is on its way to Slack (at most a second; at once over Socket
    Mode, which has no such event). Bolt sees an ack only when it next polls for it (every 10 ms), so
    a click's work done straight after ack() runs ahead of the acks of every click that arrived with
    it: forty seniors pressing Claim at once saw their buttons stop spinning 1.5-1.8x later than a
    bare Bolt app's. Acks first, then the work."""
    acked = context.get(ACKED)
    if acked is None:
        return
    try:
        async with asyncio.timeout(1.0):
            await acked.wait()
    except TimeoutError:
        pass


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


async def may_move(deps: SlackDeps, client: AsyncWebClient, workspace_id: int, h: Handoff, user: str) -> bool:
    """A senior or a lead of the queue the escalation is in, or its holder, may move it on."""
    if h.claimed_by == user:
        return True
    queue = await deps.service.queue(workspace_id, h.queue_id)
    cfg = await deps.workspaces.queue_config(workspace_id, queue)
    if user in cfg.lead_user_ids:
        return True
    return await (await deps.workspaces.seniors(workspace_id, queue)).may_claim(client, user)


SAVE_BUDGET_SECONDS = 2.4  # of Slack's 3 s, counted from when the request arrived


def save_budget(context: AsyncBoltContext) -> float:
    """What is left of the storing budget: a busy process may have spent some of Slack's 3 seconds
    before the handler even started, and an answer after them is lost."""
    received = context.get("received_at")
    spent = time.perf_counter() - received if received is not None else 0.0
    # Nothing left: answer "press again" now, while Slack still listens, rather than try a little
    # longer and answer after the 3 s (Slack then shows the person an error of its own).
    return max(0.0, SAVE_BUDGET_SECONDS - spent)


async def escalation_refusal(deps: SlackDeps, context: AsyncBoltContext) -> str | None:
    """Why no escalation can start in this workspace now (the database is down or too slow to say
    in time, or no escalation channel is set), or None when one can. Asked before the ack, so it
    keeps to the budget: past Slack's 3 s the person would see an error of Slack's instead."""
    try:
        async with asyncio.timeout(save_budget(context)):
            ws = await deps.workspace(context)
            channel = (await deps.workspaces.config(ws)).escalation_channel
    except (StorageUnavailable, TimeoutError):
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


def failure_words(body: dict[str, Any], text: str) -> dict[str, Any]:
    """How to acknowledge a request we failed to handle, so the person sees `text` and loses
    nothing: a form keeps its contents with the message on its first field, a command answers
    with the message, anything else is simply acknowledged (and told through its response_url)."""
    if body.get("type") == "view_submission":
        callback = (body.get("view") or {}).get("callback_id")
        field = FIRST_FIELD.get(str(callback))
        if field is not None:
            return {"response_action": "errors", "errors": {field: text}}
        return {}
    if "command" in body:
        return {"response_type": "ephemeral", "text": text}
    return {}


def failure_answer(body: dict[str, Any], text: str) -> BoltResponse:
    words = failure_words(body, text)
    if not words:
        return BoltResponse(status=200, body="")
    return BoltResponse(status=200, body=words, headers={"content-type": ["application/json;charset=utf-8"]})


Listener = TypeVar("Listener", bound=Callable[..., Awaitable[Any]])


def guarded(listener: Listener) -> Listener:
    """Whatever a listener raises, the request is still answered in time and the person told.

    Bolt, left alone, answers 500 to a listener that fails before its ack, and lets one that fails
    just after it hang until Slack gives up (its ack poll can miss the ack the failure then clears).
    The listener must take `context` (it carries the ack and the response_url)."""

    @functools.wraps(listener)
    async def run(**kwargs: Any) -> Any:
        # Bolt runs a listener as a task it keeps no reference to; asyncio holds tasks only weakly, so
        # one waiting on a future nothing else holds could be collected mid-flight. Hold it until done,
        # in the replica's acknowledged work where there is one, so a replica told to stop finishes it.
        task = asyncio.current_task()
        context_in = kwargs.get("context")
        work = context_in.get(inflight.CONTEXT_KEY) if context_in is not None else None
        if task is not None:
            if isinstance(work, inflight.AcknowledgedWork):
                work.track(task)
            else:
                _IN_FLIGHT.add(task)
        try:
            return await listener(**kwargs)
        except Exception as exc:
            context: AsyncBoltContext | None = kwargs.get("context")
            log.error("Slack listener %s failed: %s", listener.__name__, exc, exc_info=exc)
            if context is None:
                raise
            text = messages.TRY_AGAIN if isinstance(exc, StorageUnavailable) else messages.SOMETHING_WRONG
            body = kwargs.get("body") or {}
            ack = context.ack
            if ack is not None and ack.response is None:
                await ack(**failure_words(body, text))
                if body.get("type") == "view_submission" or "command" in body:
                    return None  # the answer itself says it
            if context.response_url:
                try:
                    await context.respond(text=text, response_type="ephemeral", replace_original=False)
                except Exception as reply_error:  # best effort: the failure is logged above
                    log.warning("could not tell the user about the failure: %s", type(reply_error).__name__)
            return None
        finally:
            if task is not None:
                _IN_FLIGHT.discard(task)

    return run  # type: ignore[return-value]


_IN_FLIGHT: set[asyncio.Task[Any]] = set()
