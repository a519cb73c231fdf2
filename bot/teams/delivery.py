"""Turns outbox rows into Teams messages, proactively, through the connector service.

Cards are posted to the tenant's escalation channel (set with `setup`), updated in place
for everyone, and followed by replies in the card's reply chain; the requester hears in
their personal chat with the bot (or where they escalated from).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any

import aiohttp
from microsoft_agents.activity import Activity, ChannelAccount, ConversationParameters, ConversationReference
from microsoft_agents.hosting.core import ConnectorClientBase, TurnContext
from microsoft_agents.hosting.core.authorization import AuthenticationConstants, ClaimsIdentity

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
from bot.phrases import after_phrase
from bot.teams import cards
from bot.teams.app import TeamsBot
from bot.teams.queues import channel_key
from bot.teams.replies import team_names
from bot.teams.report_card import report_card
from bot.teams.text import plain
from handoff.domain import Handoff, Outbound
from handoff.report import WeeklyReport
from handoff.service import HandoffService, utcnow
from storage.outbox import WAITING, OutboxItem

log = logging.getLogger(__name__)

WAITING_FOR_CHANNEL = WAITING + "no Teams escalation channel yet: a lead mentions the bot with `setup` there"
ReportFor = Callable[[int, date, int | None], Awaitable[WeeklyReport]]


class NoChannel(Exception):
    pass


def new_post(activity: Activity | str, reference: ConversationReference) -> Activity:
    """A new message for sendToConversation, as the SDK's send_activity builds it, but without the
    fields it leaves None: the Agents SDK (1.9) posts `"id": null`, which Microsoft's Agents
    Playground refuses with 400 "Invalid input"."""
    out = (
        Activity(type="message", text=activity, input_hint="acceptingInput")
        if isinstance(activity, str)
        else activity.model_copy(deep=True)
    )
    out.apply_conversation_reference(reference)
    out.model_fields_set.difference_update([n for n in list(out.model_fields_set) if getattr(out, n) is None])
    return out


def call_outcome(exc: BaseException | None) -> str:
    """How a call to the connector ended, for the platform API metrics."""
    if exc is None:
        return "ok"
    if isinstance(exc, aiohttp.ClientResponseError):
        return "rate_limited" if exc.status == 429 else "server_error" if exc.status >= 500 else "error"
    return "failed"


class TeamsDelivery:
    def __init__(self, bot: TeamsBot, service: HandoffService, *, report_for: ReportFor | None = None):
        self.bot = bot
        self.service = service
        self.report_for = report_for

    async def _counted(self, method: str, call: Awaitable[Any]) -> Any:
        """`call`, told to the metrics as a connector call of `method` with its outcome."""
        try:
            value = await call
        except Exception as exc:
            self._tell(method, exc)
            raise
        self._tell(method, None)
        return value

    def _tell(self, method: str, exc: BaseException | None) -> None:
        if self.bot.metrics is not None:
            self.bot.metrics.api_call("teams", method, call_outcome(exc))

    # ---- sending through the SDK ---------------------------------------------

    async def _with_conversation(
        self,
        reference: dict[str, Any],
        work: Callable[[TurnContext], Awaitable[Any]],
        conversation_id: str | None = None,
    ) -> Any:
        ref = ConversationReference.model_validate(reference)
        if conversation_id is not None:
            ref.conversation.id = conversation_id
        continuation = ref.get_continuation_activity()
        # A proactive message is a new post in the conversation (sendToConversation), not a reply
        # to the made-up id the SDK gives the continuation: the connector has no such activity.
        continuation.id = None
        result: dict[str, Any] = {}

        async def callback(context: TurnContext) -> None:
            # The adapter hands a failing turn to its error handler and carries on; keep the
            # error so the outbox row is retried instead of counted as sent.
            try:
                result["value"] = await work(context)
            except BaseException as exc:
                result["error"] = exc

        if self.bot.anonymous:
            identity = ClaimsIdentity({}, authentication_type="Anonymous")
            await self.bot.adapter.continue_conversation_with_claims(identity, continuation, callback)
        else:
            await self.bot.adapter.continue_conversation(self.bot.app_id, continuation, callback)
        if "error" in result:
            raise result["error"]
        return result.get("value")

    async def _send(
        self, reference: dict[str, Any], activity: Activity | str, conversation_id: str | None = None
    ) -> str:
        async def work(context: TurnContext) -> str:
            out = new_post(activity, context.activity.get_conversation_reference())
            client = context.services.get(ConnectorClientBase)
            resp = await client.conversations.send_to_conversation(out.conversation.id, out)
            return resp.id if resp is not None and resp.id else ""

        return await self._counted("send_to_conversation", self._with_conversation(reference, work, conversation_id))

    async def _update(self, reference: dict[str, Any], activity: Activity, conversation_id: str) -> None:
        async def work(context: TurnContext) -> None:
            await context.update_activity(activity)

        await self._counted("update_activity", self._with_conversation(reference, work, conversation_id))

    # ---- outbox rows ----------------------------------------------------------

    async def deliver(self, item: OutboxItem) -> DeliveryResult:
        try:
            return await self._deliver(item)
        except NoChannel as exc:
            return GiveUp(str(exc))
        except aiohttp.ClientResponseError as exc:
            if exc.status == 429 or exc.status >= 500:
                after = None
                if exc.headers and exc.headers.get("Retry-After", "").isdigit():
                    after = float(exc.headers["Retry-After"])
                return Retry(error=f"connector HTTP {exc.status}", after=after)
            return GiveUp(f"connector HTTP {exc.status}: {exc.message[:200]}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            return Retry(error=f"{type(exc).__name__}: {exc}")

    async def _channel(self, ws: int, key: str) -> dict[str, Any]:
        ref = await self.service.conversation(ws, key)
        if ref is None:
            what = "leads" if key == "leads" else "escalation"
            raise NoChannel(
                f"no Teams {what} channel: mention the bot with `setup{' leads' if key == 'leads' else ''}` "
                "there, then `escalation-bot outbox retry`"
            )
        return ref

    async def _deliver(self, item: OutboxItem) -> DeliveryResult:
        if item.kind in (Outbound.REFRESH_HOME, Outbound.NOTICE):
            return Sent()  # Slack's App Home and Slack's notices; Teams has no counterpart
        if item.kind == Outbound.WEEKLY_REPORT:
            return await self._weekly_report(item)
        h = await handoff_of(self.service, item)
        if isinstance(h, GiveUp):
            return h
        kind = item.kind
        queue = await self.service.queue(h.workspace_id, h.queue_id)
        cards_key = channel_key("escalation", queue)
        if kind == Outbound.POST_CARD:
            if h.card_ref:
                return Sent()
            if await self.service.conversation(h.workspace_id, cards_key) is None:
                # Not lost: it waits, and goes out the moment a lead runs `setup` in a channel.
                age = (utcnow() - item.created_at).total_seconds()
                return Defer(min(300.0, max(5.0, age / 10)), WAITING_FOR_CHANNEL)
            channel = await self._channel(h.workspace_id, cards_key)
            h = await self.service.with_similar(h)  # kept with the card's place, so updates show the same
            await self._learn_names(h, channel)
            content = await self.bot.card_for(h)
            activity = Activity(type="message", summary=cards.card_summary(h), attachments=[cards.attachment(content)])
            activity_id = await self._send(channel, activity)
            if not activity_id:
                return Retry(error="the connector did not return the card's activity id")
            await asyncio.shield(
                self.service.card_posted(
                    h.workspace_id,
                    h.id,
                    channel=channel["conversation"]["id"],
                    ref=activity_id,
                    url=None,
                    similar=h.similar,
                    moves=h.moves,
                )
            )
            return Sent(rendered_version=h.version)
        if kind == Outbound.MOVED_CARD:
            # The card in the queue it left (its conversation is on the row), once the new one is up.
            where = item.payload
            old = await self.service.conversation(h.workspace_id, "escalation") or await self._channel(
                h.workspace_id, cards_key
            )
            names = await self.service.names(h.workspace_id, [str(where.get("actor") or "")])
            content = cards.moved_card(h, names, where)
            await self._update(
                old,
                Activity(type="message", id=str(where["ref"]), attachments=[cards.attachment(content)]),
                str(where["channel"]),
            )
            return Sent()
        if kind == Outbound.UPDATE_CARD:
            if not h.card_ref or not h.card_channel:
                return await waiting_for_card(self.service, item)
            channel = await self._channel(h.workspace_id, cards_key)
            content = await self.bot.card_for(h)
            await self._update(
                channel,
                Activity(
                    type="message",
                    id=h.card_ref,
                    summary=cards.card_summary(h),
                    attachments=[cards.attachment(content)],
                ),
                h.card_channel,
            )
            return Sent(rendered_version=h.version)
        if kind == Outbound.NOTIFY_REQUESTER:
            if item.payload.get("what") == "created" and not h.card_ref:
                return await waiting_for_card(self.service, item)
            if item.payload.get("what") != "moved":
                text = await self._requester_text(h, item.payload.get("what", ""), item.payload.get("actor", ""))
            else:
                note = " ".join(str(item.payload.get("note") or "").split())
                text = (
                    f"{await self._name(h, item.payload.get('actor', ''))} moved {h.ref} to the "
                    f"{plain(cards.cut(str(item.payload.get('to') or ''), 80))} queue"
                    + (f": {plain(cards.cut(note, 1000))}" if note else "")
                    + ". Its seniors there will pick it up."
                )
            ref = await self.service.conversation(h.workspace_id, f"user:{h.requester_id}")
            if ref is None and await self._open_chat(h, text):
                return Sent()  # a personal chat opened for them, and told there
            ref = ref or await self.service.conversation(h.workspace_id, f"origin:{h.id}")
            if ref is None:
                return GiveUp("no conversation with the requester to write to")
            await self._send(ref, text)
            return Sent()
        waited = after_phrase(h.created_at, utcnow())
        if kind in (Outbound.THREAD_NOTE, Outbound.REMIND_SENIORS):
            if kind == Outbound.REMIND_SENIORS and chase_is_over(h, item):
                return Sent()
            if not h.card_ref or not h.card_channel:
                return await waiting_for_card(self.service, item)
            channel = await self._channel(h.workspace_id, cards_key)
            if kind == Outbound.THREAD_NOTE:
                text = await self._note_text(h, item.payload.get("what", ""), item.payload.get("actor", ""))
            else:
                text = (
                    f"Seniors: {h.ref} ({h.severity.label}) has waited {waited} with nobody on it. "
                    "Can someone claim it?"
                )
            await self._send(channel, text, conversation_id=f"{h.card_channel};messageid={h.card_ref}")
            return Sent()
        if kind == Outbound.ALERT_LEADS:
            if chase_is_over(h, item):
                return Sent()
            own = channel_key("leads", queue)
            leads = await self.service.conversation(h.workspace_id, own) or await self._channel(h.workspace_id, "leads")
            await self._send(
                leads,
                f"⚠️ {h.ref} ({h.severity.label}) has been open {waited} and nobody has claimed it: "
                f"{plain(cards.cut(h.summary, 200))}",
            )
            return Sent()
        return GiveUp(f"unknown outbox kind {kind!r}")

    async def _learn_names(self, h: Handoff, channel: dict[str, Any]) -> None:
        """The names a card shows of people the bot has never met (a senior asked for by name, say):
        looked up as members of the team the channel belongs to, and kept. Who can't be found shows
        as "someone", as before."""
        wanted = [u for u in (h.requester_id, h.requested_senior_id) if u]
        known = await self.service.names(h.workspace_id, wanted)
        missing = [u for u in wanted if u not in known]
        if not missing:
            return

        async def look(context: TurnContext) -> dict[str, str]:
            return await team_names(context.services.get(ConnectorClientBase), channel["conversation"]["id"], missing)

        try:
            found = await self._with_conversation(channel, look)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.info("%s: could not look names up: %s", h.ref, exc)
            return
        for user, name in (found or {}).items():
            await self.service.remember_person(h.workspace_id, user, name)

    async def _open_chat(self, h: Handoff, text: str) -> bool:
        """A requester who never chatted with the bot (they escalated a message, say): open a personal
        chat with them (the connector's create-conversation, in the tenant) and tell them there, and
        remember it for what follows. False where the connector refuses (the app is not installed for
        that person): the caller falls back to the thread they escalated from, and the log says so."""
        origin = await self.service.conversation(h.workspace_id, f"origin:{h.id}")
        if origin is None or not origin.get("serviceUrl"):
            return False
        tenant = self.bot.settings.teams_tenant_id or ""
        parameters = ConversationParameters(
            is_group=False,
            bot=ChannelAccount(id=str((origin.get("bot") or {}).get("id") or self.bot.app_id)),
            members=[ChannelAccount(id=h.requester_id)],
            tenant_id=tenant,
            channel_data={"tenant": {"id": tenant}},
        )

        made: dict[str, Any] = {}

        async def opened(context: TurnContext) -> None:
            made.update(
                context.activity.get_conversation_reference().model_dump(mode="json", by_alias=True, exclude_none=True)
            )
            made.pop("activityId", None)

        try:
            await self._counted(
                "create_conversation",
                self.bot.adapter.create_conversation(
                    self.bot.app_id,
                    "msteams",
                    str(origin["serviceUrl"]),
                    AuthenticationConstants.AGENTS_SDK_SCOPE,
                    parameters,
                    opened,
                ),
            )
        except aiohttp.ClientResponseError as exc:
            if exc.status in (400, 403, 404):
                log.info(
                    "%s: could not open a chat with its requester (connector HTTP %s: the app is not installed "
                    "for them?); telling them in the thread they escalated from instead",
                    h.ref,
                    exc.status,
                )
                return False
            raise
        await self.service.remember_conversation(h.workspace_id, f"user:{h.requester_id}", made)
        await self._send(made, text)  # a new post in the chat, as every proactive message
        return True

    async def _name(self, h: Handoff, user: str) -> str:
        """A display name for a text message: people choose their own, so it is escaped like any typed text."""
        return plain((await self.service.names(h.workspace_id, [user])).get(user, "someone"))

    async def _requester_text(self, h: Handoff, what: str, actor: str) -> str:
        if what == "created":
            return (
                f"Your escalation {h.ref} is posted in the escalation channel. "
                "I'll tell you here when a senior picks it up."
            )
        name = await self._name(h, actor)
        if what == "claimed":
            return f"{name} picked up {h.ref}. They'll follow up in the card's replies."
        if what == "released":
            return f"{name} released {h.ref}; it is open again and waiting for a senior."
        if what == "resolved":
            return f"{h.ref} was resolved by {name}.\n\nResolution: {plain(cards.cut(h.resolution, 2500))}"
        if what == "cancelled":
            return f"You cancelled {h.ref}; nobody needs to pick it up now."
        raise ValueError(what)

    async def _note_text(self, h: Handoff, what: str, actor: str) -> str:
        name = await self._name(h, actor)
        if what == "claimed":
            return f"{name} claimed {h.ref}."
        if what == "released":
            return f"{name} released {h.ref}; it is open again."
        if what == "cancelled":
            return f"{name} cancelled {h.ref}; there is nothing more to do here."
        return f"{name} resolved {h.ref}: {plain(cards.cut(h.resolution, 2500))}"

    async def _weekly_report(self, item: OutboxItem) -> DeliveryResult:
        queue_id = item.payload.get("queue")  # one queue's report, to the leads channel set up for it
        key = "leads" if queue_id is None else f"leads:q{queue_id}"  # as channel_key: a removed queue's is gone
        leads = await self.service.conversation(item.workspace_id, key)
        if leads is None or self.report_for is None:
            log.warning("weekly report for %s not posted: no Teams leads channel", item.payload.get("week"))
            return Sent()
        report = await self.report_for(item.workspace_id, date.fromisoformat(item.payload["week"]), queue_id)
        from bot.charts import weekly_chart  # matplotlib: loaded once a week, not at every start-up

        png = await asyncio.to_thread(weekly_chart, report) if not report.empty else None
        people = [*report.this.claims_by, *report.this.resolves_by]
        content = report_card(report, await self.service.names(item.workspace_id, people), png)
        await self._send(
            leads,
            Activity(
                type="message", summary=f"Escalations, week {report.week}", attachments=[cards.attachment(content)]
            ),
        )
        return Sent()
