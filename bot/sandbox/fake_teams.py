"""A fake of the Bot Framework connector service Teams bots talk to, on 127.0.0.1.

It answers the v3 conversation routes (send, reply, update, create), records every call,
keeps each activity as it now is (updates replace it), and fails on demand. Also a
`TeamsSimulator` that posts activities to the bot's `/api/messages` the way Teams does.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from bot.sandbox.fake_login import FakeLogin
from bot.sandbox.fake_slack import Fail
from bot.sandbox.watch import Watched, serve_on_loopback

BOT_ID = "28:escalation-bot"
# A tenant id as Entra writes them (a GUID): the simulated organisation's.
TENANT = "0f0e0d0c-aaaa-4bbb-8ccc-00000000acce"
BOT_NAME = "Escalation Bot"


@dataclass
class ConnectorCall:
    method: str  # POST / PUT
    path: str
    conversation: str
    activity_id: str | None
    body: dict[str, Any]
    status: int
    at: float


@dataclass
class Posted:
    """An activity as the conversation now shows it."""

    conversation: str
    id: str
    body: dict[str, Any]
    reply_to: str | None = None
    updates: list[dict[str, Any]] = field(default_factory=list)

    @property
    def card(self) -> dict[str, Any] | None:
        for a in self.body.get("attachments") or []:
            if a.get("contentType") == "application/vnd.microsoft.card.adaptive":
                return a.get("content")
        return None

    @property
    def text(self) -> str:
        return self.body.get("text") or ""


class FakeTeamsConnector(Watched):
    def __init__(self) -> None:
        self.calls: list[ConnectorCall] = []
        self.activities: list[Posted] = []
        self._failures: list[tuple[Fail, str | None]] = []
        self._ids = itertools.count(1_700_000_000_000)
        super().__init__()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.auth_headers: list[str | None] = []

    async def start(self) -> FakeTeamsConnector:
        app = web.Application()
        app.router.add_post("/v3/conversations", self._create)
        app.router.add_post("/v3/conversations/{conv}/activities", self._send)
        app.router.add_post("/v3/conversations/{conv}/activities/{aid}", self._reply)
        app.router.add_put("/v3/conversations/{conv}/activities/{aid}", self._update)
        self._runner, self.port = await serve_on_loopback(app, handler_cancellation=True)
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def service_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def fail_next(self, *failures: Fail, conversation: str | None = None) -> None:
        """Fail the next calls (only those to `conversation`, if given)."""
        self._failures.extend((f, conversation) for f in failures)

    # ---- reading ------------------------------------------------------------

    def in_conversation(self, conversation: str) -> list[Posted]:
        return [a for a in self.activities if a.conversation == conversation]

    def find(self, activity_id: str) -> Posted | None:
        return next((a for a in self.activities if a.id == activity_id), None)

    def cards_in(self, conversation: str) -> list[Posted]:
        return [a for a in self.in_conversation(conversation) if a.card is not None]

    # ---- routes -------------------------------------------------------------

    async def _maybe_fail(
        self, request: web.Request, conv: str, aid: str | None, body: dict[str, Any]
    ) -> web.Response | None:
        match = next((i for i, (_f, c) in enumerate(self._failures) if c is None or c == conv), None)
        if match is None:
            return None
        f, _conv = self._failures.pop(match)
        if f.stall:
            await asyncio.sleep(f.stall)
        if f.status == 200 and not f.error:
            return None
        self.calls.append(ConnectorCall(request.method, request.path, conv, aid, body, f.status, time.monotonic()))
        await self._notify()
        headers = {"Retry-After": str(f.retry_after)} if f.retry_after is not None else {}
        return web.json_response(
            {"error": {"code": f.error or "ServiceError", "message": "fake failure"}},
            status=f.status if f.status != 200 else 500,
            headers=headers,
        )

    async def _record(self, request: web.Request, conv: str, aid: str | None, body: dict[str, Any]) -> None:
        self.auth_headers.append(request.headers.get("Authorization"))
        self.calls.append(ConnectorCall(request.method, request.path, conv, aid, body, 200, time.monotonic()))

    async def _send(self, request: web.Request) -> web.Response:
        conv, body = request.match_info["conv"], await request.json()
        failed = await self._maybe_fail(request, conv, None, body)
        if failed is not None:
            return failed
        await self._record(request, conv, None, body)
        if body.get("type") not in ("message", None):
            await self._notify()
            return web.json_response({"id": str(next(self._ids))})
        new = Posted(conversation=conv, id=str(next(self._ids)), body=body)
        self.activities.append(new)
        await self._notify()
        return web.json_response({"id": new.id})

    async def _reply(self, request: web.Request) -> web.Response:
        conv, aid, body = request.match_info["conv"], request.match_info["aid"], await request.json()
        failed = await self._maybe_fail(request, conv, aid, body)
        if failed is not None:
            return failed
        await self._record(request, conv, aid, body)
        if body.get("type") not in ("message", None):
            await self._notify()
            return web.json_response({"id": str(next(self._ids))})
        new = Posted(conversation=conv, id=str(next(self._ids)), body=body, reply_to=aid)
        self.activities.append(new)
        await self._notify()
        return web.json_response({"id": new.id})

    async def _update(self, request: web.Request) -> web.Response:
        conv, aid, body = request.match_info["conv"], request.match_info["aid"], await request.json()
        failed = await self._maybe_fail(request, conv, aid, body)
        if failed is not None:
            return failed
        await self._record(request, conv, aid, body)
        found = self.find(aid)
        if found is None or found.conversation.split(";")[0] != conv.split(";")[0]:
            await self._notify()
            return web.json_response({"error": {"code": "NotFound", "message": "no such activity"}}, status=404)
        found.updates.append(found.body)
        found.body = body
        await self._notify()
        return web.json_response({"id": aid})

    async def _create(self, request: web.Request) -> web.Response:
        body = await request.json()
        await self._record(request, "", None, body)
        conv = f"a:{uuid.uuid4().hex[:12]}"
        await self._notify()
        return web.json_response({"id": conv, "activityId": str(next(self._ids))})


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

    async def execute(
        self,
        who: Person,
        card: Posted,
        verb: str,
        inputs: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
    ) -> InvokeAnswer:
        """Action.Execute on a card (Universal Actions): an invoke answered in the HTTP response."""
        if data is None:
            data = {}
            for action in _actions(card.card or {}):
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
