"""Sends activities to the bot the way Teams does: messages in a personal chat or after a mention
in a channel, form submissions (Action.Submit) and Universal Actions invokes (Action.Execute),
each carrying a Bot Framework token for its serviceUrl when a fake sign-in service is given."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import aiohttp

from bot.sandbox.fake_login import FakeLogin
from bot.sandbox.fake_teams import BOT_ID, BOT_NAME, TENANT, FakeTeamsConnector, Posted


@dataclass
class Person:
    aad: str
    name: str

    @property
    def teams_id(self) -> str:
        return f"29:{self.aad}"


@dataclass
class InvokeAnswer:
    status: int
    body: dict[str, Any] | None


class TeamsSimulator:
    """Posts activities to the bot the way Teams does: with a token from `login`, or `token`, or none."""

    def __init__(
        self,
        bot_url: str,
        connector: FakeTeamsConnector,
        *,
        tenant: str = TENANT,
        session: aiohttp.ClientSession | None = None,
        token: str | None = None,
        login: FakeLogin | None = None,
    ):
        self.url = bot_url.rstrip("/") + "/api/messages"
        self.connector = connector
        self.tenant = tenant
        self.session = session
        self.token = token
        self.login = login  # when given, every activity carries a fresh token for its serviceUrl
        self.team_id = "19:team-support@thread.tacv2"
        self._ids = itertools.count(1)

    def _base(self, who: Person, conversation: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": f"f:{next(self._ids)}",
            "timestamp": "2026-11-25T10:00:00.000Z",
            "serviceUrl": self.connector.service_url,
            "channelId": "msteams",
            "from": {"id": who.teams_id, "name": who.name, "aadObjectId": who.aad},
            "conversation": {**conversation, "tenantId": self.tenant},
            "recipient": {"id": BOT_ID, "name": BOT_NAME},
            "channelData": {"tenant": {"id": self.tenant}},
            "locale": "en-US",
        }

    def channel_conversation(self, channel: str, root: str | None = None) -> dict[str, Any]:
        cid = channel if root is None else f"{channel};messageid={root}"
        return {"id": cid, "isGroup": True, "conversationType": "channel"}

    @staticmethod
    def personal_conversation(who: Person) -> dict[str, Any]:
        return {"id": f"a:personal-{who.aad}", "conversationType": "personal"}

    async def post(self, activity: dict[str, Any], *, headers: dict[str, str] | None = None) -> InvokeAnswer:
        assert self.session is not None
        conversation = (activity.get("conversation") or {}).get("id") if isinstance(activity, dict) else None
        if isinstance(conversation, str):
            # Teams made the conversation before anyone wrote in it, and keeps what they write.
            self.connector.know(conversation, activity.get("id") if isinstance(activity.get("id"), str) else None)
        h = {"Content-Type": "application/json", **(headers or {})}
        if "Authorization" not in h:
            if self.login is not None:
                h["Authorization"] = f"Bearer {self.login.token(service_url=activity.get('serviceUrl'))}"
            elif self.token:
                h["Authorization"] = f"Bearer {self.token}"
        async with self.session.post(self.url, json=activity, headers=h) as resp:
            text = await resp.text()
            try:
                body = await resp.json(content_type=None) if text else None
            except ValueError:
                body = {"raw": text}
            return InvokeAnswer(resp.status, body)

    async def say_in_channel(self, who: Person, channel: str, text: str) -> InvokeAnswer:
        a = self._base(who, self.channel_conversation(channel))
        a.update(
            type="message",
            text=f"<at>{BOT_NAME}</at> {text}",
            entities=[
                {"type": "mention", "mentioned": {"id": BOT_ID, "name": BOT_NAME}, "text": f"<at>{BOT_NAME}</at>"}
            ],
        )
        a["channelData"].update(
            {
                "teamsChannelId": channel,
                "teamsTeamId": self.team_id,
                "channel": {"id": channel},
                "team": {"id": self.team_id},
            }
        )
        return await self.post(a)

    async def say_personal(self, who: Person, text: str) -> InvokeAnswer:
        a = self._base(who, self.personal_conversation(who))
        a.update(type="message", text=text)
        return await self.post(a)

    async def submit_form(self, who: Person, form: Posted, values: dict[str, Any]) -> InvokeAnswer:
        """Action.Submit on a form card: a message whose value holds the inputs and the action's data."""
        a = self._base(who, {"id": form.conversation, "conversationType": "personal"})
        data = {}
        for action in (form.card or {}).get("actions", []):
            if action.get("type") == "Action.Submit":
                data = dict(action.get("data") or {})
        a.update(type="message", replyToId=form.id, value={**data, **values})
        return await self.post(a)

    async def message_action(
        self, who: Person, channel: str, message: dict[str, Any], *, data: dict[str, Any] | None = None
    ) -> InvokeAnswer:
        """ "Escalate this message" on `message` (a `messagePayload`, as Teams sends it) in `channel`:
        without `data`, Teams asks for the dialog (fetchTask); with it, the dialog's form was submitted
        (submitAction, its inputs and its Action.Submit data)."""
        a = self._base(who, self.channel_conversation(channel))
        a.update(
            type="invoke",
            name="composeExtension/submitAction" if data is not None else "composeExtension/fetchTask",
            value={
                "commandId": "escalateMessage",
                "commandContext": "message",
                "messagePayload": message,
                **({"data": data} if data is not None else {}),
            },
        )
        return await self.post(a)

    async def execute(
        self,
        who: Person,
        card: Posted,
        verb: str,
        inputs: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
    ) -> InvokeAnswer:
        """Action.Execute on a card (Universal Actions): an invoke answered in the HTTP response. As
        Teams does, a card whose `refresh.userIds` names `who` is first refreshed for them, and the
        button is the one on their view."""
        if data is None:
            shown = card.card or {}
            refresh = shown.get("refresh") or {}
            if who.aad in (refresh.get("userIds") or []):
                answer = await self.execute(who, card, "refresh", data=dict(refresh["action"].get("data") or {}))
                if answer.body and answer.body.get("type") == "application/vnd.microsoft.card.adaptive":
                    shown = answer.body["value"]
            data = {}
            for action in _actions(shown):
                if action.get("verb") == verb:
                    data = dict(action.get("data") or {})
        channel = card.conversation.split(";")[0]
        a = self._base(who, self.channel_conversation(channel, card.id))
        a.update(
            type="invoke",
            name="adaptiveCard/action",
            replyToId=card.id,
            value={
                "action": {"type": "Action.Execute", "verb": verb, "data": {**data, **(inputs or {})}},
                "trigger": "manual",
            },
        )
        return await self.post(a)


def _actions(card: dict[str, Any]) -> list[dict[str, Any]]:
    out = list(card.get("actions") or [])
    for el in card.get("body") or []:
        if el.get("type") == "ActionSet":
            out += el.get("actions") or []
    return out
