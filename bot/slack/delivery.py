"""Turns outbox rows into Slack Web API calls.

A card is rendered from the handoff's current row at send time, so several updates in a row
coalesce into one and an old render can never overwrite a newer one. Posts (cards, DMs, thread
notes, reminders, the weekly report and its chart) are never repeated blind: slack_sdk retries
them only after a 429 (refused, so not applied), and a row whose earlier attempt may have gone
through is first looked for (`bot.slack.sent`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.delivery.base import (
    Defer,
    DeliveryResult,
    GiveUp,
    Retry,
    Sent,
    chase_is_over,
    handoff_of,
    waiting_for_card,
)
from bot.logs import bind_log
from bot.slack import messages
from bot.slack.cards import card_payload, moved_card_payload
from bot.slack.home import publish_home
from bot.slack.report_blocks import report_blocks, report_fallback
from bot.slack.sent import CannotCheck, find_sent, metadata
from bot.slack.text import cut_plain
from bot.slack.workspaces import NotInstalled, SlackWorkspaces
from handoff.domain import Handoff, Outbound, Queue
from handoff.report import WeeklyReport
from handoff.service import HandoffService, utcnow
from storage.outbox import WAITING, OutboxItem

log = logging.getLogger(__name__)

WAITING_FOR_CHANNEL = WAITING + "no escalation channel yet: an admin picks one with /escalate config"
TRANSCRIPT_MESSAGES = 15  # what Slack allows a non-Marketplace app per conversations.replies call
TRANSCRIPT_TEXT_MAX = 500

# Errors a retry cannot fix: an operator has to (invite the bot, fix a setting), then re-send.
PERMANENT = {
    "channel_not_found",
    "not_in_channel",
    "is_archived",
    "invalid_auth",
    "not_authed",
    "account_inactive",
    "token_revoked",
    "token_expired",
    "missing_scope",
    "invalid_blocks",
    "invalid_blocks_format",
    "msg_too_long",
    "no_text",
    "cannot_dm_bot",
    "user_not_found",
    "restricted_action",
    "team_access_not_granted",
}

HINTS = {
    "not_in_channel": "invite the bot to the channel (/invite @escalation-bot), then `escalation-bot outbox retry`",
    "channel_not_found": "check SLACK_ESCALATION_CHANNEL is a channel id the bot can see",
    "invalid_auth": "check SLACK_BOT_TOKEN",
    "missing_scope": "reinstall the app from manifest.yml so it has every scope",
}


ReportFor = Callable[[int, date, int | None], Awaitable[WeeklyReport]]


class SlackDelivery:
    def __init__(
        self,
        service: HandoffService,
        workspaces: SlackWorkspaces,
        *,
        report_for: ReportFor | None = None,
    ):
        self.service = service
        self.workspaces = workspaces
        self.report_for = report_for

    async def deliver(self, item: OutboxItem) -> DeliveryResult:
        try:
            return await self._deliver(item)
        except NotInstalled as exc:
            if item.kind in (Outbound.WEEKLY_REPORT, Outbound.REFRESH_HOME, Outbound.NOTICE):
                log.info("%s not sent: %s", item.kind, exc)  # nobody there to read it: not an error
                return Sent()
            return GiveUp(f"{exc}: reinstall it, then `escalation-bot outbox retry`")
        except CannotCheck as exc:
            return Retry(error=f"not sent again yet: {exc}; will check again before sending", after=exc.after)
        except SlackApiError as exc:
            return self._from_api_error(exc)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return Retry(error=f"{type(exc).__name__}: {exc}")

    # ---- the three ways of calling Slack ------------------------------------------

    async def _updater(self, workspace_id: int) -> AsyncWebClient:
        """For calls that may safely happen twice (updates, reads): slack_sdk retries what it can."""
        return await self.workspaces.client_for(workspace_id, "all")

    async def _poster(self, workspace_id: int) -> AsyncWebClient:
        """For posts: retried by slack_sdk only after a 429, which Slack refused without posting."""
        return await self.workspaces.client_for(workspace_id, "rate_limits")

    async def _reader(self, workspace_id: int) -> AsyncWebClient:
        """For the check: reads repeat safely, but a long 429 (history, outside the Marketplace: a
        minute) comes back with its Retry-After, and the row waits it out instead of holding a send."""
        return await self.workspaces.client_for(workspace_id, "reads")

    async def _quick(self, workspace_id: int) -> AsyncWebClient:
        """For the thread copy on the way to the card: no retries at all; the card doesn't wait for it."""
        return await self.workspaces.client_for(workspace_id, "none")

    async def _post_once(
        self, item: OutboxItem, *, channel: str, thread_ts: str | None = None, look_in: str | None = None, **fields: Any
    ) -> str:
        """Post a message unless an earlier attempt already did (then its ts). `look_in`: where a
        message sent to `channel` shows up (a DM to a user id lands in the DM's own channel)."""
        ts, _ = await self._post_or_find(item, channel=channel, thread_ts=thread_ts, look_in=look_in, **fields)
        return ts

    async def _post_or_find(
        self, item: OutboxItem, *, channel: str, thread_ts: str | None = None, look_in: str | None = None, **fields: Any
    ) -> tuple[str, bool]:
        """The ts of the message, and whether it was found from an earlier attempt (so it shows what
        was rendered then) rather than posted now."""
        if item.tried_before:
            where = look_in or channel
            found = await find_sent(await self._reader(item.workspace_id), item, channel=where, thread_ts=thread_ts)
            if found is not None:
                return found, True
        poster = await self._poster(item.workspace_id)
        if thread_ts is not None:
            fields["thread_ts"] = thread_ts
        resp = await poster.chat_postMessage(channel=channel, metadata=metadata(item), **fields)
        return str(resp["ts"]), False

    async def _dm_channel(self, item: OutboxItem, user: str) -> str | None:
        """The DM's channel id, needed only to look for an earlier attempt (conversations.open)."""
        if not item.tried_before:
            return None
        opened = await (await self._reader(item.workspace_id)).conversations_open(users=user)
        return str(opened["channel"]["id"])

    # ---- rows -------------------------------------------------------------------------

    async def _queue_of(self, h: Handoff) -> tuple[Queue, str | None]:
        """The handoff's queue, and its name when the workspace has several (the card shows it)."""
        queues = await self.service.queues(h.workspace_id)
        queue = next((x for x in queues if x.id == h.queue_id), queues[0])
        return queue, (queue.name if len(queues) > 1 else None)

    async def _deliver(self, item: OutboxItem) -> DeliveryResult:
        if item.kind == Outbound.WEEKLY_REPORT:
            return await self._weekly_report(item)
        if item.kind == Outbound.REFRESH_HOME:
            return await self._refresh_homes(item)
        if item.kind == Outbound.NOTICE:
            return await self._notice(item)
        h = await handoff_of(self.service, item)
        if isinstance(h, GiveUp):
            return h
        bind_log(handoff=h.ref)
        kind = item.kind
        if kind == Outbound.POST_CARD:
            return await self._post_card(h, item)
        if kind == Outbound.REMIND_SENIORS or kind == Outbound.ALERT_LEADS:
            if chase_is_over(h, item):
                return Sent()  # claimed, closed or moved since it was queued: nobody needs chasing
        if kind == Outbound.ALERT_LEADS:
            return await self._alert_leads(h, item)
        if not h.card_ref or not h.card_channel:
            return await waiting_for_card(self.service, item)
        if kind == Outbound.UPDATE_CARD:
            _queue, name = await self._queue_of(h)
            await (await self._updater(h.workspace_id)).chat_update(
                channel=h.card_channel, ts=h.card_ref, **card_payload(h, name)
            )
            return Sent(rendered_version=h.version)
        if kind == Outbound.MOVED_CARD:
            # The card in the queue it left; sent once the new card is up, so it can link to it.
            where = item.payload
            await (await self._updater(h.workspace_id)).chat_update(
                channel=str(where["channel"]), ts=str(where["ref"]), **moved_card_payload(h, where)
            )
            return Sent()
        if kind == Outbound.NOTIFY_REQUESTER:
            said = item.payload
            if said["what"] == "moved":
                text = messages.moved_dm(h, said.get("actor", ""), str(said.get("to", "")), str(said.get("note", "")))
            else:
                text = messages.requester_message(h, said["what"], said.get("actor", ""))
            look_in = await self._dm_channel(item, h.requester_id)
            await self._post_once(item, channel=h.requester_id, look_in=look_in, text=text, unfurl_links=False)
            return Sent()
        if kind == Outbound.THREAD_NOTE:
            text = messages.thread_note(h, item.payload["what"], item.payload.get("actor", ""))
            await self._post_once(item, channel=h.card_channel, thread_ts=h.card_ref, text=text)
            return Sent()
        if kind == Outbound.REMIND_SENIORS:
            cfg = await self.workspaces.queue_config(h.workspace_id, (await self._queue_of(h))[0])
            ping = messages.senior_ping(cfg.senior_user_ids, cfg.senior_usergroup)
            text = messages.reminder(h, ping, utcnow())
            await self._post_once(item, channel=h.card_channel, thread_ts=h.card_ref, text=text)
            return Sent()
        return GiveUp(f"unknown outbox kind {kind!r}")

    async def _alert_leads(self, h: Handoff, item: OutboxItem) -> DeliveryResult:
        text = messages.lead_alert(h, utcnow())
        cfg = await self.workspaces.queue_config(h.workspace_id, (await self._queue_of(h))[0])
        for lead in cfg.lead_user_ids:  # a DM each; on a retry, the leads already told are skipped
            await self._post_once(item, channel=lead, look_in=await self._dm_channel(item, lead), text=text)
        if cfg.lead_user_ids:
            return Sent()
        if not cfg.leads_channel:
            log.warning("%s: no SLACK_LEAD_USER_IDS or SLACK_LEADS_CHANNEL, so no lead was told", h.ref)
            return Sent()
        await self._post_once(item, channel=cfg.leads_channel, text=text)
        return Sent()

    async def _notice(self, item: OutboxItem) -> DeliveryResult:
        text = messages.NOTICES.get(str(item.payload.get("notice")))
        channel = (await self.workspaces.config(item.workspace_id)).leads_channel
        if text is None or not channel:
            return Sent()
        await self._post_once(item, channel=channel, text=text)
        return Sent()

    async def _weekly_report(self, item: OutboxItem) -> DeliveryResult:
        queue_id = item.payload.get("queue")
        if queue_id is not None:  # one queue's report, to its own leads channel
            queue = next((q for q in await self.service.queues(item.workspace_id) if q.id == queue_id), None)
            channel = queue.leads_channel if queue is not None else None
        else:
            channel = (await self.workspaces.config(item.workspace_id)).leads_channel
        if not channel or self.report_for is None:
            log.warning("weekly report for %s not posted: no leads channel", item.payload.get("week"))
            return Sent(note="not posted: no leads channel is set")
        report = await self.report_for(item.workspace_id, date.fromisoformat(item.payload["week"]), queue_id)
        await self._post_once(
            item,
            channel=channel,
            blocks=[b.to_dict() for b in report_blocks(report)],
            text=report_fallback(report),
        )
        filename = f"escalations-{report.week}.png"
        if item.tried_before:
            reader = await self._reader(item.workspace_id)
            if await find_sent(reader, item, channel=channel, filename=filename) is not None:
                return Sent()
        from bot.charts import weekly_chart  # matplotlib: loaded once a week, not at every start-up

        png = await asyncio.to_thread(weekly_chart, report)
        try:
            await (await self._poster(item.workspace_id)).files_upload_v2(
                channel=channel,
                file=png,
                filename=filename,
                title=f"Escalations per day and median time to claim, week {report.week}",
            )
        except SlackApiError as exc:
            if exc.response.get("error") != "missing_scope":
                raise
            # Installed before the app asked for files:write: the report is out, its chart can't be.
            # The leads are told once, ever, how to get it; the row is done, with a note saying so.
            await self.service.queue_notice(item.workspace_id, "chart_scope")
            log.warning("weekly report %s posted to %s without its chart: no files:write scope", report.week, channel)
            return Sent(note="posted without its chart: the app lacks files:write (reinstall it to get the chart)")
        log.info("weekly report %s posted to %s", report.week, channel)
        return Sent()

    async def _refresh_homes(self, item: OutboxItem) -> DeliveryResult:
        """Everyone who looked at their Home tab lately sees the queue as it is now."""
        viewers = await self.service.home_viewers(item.workspace_id)
        if not viewers:
            return Sent()
        client = await self._updater(item.workspace_id)
        queue = await self.service.open_queue(item.workspace_id)  # the same for everyone: read it once
        for user in viewers:
            try:
                await publish_home(
                    client, self.service, item.workspace_id, user, queue=queue, workspaces=self.workspaces
                )
            except SlackApiError as exc:
                if exc.response.get("error") == "ratelimited" or getattr(exc.response, "status_code", 0) >= 500:
                    raise  # the whole refresh is tried again
                log.info("home of %s not refreshed: %s", user, exc.response.get("error"))
        return Sent()

    async def _capture_thread(self, h: Handoff) -> Handoff:
        """An escalation made from a message: keep its permalink and, where Slack lets us read it, its
        thread (capped). Whatever the reason it cannot be read, the card goes out with the thread linked."""
        source = dict(h.source or {})
        if source.get("thread") != "pending":
            return h
        channel, ts = str(source.get("channel")), str(source.get("thread_ts") or source.get("ts"))
        # No retries here: conversations.replies can be limited to one call a minute, and the card
        # must not wait for it.
        quick = await self._quick(h.workspace_id)
        if not source.get("permalink"):
            try:
                source["permalink"] = await self.workspaces.permalink(h.workspace_id, channel, str(source.get("ts")))
            except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
                log.info("%s: no permalink for the source message: %s", h.ref, exc)
        transcript: list[dict[str, Any]] | None = None
        try:
            resp = await quick.conversations_replies(channel=channel, ts=ts, limit=TRANSCRIPT_MESSAGES)
            found = sorted(resp.get("messages") or [], key=lambda m: float(m.get("ts") or 0))
            transcript = [
                {
                    "user": m.get("user") or m.get("bot_id"),
                    "ts": m.get("ts"),
                    "text": cut_plain(str(m.get("text") or ""), TRANSCRIPT_TEXT_MAX),
                }
                for m in found[:TRANSCRIPT_MESSAGES]
                if (m.get("metadata") or {}).get("event_type") != "escalation_bot_message"
            ]
            source["thread"] = "copied"
        except SlackApiError as exc:
            source["thread"], source["why"] = "linked", str(exc.response.get("error") or exc.response.status_code)
        except (aiohttp.ClientError, TimeoutError) as exc:
            source["thread"], source["why"] = "linked", type(exc).__name__
        if source["thread"] == "linked":
            log.info("%s: thread %s not copied (%s); the card links it", h.ref, ts, source.get("why"))
        return await self.service.record_thread(h, transcript, source)

    async def _post_card(self, h: Handoff, item: OutboxItem) -> DeliveryResult:
        if h.card_ref:
            return Sent()  # already posted by an earlier attempt that recorded it
        queue, name = await self._queue_of(h)
        channel = (await self.workspaces.queue_config(h.workspace_id, queue)).escalation_channel
        if not channel:
            # Not lost: it waits, and goes out the moment an admin picks a channel (/escalate config).
            age = (utcnow() - item.created_at).total_seconds()
            return Defer(min(300.0, max(5.0, age / 10)), WAITING_FOR_CHANNEL)
        h = await self._capture_thread(h)
        h = await self.service.with_similar(h)
        ts, found = await self._post_or_find(item, channel=channel, unfurl_links=False, **card_payload(h, name))
        # The card is up: recording where must not be cut short by the worker's deadline.
        await asyncio.shield(self._record_card(h, channel, ts))
        if found:
            # Posted by an attempt whose record was lost: it shows the escalation as it was then.
            # The changes since (a claim during the outage) queued card updates; they go out now.
            return Sent()
        return Sent(rendered_version=h.version)

    async def _record_card(self, h: Handoff, channel: str, ts: str) -> None:
        url: str | None = None
        try:
            url = await self.workspaces.permalink(h.workspace_id, channel, ts)
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            # A missing link is not worth re-posting for; the DM names the channel anyway.
            log.warning("no permalink for %s: %s", h.ref, exc)
        await self.service.card_posted(
            h.workspace_id, h.id, channel=channel, ref=ts, url=url, similar=h.similar, moves=h.moves
        )
        log.info("%s card posted to %s", h.ref, channel)

    @staticmethod
    def _from_api_error(exc: SlackApiError) -> DeliveryResult:
        resp: Any = exc.response
        status = getattr(resp, "status_code", 0)
        error = resp.get("error") if hasattr(resp, "get") else None
        desc = f"HTTP {status} {error or ''}".strip()
        if error == "missing_scope" and resp.get("needed"):
            desc += f" (needs {resp.get('needed')})"
        if status == 429 or error == "ratelimited":
            retry_after = None
            headers = getattr(resp, "headers", {}) or {}
            for k, v in headers.items():
                if k.lower() == "retry-after":
                    try:
                        retry_after = float(v[0] if isinstance(v, list) else v)
                    except (TypeError, ValueError):
                        retry_after = None
            return Retry(error=desc, after=retry_after)
        if error in PERMANENT:
            hint = HINTS.get(error)
            return GiveUp(f"{desc}: {hint}" if hint else desc)
        return Retry(error=desc)
