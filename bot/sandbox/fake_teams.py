"""A fake of the Bot Framework connector service Teams bots talk to, on 127.0.0.1.

It is held to what the connector does: every call needs a bearer token the bot got from Entra
(`bot.sandbox.fake_login` issues and checks them; without one configured it behaves like Microsoft's
local emulator, which takes none); cards must be valid Adaptive Cards (a check the tests hand it,
from the official 1.5 schema); a message over Teams' 40 KB is refused (413 MessageSizeTooBig); an
unknown conversation, or a reply to or update of an activity it doesn't have, is 404; each
conversation is throttled as Teams documents for bots (429 with Retry-After). It answers the v3
conversation routes (send, reply, update, create), records every call as it arrives, keeps each
activity as it now is (updates replace it), and fails on demand, before or after taking effect.
`TeamsSimulator` (bot.sandbox.teams_simulator) posts activities to the bot the way Teams does.
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bot.sandbox.fake_login import FakeLogin
from bot.sandbox.faults import Fail, Script, reset_connection, stall
from bot.sandbox.watch import Watched, serve_on_loopback

BOT_ID = "28:escalation-bot"
BOT_NAME = "Escalation Bot"
# A tenant id as Entra writes them (a GUID): the simulated organisation's.
TENANT = "0f0e0d0c-aaaa-4bbb-8ccc-00000000acce"
CARD = "application/vnd.microsoft.card.adaptive"

MESSAGE_LIMIT = 40 * 1024  # bytes of the message as UTF-16, base64 images not counted
# Teams' per-bot, per-conversation limits: (messages, seconds).
THROTTLE = ((7, 1.0), (8, 2.0), (60, 30.0), (1800, 3600.0))

CardCheck = Callable[[dict[str, Any]], list[str]]


@dataclass
class ConnectorCall:
    method: str  # POST / PUT
    path: str
    conversation: str
    activity_id: str | None
    body: dict[str, Any]
    status: int  # 0 while it is being answered
    at: float  # when it arrived
    applied: bool = False


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
            if a.get("contentType") == CARD:
                return a.get("content")
        return None

    @property
    def text(self) -> str:
        return self.body.get("text") or ""


def message_size(body: dict[str, Any]) -> int:
    """A message's size as Teams counts it: the payload as UTF-16, images sent as base64 left out."""

    def strip(value: Any) -> Any:
        if isinstance(value, str) and value.startswith("data:image/"):
            return ""
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items()}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return len(json.dumps(strip(body), ensure_ascii=False).encode("utf-16-le"))


def connector_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """An error as the Bot Connector answers one: {"error": {"code", "message"}}."""
    return web.json_response({"error": {"code": code, "message": message}}, status=status, headers=headers)


def base_conversation(conversation: str) -> str:
    return conversation.split(";")[0]


