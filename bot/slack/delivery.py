"""Turns outbox rows into Slack Web API calls.

A card is rendered from the handoff's current row at send time, so several
updates in a row coalesce into one and an old render can never overwrite a
newer one.
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

from bot.delivery.base import Defer, DeliveryResult, GiveUp, Retry, Sent, handoff_of
from bot.logs import bind_log
from bot.slack import messages
from bot.slack.cards import card_payload
from bot.slack.client import make_client
from bot.slack.home import publish_home
from bot.slack.report_blocks import report_blocks, report_fallback
from bot.slack.text import cut_plain
from bot.slack.workspaces import NotInstalled, SlackWorkspaces
from handoff.domain import Handoff, Outbound, Status
from handoff.report import WeeklyReport
from handoff.service import HandoffService, utcnow
from storage.outbox import WAITING, OutboxItem

log = logging.getLogger(__name__)

WAITING_FOR_CARD = WAITING + "the card is not posted yet"
# Every message we post carries its outbox key, so a retry can tell whether it already went out.
METADATA_TYPE = "escalation_bot_message"


TRANSCRIPT_MESSAGES = 15  # what Slack allows a non-Marketplace app per conversations.replies call
TRANSCRIPT_TEXT_MAX = 500

NO_HISTORY_ACCESS = {"missing_scope", "not_in_channel", "channel_not_found", "not_allowed_token_type"}


def _metadata(item: OutboxItem) -> dict[str, Any]:
    return {"event_type": METADATA_TYPE, "event_payload": {"key": item.dedupe_key}}


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


ReportFor = Callable[[int, date], Awaitable[WeeklyReport]]


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
        self.client_for = workspaces.client_for
        self.report_for = report_for

    async def channel_for(self, workspace_id: int) -> str | None:
        return (await self.workspaces.config(workspace_id)).escalation_channel

    async def leads_channel_for(self, workspace_id: int) -> str | None:
        return (await self.workspaces.config(workspace_id)).leads_channel

    async def deliver(self, item: OutboxItem) -> DeliveryResult:
        try:
            return await self._deliver(item)
        except NotInstalled as exc:
            if item.kind in (Outbound.WEEKLY_REPORT, Outbound.REFRESH_HOME):
                log.info("%s not sent: %s", item.kind, exc)  # nobody there to read it: not an error
                return Sent()
            return GiveUp(f"{exc}: reinstall it, then `escalation-bot outbox retry`")
        except SlackApiError as exc:
            return self._from_api_error(exc)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return Retry(error=f"{type(exc).__name__}: {exc}")

    async def _deliver(self, item: OutboxItem) -> DeliveryResult:
        if item.kind == Outbound.WEEKLY_REPORT:
            return await self._weekly_report(await self.client_for(item.workspace_id), item)
        if item.kind == Outbound.REFRESH_HOME:
            return await self._refresh_homes(item)
        h = await handoff_of(self.service, item)
        if isinstance(h, GiveUp):
            return h
        bind_log(handoff=h.ref)
        client = await self.client_for(item.workspace_id)
        kind = item.kind
        if kind == Outbound.POST_CARD:
            return await self._post_card(client, h, item)
        if kind == Outbound.UPDATE_CARD:
            if not h.card_ref or not h.card_channel:
                return self._wait_for_card(item)
            await client.chat_update(channel=h.card_channel, ts=h.card_ref, **card_payload(h))
            return Sent(rendered_version=h.version)
        if kind == Outbound.NOTIFY_REQUESTER:
            if item.payload.get("what") == "created" and not h.card_ref:
                return self._wait_for_card(item)  # the confirmation carries the card's link
            text = messages.requester_message(h, item.payload["what"], item.payload.get("actor", ""))
            if item.attempts > 1:
                dm = (await client.conversations_open(users=h.requester_id))["channel"]["id"]
                if await self._find_sent(client, item, channel=dm):
                    return Sent()
            await client.chat_postMessage(
                channel=h.requester_id, text=text, unfurl_links=False, metadata=_metadata(item)
            )
            return Sent()
        if kind == Outbound.THREAD_NOTE:
            if not h.card_ref or not h.card_channel:
                return self._wait_for_card(item)
            if item.attempts > 1 and await self._find_sent(client, item, channel=h.card_channel, thread_ts=h.card_ref):
                return Sent()
            text = messages.thread_note(h, item.payload["what"], item.payload.get("actor", ""))
            await client.chat_postMessage(
                channel=h.card_channel, thread_ts=h.card_ref, text=text, metadata=_metadata(item)
            )
            return Sent()
        if kind == Outbound.REMIND_SENIORS:
            if h.status != Status.OPEN:
                return Sent()  # claimed (or closed) since it was queued: nobody needs chasing
            if not h.card_ref or not h.card_channel:
                return self._wait_for_card(item)
            if item.attempts > 1 and await self._find_sent(client, item, channel=h.card_channel, thread_ts=h.card_ref):
                return Sent()
            cfg = await self.workspaces.config(h.workspace_id)
            ping = messages.senior_ping(cfg.senior_user_ids, cfg.senior_usergroup)
            await client.chat_postMessage(
                channel=h.card_channel,
                thread_ts=h.card_ref,
                text=messages.reminder(h, ping, utcnow()),
                metadata=_metadata(item),
            )
            return Sent()
        if kind == Outbound.ALERT_LEADS:
            if h.status != Status.OPEN:
                return Sent()
            text = messages.lead_alert(h, utcnow())
            lead_ids = (await self.workspaces.config(h.workspace_id)).lead_user_ids
            if lead_ids:
                for lead in lead_ids:  # a DM each; on a retry, skip the leads already told
                    if item.attempts > 1:
                        dm = (await client.conversations_open(users=lead))["channel"]["id"]
                        if await self._find_sent(client, item, channel=dm):
                            continue
                    await client.chat_postMessage(channel=lead, text=text, metadata=_metadata(item))
                return Sent()
            channel = await self.leads_channel_for(h.workspace_id)
            if not channel:
                log.warning("%s: no SLACK_LEAD_USER_IDS or SLACK_LEADS_CHANNEL, so no lead was told", h.ref)
                return Sent()
            if item.attempts > 1 and await self._find_sent(client, item, channel=channel):
                return Sent()
            await client.chat_postMessage(channel=channel, text=text, metadata=_metadata(item))
            return Sent()
        return GiveUp(f"unknown outbox kind {kind!r}")

    async def _weekly_report(self, client: AsyncWebClient, item: OutboxItem) -> DeliveryResult:
        channel = await self.leads_channel_for(item.workspace_id)
        if not channel or self.report_for is None:
            log.warning("weekly report for %s not posted: no SLACK_LEADS_CHANNEL", item.payload.get("week"))
            return Sent()
        report = await self.report_for(item.workspace_id, date.fromisoformat(item.payload["week"]))
        posted = await self._find_sent(client, item, channel=channel) if item.attempts > 1 else None
        if posted is None:
            await client.chat_postMessage(
                channel=channel,
                blocks=[b.to_dict() for b in report_blocks(report)],
                text=report_fallback(report),
                metadata=_metadata(item),
            )
        from bot.charts import weekly_chart  # matplotlib: loaded once a week, not at every start-up

        png = await asyncio.to_thread(weekly_chart, report)
        await client.files_upload_v2(
            channel=channel,
            file=png,
            filename=f"escalations-{report.week}.png",
            title=f"Escalations per day and median time to claim, week {report.week}",
        )
        log.info("weekly report %s posted to %s", report.week, channel)
        return Sent()

    @staticmethod
    def _wait_for_card(item: OutboxItem) -> Defer:
        # Normally the lease holds these back until the card is up; this is for a card whose
        # post failed for good. Wait longer the longer it has been, until someone re-sends it.
        age = (utcnow() - item.created_at).total_seconds()
        return Defer(min(300.0, max(2.0, age / 10)), WAITING_FOR_CARD)

    async def _find_sent(
        self, client: AsyncWebClient, item: OutboxItem, *, channel: str, thread_ts: str | None = None
    ) -> str | None:
        """After an attempt whose outcome we never learned (the process died, or timed out
        mid-call), look for the message itself, by the key it carries in its metadata.

        If the lookup itself fails for a passing reason, the error propagates and the row is
        retried later: sending blind then could post it twice.
        """
        oldest = f"{item.created_at.timestamp() - 60:.6f}"
        cursor: str | None = None
        try:
            for _page in range(5):
                if thread_ts:
                    resp = await client.conversations_replies(
                        channel=channel,
                        ts=thread_ts,
                        oldest=oldest,
                        include_all_metadata=True,
                        limit=200,
                        cursor=cursor,
                    )
                else:
                    resp = await client.conversations_history(
                        channel=channel, oldest=oldest, include_all_metadata=True, limit=200, cursor=cursor
                    )
                for m in resp.get("messages") or []:
                    md = m.get("metadata") or {}
                    if md.get("event_type") == METADATA_TYPE and (md.get("event_payload") or {}).get("key") == (
                        item.dedupe_key
                    ):
                        log.info("%s was already delivered by an earlier attempt", item.dedupe_key)
                        return str(m["ts"])
                cursor = (resp.get("response_metadata") or {}).get("next_cursor") or None
                if not cursor:
                    break
        except SlackApiError as exc:
            if exc.response.get("error") not in NO_HISTORY_ACCESS:
                raise
            # Without history access we can never tell; sending again risks a double, never a loss.
            log.warning("could not check whether %s was sent: %s", item.dedupe_key, exc.response.get("error"))
        return None

    async def _refresh_homes(self, item: OutboxItem) -> DeliveryResult:
        """Everyone who looked at their Home tab lately sees the queue as it is now."""
        viewers = await self.service.home_viewers(item.workspace_id)
        if not viewers:
            return Sent()
        client = await self.client_for(item.workspace_id)
        queue = await self.service.open_queue(item.workspace_id)  # the same for everyone: read it once
        for user in viewers:
            try:
                await publish_home(client, self.service, item.workspace_id, user, queue=queue)
            except SlackApiError as exc:
                if exc.response.get("error") == "ratelimited" or getattr(exc.response, "status_code", 0) >= 500:
                    raise  # the whole refresh is tried again
                log.info("home of %s not refreshed: %s", user, exc.response.get("error"))
        return Sent()

    async def _capture_thread(self, client: AsyncWebClient, h: Handoff) -> Handoff:
        """An escalation made from a message: keep its permalink and, where Slack lets us read it, its
        thread (capped). Whatever the reason it cannot be read, the card goes out with the thread linked."""
        source = dict(h.source or {})
        if source.get("thread") != "pending":
            return h
        channel, ts = str(source.get("channel")), str(source.get("thread_ts") or source.get("ts"))
        # No retries here: conversations.replies can be limited to one call a minute, and the card
        # must not wait for it.
        quick = make_client(
            token=client.token, base_url=client.base_url, session=client.session, timeout=5, retries=False
        )
        if not source.get("permalink"):
            try:
                source["permalink"] = (
                    await quick.chat_getPermalink(channel=channel, message_ts=str(source.get("ts")))
                ).get("permalink")
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
                if (m.get("metadata") or {}).get("event_type") != METADATA_TYPE
            ]
            source["thread"] = "copied"
        except SlackApiError as exc:
            source["thread"], source["why"] = "linked", str(exc.response.get("error") or exc.response.status_code)
        except (aiohttp.ClientError, TimeoutError) as exc:
            source["thread"], source["why"] = "linked", type(exc).__name__
        if source["thread"] == "linked":
            log.info("%s: thread %s not copied (%s); the card links it", h.ref, ts, source.get("why"))
        return await self.service.record_thread(h, transcript, source)

    async def _post_card(self, client: AsyncWebClient, h: Handoff, item: OutboxItem) -> DeliveryResult:
        if h.card_ref:
            return Sent()  # already posted by an earlier attempt that recorded it
        channel = await self.channel_for(h.workspace_id)
        if not channel:
            return GiveUp("no escalation channel configured (SLACK_ESCALATION_CHANNEL or /escalate config)")
        h = await self._capture_thread(client, h)
        h = await self.service.with_similar(h)
        ts = await self._find_sent(client, item, channel=channel) if item.attempts > 1 else None
        posted_channel = channel
        if ts is None:
            resp = await client.chat_postMessage(
                channel=channel, **card_payload(h), unfurl_links=False, metadata=_metadata(item)
            )
            posted_channel, ts = resp["channel"], resp["ts"]
        # The card is up: recording where must not be cut short by the worker's deadline.
        await asyncio.shield(self._record_card(client, h, posted_channel, ts))
        return Sent(rendered_version=h.version)

    async def _record_card(self, client: AsyncWebClient, h: Handoff, channel: str, ts: str) -> None:
        url: str | None = None
        try:
            url = (await client.chat_getPermalink(channel=channel, message_ts=ts)).get("permalink")
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            # A missing link is not worth re-posting for; the DM names the channel anyway.
            log.warning("no permalink for %s: %s", h.ref, exc)
        await self.service.card_posted(h.workspace_id, h.id, channel=channel, ref=ts, url=url, similar=h.similar)
        log.info("%s card posted to %s", h.ref, channel)

    @staticmethod
    def _from_api_error(exc: SlackApiError) -> DeliveryResult:
        resp: Any = exc.response
        status = getattr(resp, "status_code", 0)
        error = resp.get("error") if hasattr(resp, "get") else None
        desc = f"HTTP {status} {error or ''}".strip()
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
