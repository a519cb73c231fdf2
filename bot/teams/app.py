"""Microsoft Teams, on the Microsoft 365 Agents SDK: the same engine as Slack.

`setup` / `setup leads` in a channel make it the tenant's escalation or leads channel;
`escalate [summary]` answers with an Adaptive Card form; the card in the channel carries
Universal Actions (Action.Execute) for Claim, Release and Resolve, answered in the invoke
response: the clicker gets the refreshed card or a message, and everyone's copy is updated
through the outbox.
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from typing import Any

import aiohttp
from aiohttp import web
from microsoft_agents.activity import Activity, ActivityTypes, AdaptiveCardInvokeResponse
from microsoft_agents.hosting.aiohttp import CloudAdapter
from microsoft_agents.hosting.core import (
    AgentApplication,
    ConnectorClientBase,
    MemoryStorage,
    TurnContext,
    TurnState,
)
from microsoft_agents.hosting.core.authorization import ClaimsIdentity

from bot.config import Settings
from bot.logs import bind_log
from bot.metrics import Metrics
from bot.phrases import ago_phrase
from bot.teams import cards, commands, message_action
from bot.teams.auth import auth_configuration, connection_manager
from bot.teams.commands import HELP, StatsFor
from bot.teams.gate import Admitted, Refused, TeamsGate
from bot.teams.queues import TeamsQueues, channel_key
from bot.teams.replies import (
    BROKEN_BUTTON,
    TRY_AGAIN,
    Who,
    button_handoff,
    button_queue,
    card_response,
    message_response,
    reference_of,
    team_names,
    who,
)
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
    Won,
)
from handoff.queues import route
from handoff.service import HandoffService
from handoff.validation import FormErrors, validate_draft, validate_note
from storage.db import StorageUnavailable

log = logging.getLogger(__name__)

SOMETHING_WRONG = "Something went wrong on my side and nothing changed. Please try again."


class _Checked:
    """The request as the SDK reads it, after the gate: its scrubbed activity and verified identity."""

    def __init__(self, request: web.Request, admitted: Admitted):
        self._request, self._admitted = request, admitted

    @property
    def method(self) -> str:
        return self._request.method

    @property
    def headers(self) -> Any:
        return self._request.headers

    async def json(self) -> dict[str, Any]:
        return self._admitted.activity

    def get_claims_identity(self) -> ClaimsIdentity:
        return self._admitted.identity

    def get_path_param(self, name: str) -> str:
        return self._request.match_info[name]


class TeamsBot(TeamsQueues):
    def __init__(self, settings: Settings, service: HandoffService, metrics: Metrics | None = None):
        self.settings = settings
        self.service = service
        self.metrics = metrics
        self.app_id = settings.teams_app_id or ""
        self.anonymous = settings.teams_allow_anonymous
        self.auth_config = auth_configuration(settings)
        self.connections = connection_manager(self.auth_config)
        self.adapter = CloudAdapter(connection_manager=self.connections)
        self.adapter.on_turn_error = self._on_turn_error
        self.app: AgentApplication[TurnState] = AgentApplication[TurnState](
            storage=MemoryStorage(),
            connection_manager=self.connections,
            start_typing_timer=False,
            remove_recipient_mention=True,
        )
        self.seniors = list(dict.fromkeys(settings.teams_senior_user_ids))
        self.leads = list(dict.fromkeys(settings.teams_lead_user_ids))  # empty: anyone may ask for stats
        self.stats_for: StatsFor | None = None  # set by the server: the week so far (`stats`)
        self.access: Any = None  # set by the server: who may open the leads' page (`dashboard`)
        self.greeter = commands.Greeter()
        self._register()
        # The token check, on this route only: Slack's path keeps its own signature check.
        self.gate = TeamsGate(settings, self.auth_config)

    # ---- HTTP ---------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        admitted = await self.gate.admit(request)
        if isinstance(admitted, Refused):
            log.warning("Teams request refused (%s): %s", admitted.status, admitted.reason)
            if self.metrics is not None:
                reason = {401: "signature", 400: "malformed"}.get(admitted.status, "not_allowed")
                self.metrics.rejected.labels("teams", reason).inc()
            return admitted.response()
        try:
            answer = await self.adapter.process_request(_Checked(request, admitted), self.app)
        except Exception as exc:
            # The gate has checked the activity, so this is ours: most often the bot could not get its
            # Bot Connector token (a wrong TEAMS_APP_PASSWORD, Entra unreachable). Teams retries later.
            log.error("Teams activity not handled: %s: %s", type(exc).__name__, " ".join(str(exc).split())[:300])
            return web.json_response({"error": "not handled just now"}, status=503, headers={"Retry-After": "5"})
        if answer.status_code >= 500:
            # A turn that failed (already logged by the turn's error handler): the SDK answers an invoke
            # it could not complete with 501. The clicker is told instead; Teams gets no 5xx.
            log.warning("Teams activity failed with %s; answered with a message instead", answer.status_code)
            return web.json_response(message_response(SOMETHING_WRONG).model_dump(mode="json", by_alias=True))
        return CloudAdapter._to_aiohttp_response(answer)

    async def _on_turn_error(self, context: TurnContext, error: Exception) -> None:
        if isinstance(error, aiohttp.ClientResponseError):
            # Teams refused our answer (throttled, gone, too big): theirs to say, not a bug of ours.
            log.warning("Teams turn not answered: the connector said %s %s", error.status, error.message[:200])
            return
        log.error("Teams turn failed: %s", error, exc_info=error)
        text = TRY_AGAIN if isinstance(error, StorageUnavailable) else SOMETHING_WRONG
        try:
            if context.activity.type == ActivityTypes.message:
                await context.send_activity(text)
        except Exception:  # the reply is best effort; the error is already logged
            log.warning("could not tell the Teams user about the error")

    # ---- handlers -----------------------------------------------------------

    def _register(self) -> None:
        app = self.app

        @app.message(re.compile(r"^\s*setup(?:\s+(?:leads|queue)\b.*)?\s*$", re.IGNORECASE | re.DOTALL))
        async def setup(context: TurnContext, _state: TurnState) -> None:
            me = who(context)
            a = context.activity
            channel_data = a.channel_data if isinstance(a.channel_data, dict) else {}
            if (a.conversation.conversation_type or "") != "channel":
                await context.send_activity("Run **setup** by mentioning me in the channel that should get the cards.")
                return
            channel_id = (channel_data.get("channel") or {}).get("id") or a.conversation.id.split(";")[0]
            words = (a.text or "").split()[1:]
            leads = bool(words) and words[0].lower() == "leads"
            name = " ".join(words[1:] if words and words[0].lower() in ("leads", "queue") else words).strip()
            ws = await self.service.workspace_id("teams", me.tenant)
            queue = await self._queue_named(ws, name) if name else None
            if name and queue is None:
                await context.send_activity("A queue's name is 1 to 80 characters; nothing was set up.")
                return
            suffix = "" if queue is None or queue.is_default else f":q{queue.id}"
            await self.service.remember_conversation(
                ws, ("leads" if leads else "escalation") + suffix, reference_of(context, conversation_id=channel_id)
            )
            if queue is not None and not queue.is_default:
                field = "leads_channel" if leads else "escalation_channel"
                await self.service.edit_queue(ws, replace(queue, **{field: channel_id}))
            await self.service.remember_person(ws, me.user_id, me.name)
            if not leads:
                await self.service.channel_ready(ws)  # escalations made before setup go out now
                await self._learn_seniors(context, ws, channel_id)
            bind_log(workspace=me.tenant)
            which = f" for the {queue.name} queue" if queue is not None else ""
            log.info("Teams %s channel%s set up by %s", "leads" if leads else "escalation", which, me.user_id)
            await context.send_activity(
                f"This channel now gets the weekly report and alerts about unclaimed escalations{which}."
                if leads
                else f"This channel now gets the escalation cards{which}. "
                "Juniors can message me **escalate** to start one."
            )

        # The SDK matches a route against the whole text: `escalate <summary>` needs the `.*`.
        @app.message(re.compile(r"^\s*escalate\b.*$", re.IGNORECASE | re.DOTALL))
        async def escalate(context: TurnContext, _state: TurnState) -> None:
            me = who(context)
            ws = await self.service.workspace_id("teams", me.tenant)
            await self._remember_chat(context, ws, me)
            typed = re.sub(r"^\s*escalate\b", "", context.activity.text or "", flags=re.IGNORECASE).strip()
            queues = await self.service.queues(ws)
            queue_id: int | None = None
            if len(queues) > 1:
                queue, typed = route(queues, channel=None, text=typed)
                queue_id = queue.id
            summary = " ".join(typed.split())
            values = {
                "summary": cards.cut(summary, 150),
                "details": typed if len(summary) > 150 else "",
                "queue": queue_id,
            }
            form = cards.form_card(values, seniors=await self._senior_choices(ws), queues=queues)
            await context.send_activity(Activity(type="message", attachments=[cards.attachment(form)]))

        @app.adaptive_card.action_submit("escalate")
        async def submitted(context: TurnContext, _state: TurnState, data: Any) -> None:
            await self._submitted(context, data if isinstance(data, dict) else {})

        @app.adaptive_card.action_execute("claim")
        async def claim(context: TurnContext, _state: TurnState, data: Any) -> AdaptiveCardInvokeResponse:
            return await self._claim(context, data if isinstance(data, dict) else {})

        @app.adaptive_card.action_execute("release")
        async def release(context: TurnContext, _state: TurnState, data: Any) -> AdaptiveCardInvokeResponse:
            return await self._change(context, data if isinstance(data, dict) else {}, "release")

        @app.adaptive_card.action_execute("resolve")
        async def resolve(context: TurnContext, _state: TurnState, data: Any) -> AdaptiveCardInvokeResponse:
            return await self._change(context, data if isinstance(data, dict) else {}, "resolve")

        @app.invoke("composeExtension/fetchTask")
        async def message_action_dialog(context: TurnContext, _state: TurnState) -> None:
            await message_action.fetch_task(self, context)

        @app.invoke("composeExtension/submitAction")
        async def message_action_submitted(context: TurnContext, _state: TurnState) -> None:
            await message_action.submit_action(self, context)

        @app.adaptive_card.action_execute("refresh")
        async def refresh(context: TurnContext, _state: TurnState, data: Any) -> AdaptiveCardInvokeResponse:
            return await self._refresh(context, data if isinstance(data, dict) else {})

        @app.adaptive_card.action_execute("move")
        async def move(context: TurnContext, _state: TurnState, data: Any) -> AdaptiveCardInvokeResponse:
            return await self._move(context, data if isinstance(data, dict) else {})

        @app.conversation_update("membersAdded")
        async def members_added(context: TurnContext, _state: TurnState) -> None:
            await self.greeter.greet_if_added(context, [m.id for m in context.activity.members_added or []])

        @app.activity("installationUpdate")
        async def installed(context: TurnContext, _state: TurnState) -> None:
            if (context.activity.action or "add").startswith("add"):
                await self.greeter.greet_if_added(
                    context, [context.activity.recipient.id if context.activity.recipient else ""]
                )

        @app.message(re.compile(r"^\s*(queue|mine|help)\b.*$", re.IGNORECASE | re.DOTALL))
        async def own_work(context: TurnContext, _state: TurnState) -> None:
            await commands.own_work(self, context)

        @app.message(re.compile(r"^\s*cancel\b.*$", re.IGNORECASE | re.DOTALL))
        async def cancel(context: TurnContext, _state: TurnState) -> None:
            await commands.cancel(self, context)

        @app.message(re.compile(r"^\s*(dashboard|baseline)\b.*$", re.IGNORECASE | re.DOTALL))
        async def leads_page(context: TurnContext, _state: TurnState) -> None:
            await commands.leads_page(self, context)

        @app.message(re.compile(r"^\s*stats\b.*$", re.IGNORECASE | re.DOTALL))
        async def stats(context: TurnContext, _state: TurnState) -> None:
            await commands.stats(self, context)

        @app.activity(ActivityTypes.message)
        async def anything_else(context: TurnContext, _state: TurnState) -> None:
            await context.send_activity(HELP)

    async def _remember_chat(self, context: TurnContext, ws: int, me: Who) -> None:
        await self.service.remember_person(ws, me.user_id, me.name)
        if (context.activity.conversation.conversation_type or "personal") == "personal":
            await self.service.remember_conversation(ws, f"user:{me.user_id}", reference_of(context))

    async def _submitted(self, context: TurnContext, values: dict[str, Any]) -> None:
        me = who(context)
        form_id = context.activity.reply_to_id

        async def answer_on_form(content: dict[str, Any]) -> None:
            if form_id:
                try:
                    await context.update_activity(
                        Activity(type="message", id=form_id, attachments=[cards.attachment(content)])
                    )
                    return
                except aiohttp.ClientResponseError as exc:
                    if exc.status != 404:
                        raise
                    # The form's message is gone (deleted, or never ours): answer in a new message.
            await context.send_activity(Activity(type="message", attachments=[cards.attachment(content)]))

        fields = {k: values.get(k) for k in ("summary", "severity", "customer", "tried", "details", "requested_senior")}
        fields = {k: (v if isinstance(v, str) else None) for k, v in fields.items()}
        chosen = values.get("queue")
        try:
            ws = await self.service.workspace_id("teams", me.tenant)
            queues = await self.service.queues(ws)
            queue = next((q for q in queues if isinstance(chosen, str) and str(q.id) == chosen), None)
            try:
                draft = validate_draft(fields, requester_id=me.user_id)
                if len(queues) > 1 and queue is None:
                    raise FormErrors({"queue": "Choose the queue it goes to."})
            except FormErrors as exc:
                shown = {**fields, "queue": queue.id if queue else None}
                await answer_on_form(cards.form_card(shown, exc.errors, await self._senior_choices(ws), queues))
                return
            await self._remember_chat(context, ws, me)
            # One form, one escalation: pressing Escalate again on it stores nothing new.
            key = f"teams-activity:{form_id or context.activity.id}"
            result = await self.service.escalate(ws, me.user_id, draft, key=key, queue_id=queue.id if queue else None)
            await self.service.remember_conversation(ws, f"origin:{result.handoff.id}", reference_of(context))
        except StorageUnavailable:
            await answer_on_form(cards.form_card(fields, {"summary": TRY_AGAIN}))  # no database to read names from
            return
        h = result.handoff
        bind_log(workspace=me.tenant, handoff=h.ref)
        if result.created and self.metrics is not None:
            self.metrics.escalations.labels("teams").inc()
        channel = await self.service.conversation(ws, channel_key("escalation", queue))
        # The card goes out from the outbox a moment later; this chat hears when it is up.
        where = (
            "It is on its way to the escalation channel"
            if channel
            else "No escalation channel is set up yet, so it will be posted as soon as a lead runs setup there"
        )
        await answer_on_form(
            cards.done_card(
                f"Escalated as {h.ref}. {where}; I'll tell you here when it is posted and when a senior picks it up."
            )
        )

    async def _senior_choices(self, ws: int) -> list[tuple[str, str]]:
        """Who the form offers under "ask a specific senior": the configured seniors, by name where
        the bot has met them."""
        if not self.seniors:
            return []
        names = await self.service.names(ws, self.seniors)
        return [(uid, names.get(uid) or f"Senior {uid[:8]}") for uid in self.seniors]

    async def _learn_seniors(self, context: TurnContext, ws: int, channel_id: str) -> None:
        """At setup, the seniors' names from the team (they may never have met the bot), so the
        form's "ask a specific senior" names them. Where the connector can't tell, they show as
        "Senior <id>" until they message the bot or press a button."""
        known = await self.service.names(ws, self.seniors)
        missing = [u for u in self.seniors if u not in known]
        if not missing:
            return
        try:
            found = await team_names(context.services.get(ConnectorClientBase), channel_id, missing)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.info("Teams setup: could not read the team's members for the seniors' names: %s", exc)
            return
        for user, name in found.items():
            await self.service.remember_person(ws, user, name)

    async def _senior_choices_for(self, tenant: str) -> list[tuple[str, str]]:
        return await self._senior_choices(await self.service.workspace_id("teams", tenant))

    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.claims.labels("teams", outcome).inc()

    async def card_for(self, h: Handoff, viewer: str | None = None) -> dict[str, Any]:
        ids = [u for u in (h.requester_id, h.claimed_by, h.resolved_by, h.requested_senior_id, h.cancelled_by) if u]
        ids += [str(x.get("by")) for x in (h.handovers or [])[-1:] if x.get("by")]
        ids += [str(s.get("resolved_by")) for s in (h.similar or [])[:3] if s.get("resolved_by")]
        queues = await self.service.queues(h.workspace_id)
        return cards.escalation_card(h, await self.service.names(h.workspace_id, ids), queues, viewer=viewer)

    async def _claim(self, context: TurnContext, data: dict[str, Any]) -> AdaptiveCardInvokeResponse:
        me = who(context)
        handoff_id = button_handoff(data)
        if handoff_id is None:
            return message_response(BROKEN_BUTTON)
        try:
            ws = await self.service.workspace_id("teams", me.tenant)
            await self.service.remember_person(ws, me.user_id, me.name)
            queue_id = button_queue(data)
            queue = await self.service.queue(ws, queue_id) if queue_id is not None else None
            outcome = await self.service.claim(
                ws, handoff_id, me.user_id, may_claim=self._may_claim(me.user_id, queue), queue_id=queue_id
            )
            if isinstance(outcome, MovedAway):
                there = await self.service.queue(ws, outcome.handoff.queue_id)
                return message_response(
                    f"{outcome.handoff.ref} has moved to the {there.name} queue; use its card there."
                )
            if isinstance(outcome, Won):
                self._count("won")
                if self.metrics is not None:
                    self.metrics.won("teams", outcome.handoff)
                bind_log(workspace=me.tenant, handoff=outcome.handoff.ref)
                if data.get("from") == "queue":  # from the `queue` list: that list stays as it was
                    return message_response(
                        f"You claimed {outcome.handoff.ref}. Its card in the channel now shows you hold it."
                    )
                return card_response(await self.card_for(outcome.handoff, viewer=me.user_id))
            if isinstance(outcome, Conflict):
                self._count("conflict")
                winner = (await self.service.names(ws, [outcome.winner])).get(outcome.winner, "someone")
                return message_response(
                    f"Already claimed by {winner} {ago_phrase(outcome.claimed_at, self.service.clock())}."
                )
        except StorageUnavailable:
            return message_response(TRY_AGAIN)
        if isinstance(outcome, AlreadyYours):
            self._count("already_yours")
            return message_response("You already have this one.")
        if isinstance(outcome, NotAllowed):
            self._count("refused")
            if outcome.reason == "own":
                return message_response("You can't claim your own escalation; a senior will pick it up.")
            return message_response(
                "Only the seniors configured for this team (TEAMS_SENIOR_USER_IDS) can claim escalations."
            )
        if isinstance(outcome, Closed):
            self._count("closed")
            return message_response(f"{outcome.handoff.ref} is already {outcome.handoff.status.value}.")
        self._count("not_found")
        return message_response("I can't find that escalation in this organisation.")

    async def _refresh(self, context: TurnContext, data: dict[str, Any]) -> AdaptiveCardInvokeResponse:
        """A client showing a claimed card to someone in its `refresh.userIds` (the holder) asks for
        their own view of it: drawn from the current row, like every card."""
        me = who(context)
        handoff_id = button_handoff(data)
        if handoff_id is None:
            return message_response(BROKEN_BUTTON)
        try:
            ws = await self.service.workspace_id("teams", me.tenant)
            h = await self.service.get(ws, handoff_id)
            if h is None:
                return message_response("I can't find that escalation in this organisation.")
            return card_response(await self.card_for(h, viewer=me.user_id))
        except StorageUnavailable:
            return message_response(TRY_AGAIN)

    async def _change(self, context: TurnContext, data: dict[str, Any], verb: str) -> AdaptiveCardInvokeResponse:
        me = who(context)
        handoff_id = button_handoff(data)
        if handoff_id is None:
            return message_response(BROKEN_BUTTON)
        try:
            ws = await self.service.workspace_id("teams", me.tenant)
            if verb == "resolve":
                try:
                    note = validate_note(data.get("note") if isinstance(data.get("note"), str) else None)
                except FormErrors as exc:
                    return message_response(next(iter(exc.errors.values())))
                outcome: ChangeOutcome = await self.service.resolve(ws, handoff_id, me.user_id, note)
            else:
                outcome = await self.service.release(ws, handoff_id, me.user_id)
            if isinstance(outcome, Done):
                return card_response(await self.card_for(outcome.handoff, viewer=me.user_id))
            if isinstance(outcome, NotHolder):
                holder = outcome.handoff.claimed_by
                name = (await self.service.names(ws, [holder])).get(holder, "someone") if holder else None
                return message_response(
                    f"{name} holds {outcome.handoff.ref} now, so only they can do that. Nothing changed."
                    if name
                    else f"{outcome.handoff.ref} isn't claimed by you any more. Nothing changed."
                )
        except StorageUnavailable:
            return message_response(TRY_AGAIN)
        if isinstance(outcome, Closed):
            return message_response(f"{outcome.handoff.ref} is already {outcome.handoff.status.value}.")
        assert isinstance(outcome, NotFound)
        return message_response("I can't find that escalation in this organisation.")