class FakeTeamsConnector(Watched):
    def __init__(self, *, login: FakeLogin | None = None, card_check: CardCheck | None = None, throttle: bool = True):
        super().__init__()
        self.login = login
        self.card_check = card_check
        self.throttle = throttle
        self.calls: list[ConnectorCall] = []
        self.activities: list[Posted] = []
        self.conversations: set[str] = set()
        self.incoming: dict[str, str] = {}  # what people sent (activity id -> conversation): replies go there
        self.refused: list[tuple[ConnectorCall, str]] = []  # and why
        # Who has the app installed (Entra ids): Teams opens a personal chat with no one else (403).
        self.installed_for: set[str] = set()
        # The organisation's people (Entra id -> display name): what "get member" finds in a team.
        self.roster: dict[str, str] = {}
        self._script = Script()
        self._sent_at: dict[str, deque[float]] = {}
        self._ids = itertools.count(1_700_000_000_000)
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> FakeTeamsConnector:
        app = web.Application()
        app.router.add_post("/v3/conversations", self._create)
        app.router.add_post("/v3/conversations/{conv}/activities", self._send)
        app.router.add_post("/v3/conversations/{conv}/activities/{aid}", self._reply)
        app.router.add_put("/v3/conversations/{conv}/activities/{aid}", self._update)
        app.router.add_get("/v3/conversations/{conv}/members/{member}", self._member)
        app.router.add_get("/v3/conversations/{conv}/pagedmembers", self._paged_members)
        self._runner, self.port = await serve_on_loopback(app, handler_cancellation=True)
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def service_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def know(self, conversation: str, activity_id: str | None = None) -> None:
        """A conversation exists (Teams made it: a channel, a personal chat with the bot), and, if
        given, someone's activity in it (the bot may reply to it)."""
        self.conversations.add(base_conversation(conversation))
        if activity_id is not None:
            self.incoming[activity_id] = base_conversation(conversation)

    def fail_next(self, *failures: Fail, conversation: str | None = None) -> None:
        """Fail the next calls (only those to `conversation`, if given)."""
        self._script.queue(conversation or "*", *failures)

    # ---- reading ------------------------------------------------------------

    def in_conversation(self, conversation: str) -> list[Posted]:
        return [a for a in self.activities if a.conversation == conversation]

    def find(self, activity_id: str) -> Posted | None:
        return next((a for a in self.activities if a.id == activity_id), None)

    def cards_in(self, conversation: str) -> list[Posted]:
        return [a for a in self.in_conversation(conversation) if a.card is not None]

    # ---- the rules ------------------------------------------------------------

    def _problem(self, request: web.Request, conv: str, body: dict[str, Any]) -> tuple[int, str, str] | None:
        """(status, code, message) for a call the connector refuses, before it takes effect."""
        if self.login is not None:
            problem = self.login.connector_token_problem(request.headers.get("Authorization"))
            if problem is not None:
                return 401, "Unauthorized", problem
        if base_conversation(conv) not in self.conversations:
            return 404, "ConversationNotFound", "Conversation not found."
        if "id" in body and not isinstance(body["id"], str):
            # Microsoft's Agents Playground (0.2.28) answers `"id": null` with 400 "Invalid input";
            # the Agents SDK 1.9 sends exactly that for every proactive message (sendToConversation).
            return 400, "BadArgument", "Invalid input"
        if body.get("type") in ("message", None):
            for attachment in body.get("attachments") or []:
                if attachment.get("contentType") == CARD and self.card_check is not None:
                    problems = self.card_check(attachment.get("content") or {})
                    if problems:
                        return 400, "BadArgument", "; ".join(problems)[:500]
            if message_size(body) > MESSAGE_LIMIT:
                return 413, "MessageSizeTooBig", "Message size too big."
        return None

    def _throttled(self, conv: str) -> int:
        """0, or the Retry-After seconds for one more message in this conversation now."""
        if not self.throttle:
            return 0
        now = time.monotonic()
        sent = self._sent_at.setdefault(base_conversation(conv), deque())
        while sent and now - sent[0] > THROTTLE[-1][1]:
            sent.popleft()
        for count, seconds in THROTTLE:
            recent = [t for t in sent if now - t < seconds]
            if len(recent) >= count:
                return max(1, int(seconds - (now - recent[0])) + 1)
        sent.append(now)
        return 0

    # ---- routes -------------------------------------------------------------

    async def _handle(
        self, request: web.Request, conv: str, aid: str | None, act: Callable[[dict[str, Any]], web.Response]
    ) -> web.StreamResponse:
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return connector_error(400, "BadSyntax", "not an activity")
        call = ConnectorCall(request.method, request.path, conv, aid, body, 0, time.monotonic())
        self.calls.append(call)
        await self._notify()
        failure = self._script.next(conv, "*")
        if failure is not None and not failure.applied:
            await stall(failure.stall)
            if not failure.answers_normally:
                return await self._fail(request, call, failure)
        problem = self._problem(request, conv, body)
        if problem is None and request.method == "POST" and body.get("type") in ("message", None):
            wait = self._throttled(conv)
            if wait:
                problem = (429, "Throttled", f"Retry after {wait} s")
                call.status = 429
                self.refused.append((call, problem[2]))
                await self._notify()
                return connector_error(*problem, headers={"Retry-After": str(wait)})
        if problem is not None:
            call.status = problem[0]
            self.refused.append((call, f"{problem[1]}: {problem[2]}"))
            await self._notify()
            return connector_error(*problem)
        response = act(body)
        call.applied = response.status == 200
        if failure is not None and failure.applied:
            await self._notify()
            await stall(failure.stall)
            return await self._fail(request, call, failure)
        call.status = response.status
        await self._notify()
        return response

    async def _fail(self, request: web.Request, call: ConnectorCall, failure: Fail) -> web.StreamResponse:
        call.status = failure.status if failure.status != 200 else 500
        await self._notify()
        if failure.reset:
            return await reset_connection(request)
        headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after is not None else {}
        return web.json_response(
            {"error": {"code": failure.error or "ServiceError", "message": "fake failure"}},
            status=call.status,
            headers=headers,
        )

    def _post(self, conv: str, body: dict[str, Any], reply_to: str | None) -> web.Response:
        if body.get("type") not in ("message", None):
            return web.json_response({"id": str(next(self._ids))})
        new = Posted(conversation=conv, id=str(next(self._ids)), body=body, reply_to=reply_to)
        self.activities.append(new)
        return web.json_response({"id": new.id})

    def _known_activity(self, conv: str, aid: str) -> Posted | None:
        found = self.find(aid)
        return found if found is not None and base_conversation(found.conversation) == base_conversation(conv) else None

    def _known(self, conv: str, aid: str) -> bool:
        return self._known_activity(conv, aid) is not None or self.incoming.get(aid) == base_conversation(conv)

    async def _send(self, request: web.Request) -> web.StreamResponse:
        conv = request.match_info["conv"]
        thread = conv.partition(";messageid=")[2]

        def act(body: dict[str, Any]) -> web.Response:
            if thread and not self._known(conv, thread):
                return connector_error(404, "NotFound", "no such thread")
            return self._post(conv, body, None)

        return await self._handle(request, conv, None, act)

    async def _reply(self, request: web.Request) -> web.StreamResponse:
        conv, aid = request.match_info["conv"], request.match_info["aid"]

        def act(body: dict[str, Any]) -> web.Response:
            if not self._known(conv, aid):
                return connector_error(404, "NotFound", "no such activity")
            return self._post(conv, body, aid)

        return await self._handle(request, conv, aid, act)

    async def _update(self, request: web.Request) -> web.StreamResponse:
        conv, aid = request.match_info["conv"], request.match_info["aid"]

        def act(body: dict[str, Any]) -> web.Response:
            found = self._known_activity(conv, aid)
            if found is None:
                return connector_error(404, "NotFound", "no such activity")
            found.updates.append(found.body)
            found.body = body
            return web.json_response({"id": aid})

        return await self._handle(request, conv, aid, act)

    async def _member(self, request: web.Request) -> web.StreamResponse:
        """Get a member of a conversation: a person of the team, by Entra id or Teams id."""
        conv, member = request.match_info["conv"], request.match_info["member"].removeprefix("29:")
        call = ConnectorCall(request.method, request.path, conv, None, {}, 0, time.monotonic())
        self.calls.append(call)
        problem = self._problem(request, conv, {"type": "lookup"})
        if problem is None and member not in self.roster:
            problem = (404, "MemberNotFoundInConversation", "The member is not in the conversation.")
        if problem is not None:
            call.status = problem[0]
            await self._notify()
            return connector_error(*problem)
        call.status, call.applied = 200, True
        await self._notify()
        return web.json_response({"id": f"29:{member}", "name": self.roster[member], "aadObjectId": member})

    async def _paged_members(self, request: web.Request) -> web.StreamResponse:
        """The team's members a page at a time (pageSize at most 500, a continuationToken while
        more are left), as Teams serves them."""
        conv = request.match_info["conv"]
        call = ConnectorCall(request.method, request.path, conv, None, {}, 0, time.monotonic())
        self.calls.append(call)
        problem = self._problem(request, conv, {"type": "lookup"})
        size_text, token = request.query.get("pageSize", "200"), request.query.get("continuationToken", "0")
        if problem is None and not (size_text.isdigit() and 1 <= int(size_text) <= 500 and token.isdigit()):
            problem = (400, "BadArgument", "pageSize must be 1 to 500 and the continuation token one we gave")
        if problem is not None:
            call.status = problem[0]
            await self._notify()
            return connector_error(*problem)
        people, start = list(self.roster.items()), int(token)
        page = people[start : start + int(size_text)]
        call.status, call.applied = 200, True
        await self._notify()
        members = [{"id": f"29:{aad}", "name": name, "aadObjectId": aad} for aad, name in page]
        body: dict[str, Any] = {"members": members}
        if start + len(page) < len(people):
            body["continuationToken"] = str(start + len(page))
        return web.json_response(body)

    async def _create(self, request: web.Request) -> web.StreamResponse:
        conv = f"a:{uuid.uuid4().hex[:12]}"

        def act(body: dict[str, Any]) -> web.Response:
            members = body.get("members")
            ids = [str(m.get("id") or "") for m in members or [] if isinstance(m, dict)]
            if not ids or any(i.removeprefix("29:") not in self.installed_for for i in ids):
                # Teams: a bot can only start a chat with someone who has it installed.
                return connector_error(403, "Forbidden", "The bot is not installed for this user.")
            self.conversations.add(conv)
            return web.json_response({"id": conv, "activityId": str(next(self._ids))})

        self.conversations.add(conv)  # for the checks of the call that creates it
        try:
            return await self._handle(request, conv, None, act)
        finally:
            if not any(c.conversation == conv and c.applied for c in self.calls):
                self.conversations.discard(conv)
