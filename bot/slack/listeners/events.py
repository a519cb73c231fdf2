"""Events API: thread replies under a card (the claimer's first one is the first action), and
the App Home tab being opened (it is drawn afresh each time).

Slack re-delivers an event it thinks we missed (same event_id, X-Slack-Retry-Num), and one we
answered with anything but a 2xx.
A retry that was already handled, on any replica, is answered and skipped here; the
handling itself records the event id in the same transaction as its effect.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient

from bot.logs import bind_log
from bot.slack.deps import SlackDeps
from bot.slack.home import publish_home
from bot.slack.listeners.common import guarded
from storage.db import StorageUnavailable

log = logging.getLogger(__name__)


def register(app: AsyncApp, deps: SlackDeps) -> None:
    @app.middleware
    async def skip_handled_retries(req: AsyncBoltRequest, body: dict[str, Any], next: Any) -> BoltResponse | None:
        if body.get("type") == "event_callback" and req.headers.get("x-slack-retry-num") and body.get("event_id"):
            try:
                seen = await deps.service.seen_event("slack", body["event_id"])
            except StorageUnavailable:
                seen = False  # let the handler decide; it de-duplicates in its own transaction
            if seen:
                if deps.metrics is not None:
                    deps.metrics.duplicate_events.labels("slack").inc()
                deps.count("events", "slack", "duplicate")
                return BoltResponse(status=200, body="")
        return await next()

    @app.event("app_home_opened")
    @guarded
    async def home_opened(event: dict[str, Any], context: AsyncBoltContext, client: AsyncWebClient) -> None:
        if event.get("tab") != "home" or not event.get("user"):
            deps.count("events", "slack", "ignored")
            return
        user = event["user"]
        try:
            ws = await deps.workspace(context)
            await deps.service.home_opened(ws, user)
            await publish_home(client, deps.service, ws, user, workspaces=deps.workspaces)
        except StorageUnavailable as exc:
            log.warning("home of %s not shown, database unavailable: %s", user, exc)
            deps.count("events", "slack", "failed")
            return
        deps.count("events", "slack", "shown")

    @app.middleware
    async def thread_replies_before_the_ack(
        req: AsyncBoltRequest, body: dict[str, Any], next: Any
    ) -> BoltResponse | None:
        """A reply in a card's thread is stored before Slack hears back, so nothing is lost if the
        database is away: the answer is then 503 and Slack delivers the event again later (it does so
        for any answer but a 2xx). Bolt would otherwise acknowledge events before running listeners."""
        event = body.get("event")
        if body.get("type") != "event_callback" or not isinstance(event, dict) or event.get("type") != "message":
            return await next()
        outcome = "failed"
        try:
            outcome = await _thread_reply(event, body, req.context)
        except StorageUnavailable as exc:
            log.warning(
                "thread reply %s not stored yet, database unavailable (%s): Slack will send it again",
                body.get("event_id"),
                exc,
            )
            return BoltResponse(status=503, body="", headers={"Retry-After": "60"})
        finally:
            deps.count("events", "slack", outcome)
        return BoltResponse(status=200, body="")

    async def _thread_reply(event: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext) -> str:
        # Only a person's new reply in a thread: not bots (our own notes included), edits or deletions.
        if event.get("subtype") or event.get("bot_id") or not event.get("user"):
            return "ignored"
        thread_ts, ts, channel = event.get("thread_ts"), event.get("ts"), event.get("channel")
        if not thread_ts or thread_ts == ts or not channel:
            return "ignored"
        ws = await deps.workspace(context)
        outcome = await deps.service.first_reply(
            ws,
            channel=channel,
            thread_ref=thread_ts,
            user=event["user"],
            event_id=body.get("event_id"),
            source="slack",
        )
        if outcome == "duplicate" and deps.metrics is not None:
            deps.metrics.duplicate_events.labels("slack").inc()
        if outcome == "recorded":
            bind_log(workspace=context.get("team_id"))
            log.info("first action by %s in thread %s", event["user"], thread_ts)
        return outcome


def register_last(app: AsyncApp, deps: SlackDeps) -> None:
    """After every other listener: an event nobody handles is acknowledged, not answered 404 by Bolt
    (Slack would deliver it again, and turn a subscription off that keeps failing). A single-workspace
    app gets app_uninstalled, for one; anything Slack adds to a subscription is another."""

    @app.event(re.compile(".+"))
    async def not_handled(event: dict[str, Any]) -> None:
        log.debug("event %s not handled", event.get("type"))
        deps.count("events", "slack", "ignored")
