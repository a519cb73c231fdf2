"""A fake Slack Web API on 127.0.0.1, for the demo, the tests and the benchmarks.

It answers the methods the bot calls the way Slack does (same shapes, same
error names), records every call, keeps the messages as a channel would show
them, receives `response_url` replies, and fails on demand: a queue of
scripted failures per method, or a random share of calls (chaos).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bot.sandbox.watch import Watched, serve_on_loopback


@dataclass
class Fail:
    """One scripted failure: an HTTP status (with Retry-After for 429), a Slack error, or a stall."""

    status: int = 200
    error: str | None = None
    retry_after: int | None = None
    stall: float = 0.0


@dataclass
class ApiCall:
    method: str
    args: dict[str, Any]
    status: int
    ok: bool
    at: float
    token: str | None = None


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]] | None
    thread_ts: str | None = None
    to_user: str | None = None  # set for DMs: who the message went to
    edits: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, Any] | None = None
    at: float = field(default_factory=time.monotonic)  # when it arrived (system-wide monotonic clock)
    user: str | None = None  # who wrote it, for a person's message (None: the bot)


@dataclass
class Reply:
    """A message sent to a click's or command's response_url (ephemeral unless said otherwise)."""

    user: str
    text: str
    response_type: str | None
    replace_original: bool | None
    blocks: list[dict[str, Any]] | None
    at: float


def _maybe_json(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def block_problems(blocks: Any) -> list[str]:
    """The Block Kit limits Slack enforces with `invalid_blocks` (the ones our messages could hit)."""
    problems: list[str] = []
    if blocks is None:
        return problems
    if not isinstance(blocks, list) or len(blocks) > 50:
        return ["blocks must be a list of at most 50"]
    for b in blocks:
        kind = b.get("type")
        text = (b.get("text") or {}).get("text", "") if isinstance(b.get("text"), dict) else ""
        if kind == "header" and len(text) > 150:
            problems.append("header text over 150")
        if kind == "section" and len(text) > 3000:
            problems.append("section text over 3000")
        for el in b.get("elements", []) or []:
            if kind == "context" and len(el.get("text", "")) > 2000:
                problems.append("context text over 2000")
            if el.get("type") == "button" and len(el.get("value", "")) > 2000:
                problems.append("button value over 2000")
        el = b.get("element") or {}
        if el.get("type") == "plain_text_input":
            limit = min(3000, el.get("max_length") or 3000)
            if len(el.get("initial_value") or "") > limit:
                problems.append(f"initial_value of {b.get('block_id')} over {limit}")
    return problems


class FakeSlack(Watched):
    def __init__(
        self,
        *,
        team_id: str = "T0FAKE",
        team_domain: str = "acme-support",
        bot_token: str | None = "xoxb-fake-token",
        app_token: str = "xapp-fake-token",
        bot_user_id: str = "UBOT",
        users: dict[str, str] | None = None,
        channels: dict[str, str] | None = None,
        usergroups: dict[str, list[str]] | None = None,
    ):
        self.team_id = team_id
        self.team_domain = team_domain
        self.bot_token = bot_token
        self.app_token = app_token
        self.sockets: list[web.WebSocketResponse] = []
        self.uploads: dict[str, dict[str, Any]] = {}  # file id -> {filename, length, data, ...}
        self.files: list[dict[str, Any]] = []  # files shared into channels
        self.socket_acks: dict[str, dict[str, Any]] = {}
        self.bot_user_id = bot_user_id
        self.users: dict[str, str] = dict(users or {})
        self.channels: dict[str, str] = dict(channels or {})
        self.usergroups: dict[str, list[str]] = dict(usergroups or {})
        self.calls: list[ApiCall] = []
        self.messages: list[Message] = []
        self.replies: list[Reply] = []
        self.views: list[dict[str, Any]] = []
        self._failures: dict[str, list[Fail]] = {}
        # More workspaces: bot token -> team id (installed through the OAuth flow), and the codes
        # Slack would hand the redirect for each (see `grant`); who is a workspace admin.
        self.installs: dict[str, str] = {}
        self.oauth_codes: dict[str, dict[str, Any]] = {}
        self.oauth_client: tuple[str, str] | None = None
        self.admins: set[str] = set()
        self._token: str | None = None
        self._chaos: tuple[float, tuple[str, ...], list[Fail], random.Random] | None = None
        self._last_ts = 0
        super().__init__()
        self._runner: web.AppRunner | None = None
        self.port: int = 0
        self.handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.postEphemeral": self._post_ephemeral,
            "chat.getPermalink": self._permalink,
            "views.open": self._views_open,
            "views.update": self._views_update,
            "views.publish": self._views_publish,
            "usergroups.users.list": self._usergroup_users,
            "conversations.open": self._conversations_open,
            "users.info": self._users_info,
            "conversations.history": self._history,
            "files.getUploadURLExternal": self._upload_url,
            "files.completeUploadExternal": self._complete_upload,
            "conversations.replies": self._replies,
            "oauth.v2.access": self._oauth_access,
        }

    # ---- lifecycle --------------------------------------------------------

    async def start(self, port: int = 0) -> FakeSlack:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/respond/{user}/{key}", self._respond)
        app.router.add_get("/socket-mode", self._socket)
        app.router.add_post("/upload/{file_id}", self._upload)
        # For a fake running in another process: read what happened, script failures.
        app.router.add_get("/_fake/state", self._state)
        app.router.add_post("/_fake/chaos", self._set_chaos)
        app.router.add_post("/_fake/calm", self._set_calm)
        # A client that hangs up mid-request gets nothing done, as if the request never arrived.
        self._runner, self.port = await serve_on_loopback(app, port, handler_cancellation=True)
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def response_url(self, user: str) -> str:
        return f"http://127.0.0.1:{self.port}/respond/{user}/{uuid.uuid4().hex}"

    # ---- failure on demand ------------------------------------------------

    def fail_next(self, method: str, *failures: Fail) -> None:
        self._failures.setdefault(method, []).extend(failures)

    def chaos(self, rate: float, methods: tuple[str, ...], failures: list[Fail], seed: int = 7) -> None:
        """Fail `rate` of calls to `methods`, each time with one of `failures` at random."""
        self._chaos = (rate, methods, failures, random.Random(seed))

    def calm(self) -> None:
        self._failures.clear()
        self._chaos = None

    def _next_failure(self, method: str) -> Fail | None:
        queue = self._failures.get(method)
        if queue:
            return queue.pop(0)
        if self._chaos is not None:
            rate, methods, failures, rng = self._chaos
            if method in methods and rng.random() < rate:
                return rng.choice(failures)
        return None

    # ---- reading what happened ---------------------------------------------

    def calls_to(self, method: str, *, ok: bool | None = True) -> list[ApiCall]:
        return [c for c in self.calls if c.method == method and (ok is None or c.ok == ok)]

    def channel_messages(self, channel: str, *, top_level: bool = True) -> list[Message]:
        return [
            m
            for m in self.messages
            if m.channel == channel and (not top_level or m.thread_ts is None) and not m.to_user
        ]

    def dms_to(self, user: str) -> list[Message]:
        return [m for m in self.messages if m.to_user == user]

    def thread(self, channel: str, ts: str) -> list[Message]:
        return [m for m in self.messages if m.channel == channel and m.thread_ts == ts]

    def replies_to(self, user: str) -> list[Reply]:
        return [r for r in self.replies if r.user == user]

    def views_for(self, user: str) -> list[dict[str, Any]]:
        return [v for v in self.views if v.get("_user") == user]

    def find(self, channel: str, ts: str) -> Message | None:
        for m in self.messages:
            if m.channel == channel and m.ts == ts:
                return m
        return None

    # ---- HTTP -------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args: dict[str, Any] = dict(request.query)
        if request.method == "POST":
            if request.content_type == "application/json":
                body = await request.json()
                args.update(body if isinstance(body, dict) else {})
            else:
                form = await request.post()
                args.update({k: _maybe_json(v) for k, v in form.items() if isinstance(v, str)})
        auth = request.headers.get("Authorization", "")
        basic = auth.removeprefix("Basic ").strip() if auth.startswith("Basic ") else None
        token = None if basic else (auth.removeprefix("Bearer ").strip() or args.pop("token", None))
        if basic:
            args["_basic"] = basic
        now = time.monotonic()

        failure = self._next_failure(method)
        if failure is not None and failure.stall:
            await asyncio.sleep(failure.stall)
            failure = None if failure.status == 200 and not failure.error else failure
        if failure is not None:
            self.calls.append(ApiCall(method, args, failure.status, False, now, token))
            await self._notify()
            headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after is not None else {}
            if failure.status == 200:
                return web.json_response({"ok": False, "error": failure.error or "fatal_error"})
            error = failure.error or ("ratelimited" if failure.status == 429 else "internal_error")
            return web.json_response({"ok": False, "error": error}, status=failure.status, headers=headers)

        if method == "apps.connections.open":
            ok = token == self.app_token
            self.calls.append(ApiCall(method, args, 200, ok, now, token))
            await self._notify()
            if not ok:
                return web.json_response({"ok": False, "error": "invalid_auth"})
            return web.json_response({"ok": True, "url": f"ws://127.0.0.1:{self.port}/socket-mode"})
        if method != "oauth.v2.access" and self.bot_token is not None and self.team_for(token) is None:
            self.calls.append(ApiCall(method, args, 200, False, now, token))
            await self._notify()
            return web.json_response({"ok": False, "error": "invalid_auth"})
        handler = self.handlers.get(method)
        if handler is None:
            result: dict[str, Any] = {"ok": False, "error": "unknown_method"}
        else:
            self._token = token
            result = handler(args)
        self.calls.append(ApiCall(method, args, 200, bool(result.get("ok")), now, token))
        await self._notify()
        return web.json_response(result)

    async def _respond(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.replies.append(
            Reply(
                user=request.match_info["user"],
                text=body.get("text", ""),
                response_type=body.get("response_type"),
                replace_original=body.get("replace_original"),
                blocks=body.get("blocks"),
                at=time.monotonic(),
            )
        )
        await self._notify()
        return web.Response(text="ok")

    async def _upload(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        if file_id not in self.uploads:
            return web.Response(status=404, text="unknown upload")
        self.uploads[file_id]["data"] = await request.read()
        return web.Response(text=f"OK - {len(self.uploads[file_id]['data'])}")

    def _upload_url(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("filename") or not str(args.get("length") or "").isdigit():
            return {"ok": False, "error": "invalid_arguments"}
        file_id = "F" + uuid.uuid4().hex[:10].upper()
        self.uploads[file_id] = {"filename": args["filename"], "length": int(args["length"]), "data": None}
        return {"ok": True, "upload_url": f"http://127.0.0.1:{self.port}/upload/{file_id}", "file_id": file_id}

    def _complete_upload(self, args: dict[str, Any]) -> dict[str, Any]:
        files = _maybe_json(args.get("files")) or []
        shared = []
        for f in files:
            up = self.uploads.get(f.get("id"))
            if up is None or up["data"] is None or len(up["data"]) != up["length"]:
                return {"ok": False, "error": "file_upload_incomplete"}
            entry = {
                "id": f["id"],
                "title": f.get("title"),
                "filename": up["filename"],
                "data": up["data"],
                "channel": args.get("channel_id"),
                "thread_ts": args.get("thread_ts"),
                "initial_comment": args.get("initial_comment"),
            }
            self.files.append(entry)
            shared.append({"id": f["id"], "title": f.get("title"), "name": up["filename"]})
        return {"ok": True, "files": shared}

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        """Socket Mode: say hello, then deliver envelopes and collect their acks."""
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_json({"type": "hello", "num_connections": 1, "debug_info": {"host": "fake"}})
        self.sockets.append(ws)
        await self._notify()
        try:
            async for msg in ws:
                if msg.type.name != "TEXT":
                    continue
                data = json.loads(msg.data)
                if "envelope_id" in data:
                    self.socket_acks[data["envelope_id"]] = data.get("payload") or {}
                    await self._notify()
        finally:
            self.sockets.remove(ws)
        return ws

    async def socket_send(self, kind: str, payload: dict[str, Any]) -> str:
        """Deliver an envelope (kind: slash_commands, interactive, events_api) to a connected app."""
        envelope_id = uuid.uuid4().hex
        await self.sockets[0].send_json(
            {"envelope_id": envelope_id, "type": kind, "payload": payload, "accepts_response_payload": True}
        )
        return envelope_id

    async def _state(self, request: web.Request) -> web.Response:
        def msg(m: Message) -> dict[str, Any]:
            return {
                "channel": m.channel,
                "ts": m.ts,
                "text": m.text,
                "blocks": m.blocks,
                "thread_ts": m.thread_ts,
                "to_user": m.to_user,
                "edits": len(m.edits),
                "at": m.at,
            }

        counts: dict[str, dict[str, int]] = {}
        for c in self.calls:
            entry = counts.setdefault(c.method, {"ok": 0, "failed": 0})
            entry["ok" if c.ok else "failed"] += 1
        since = int(request.query.get("since", 0))
        return web.json_response(
            {
                "messages": [msg(m) for m in self.messages[since:]],
                "replies": [{"user": r.user, "text": r.text, "response_type": r.response_type} for r in self.replies],
                "calls": counts,
            }
        )

    async def _set_chaos(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.chaos(
            float(body["rate"]),
            tuple(body["methods"]),
            [Fail(**f) for f in body["failures"]],
            seed=int(body.get("seed", 7)),
        )
        return web.json_response({"ok": True})

    async def _set_calm(self, request: web.Request) -> web.Response:
        self.calm()
        return web.json_response({"ok": True})

    # ---- methods ----------------------------------------------------------

    def _new_ts(self) -> str:
        # Like Slack's: the time of posting, unique within the workspace.
        micros = max(int(time.time() * 1_000_000), self._last_ts + 1)
        self._last_ts = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    # ---- more than one workspace ---------------------------------------------

    def team_for(self, token: str | None) -> str | None:
        if token is not None and token == self.bot_token:
            return self.team_id
        return self.installs.get(token or "")

    def grant(self, code: str, team_id: str, *, team_name: str = "", installer: str = "UINSTALLER") -> str:
        """What Slack does when a workspace approves the install: a code for the redirect; returns the token."""
        token = f"xoxb-{team_id.lower()}-{uuid.uuid4().hex[:12]}"
        self.oauth_codes[code] = {
            "team_id": team_id,
            "team_name": team_name or team_id,
            "bot_token": token,
            "installer": installer,
        }
        return token

    def revoke(self, team_id: str) -> None:
        """The workspace uninstalled the app: its tokens stop working."""
        for token, team in list(self.installs.items()):
            if team == team_id:
                del self.installs[token]

    def say(self, channel: str, user: str, text: str, *, thread_ts: str | None = None) -> Message:
        """A person writes in a channel (or a thread): something a message shortcut can point at."""
        msg = Message(channel=channel, ts=self._new_ts(), text=text, blocks=None, thread_ts=thread_ts, user=user)
        self.messages.append(msg)
        return msg

    def _oauth_access(self, args: dict[str, Any]) -> dict[str, Any]:
        import base64

        basic = args.get("_basic") or ""
        try:
            client_id, client_secret = base64.b64decode(basic).decode().split(":", 1)
        except ValueError:
            client_id, client_secret = str(args.get("client_id")), str(args.get("client_secret"))
        if self.oauth_client is not None and (client_id, client_secret) != self.oauth_client:
            return {"ok": False, "error": "invalid_client_id"}
        grant = self.oauth_codes.pop(str(args.get("code")), None)
        if grant is None:
            return {"ok": False, "error": "invalid_code"}
        self.installs[grant["bot_token"]] = grant["team_id"]
        return {
            "ok": True,
            "app_id": "A0ESCALATE",
            "authed_user": {"id": grant["installer"]},
            "scope": "chat:write,commands",
            "token_type": "bot",
            "access_token": grant["bot_token"],
            "bot_user_id": "UBOT" + grant["team_id"],
            "team": {"id": grant["team_id"], "name": grant["team_name"]},
            "enterprise": None,
            "is_enterprise_install": False,
        }

    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        team = self.team_for(self._token) or self.team_id
        return {
            "ok": True,
            "url": f"https://{self.team_domain}.slack.com/",
            "team": self.team_domain,
            "team_id": team,
            "user": "escalation-bot",
            "user_id": self.bot_user_id,
            "bot_id": "B" + self.bot_user_id,
            "is_enterprise_install": False,
        }

    def _post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = str(args.get("channel") or "")
        text = args.get("text") or ""
        blocks = _maybe_json(args.get("blocks"))
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if not text and not blocks:
            return {"ok": False, "error": "no_text"}
        if len(text) > 40_000:
            return {"ok": False, "error": "msg_too_long"}
        if block_problems(blocks):
            return {"ok": False, "error": "invalid_blocks", "errors": block_problems(blocks)}
        to_user = None
        if channel[:1] in ("U", "W"):
            to_user, channel = channel, "D" + channel
        thread_ts = args.get("thread_ts")
        if thread_ts and not self.find(channel, str(thread_ts)):
            return {"ok": False, "error": "thread_not_found"}
        msg = Message(
            channel=channel,
            ts=self._new_ts(),
            text=text,
            blocks=blocks,
            thread_ts=str(thread_ts) if thread_ts else None,
            to_user=to_user,
            metadata=_maybe_json(args.get("metadata")),
        )
        self.messages.append(msg)
        return {"ok": True, "channel": channel, "ts": msg.ts, "message": {"text": text, "ts": msg.ts}}

    def _update(self, args: dict[str, Any]) -> dict[str, Any]:
        msg = self.find(str(args.get("channel")), str(args.get("ts")))
        if msg is None:
            return {"ok": False, "error": "message_not_found"}
        if block_problems(_maybe_json(args.get("blocks"))):
            return {"ok": False, "error": "invalid_blocks"}
        msg.edits.append({"text": msg.text, "blocks": msg.blocks})
        msg.text = args.get("text") or msg.text
        msg.blocks = _maybe_json(args.get("blocks")) or msg.blocks
        return {"ok": True, "channel": msg.channel, "ts": msg.ts, "text": msg.text}

    def _post_ephemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        self.replies.append(
            Reply(
                user=str(args.get("user")),
                text=args.get("text") or "",
                response_type="ephemeral",
                replace_original=None,
                blocks=_maybe_json(args.get("blocks")),
                at=time.monotonic(),
            )
        )
        return {"ok": True, "message_ts": self._new_ts()}

    def _permalink(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, ts = str(args.get("channel")), str(args.get("message_ts"))
        if self.find(channel, ts) is None:
            return {"ok": False, "error": "message_not_found"}
        return {
            "ok": True,
            "channel": channel,
            "permalink": f"https://{self.team_domain}.slack.com/archives/{channel}/p{ts.replace('.', '')}",
        }

    def _views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        trigger = str(args.get("trigger_id") or "")
        if not trigger.startswith("trig."):
            return {"ok": False, "error": "invalid_trigger_id"}
        view = dict(_maybe_json(args.get("view")) or {})
        if len((view.get("title") or {}).get("text", "")) > 24 or block_problems(view.get("blocks")):
            return {"ok": False, "error": "invalid_arguments"}
        view["id"] = "V" + uuid.uuid4().hex[:10].upper()
        view["_user"] = trigger.split(".")[1]
        view["team_id"] = self.team_id
        self.views.append(view)
        return {"ok": True, "view": view}

    def _views_update(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "view": _maybe_json(args.get("view"))}

    def _views_publish(self, args: dict[str, Any]) -> dict[str, Any]:
        view = dict(_maybe_json(args.get("view")) or {})
        view["_user"] = args.get("user_id")
        view["_home"] = True
        self.views.append(view)
        return {"ok": True, "view": view}

    def _listing(self, messages: list[Message], args: dict[str, Any]) -> dict[str, Any]:
        oldest = float(args.get("oldest") or 0)
        with_meta = str(args.get("include_all_metadata", "")).lower() in ("1", "true")
        found = sorted((m for m in messages if float(m.ts) > oldest), key=lambda m: float(m.ts), reverse=True)
        start = int(args.get("cursor") or 0)
        limit = int(args.get("limit") or 100)
        page = found[start : start + limit]
        out = []
        for m in page:
            entry: dict[str, Any] = {"type": "message", "ts": m.ts, "text": m.text}
            if m.user:
                entry["user"] = m.user
            else:
                entry["bot_id"] = "B" + self.bot_user_id
            if m.thread_ts:
                entry["thread_ts"] = m.thread_ts
            if with_meta and m.metadata:
                entry["metadata"] = m.metadata
            out.append(entry)
        more = start + limit < len(found)
        return {
            "ok": True,
            "messages": out,
            "has_more": more,
            "response_metadata": {"next_cursor": str(start + limit) if more else ""},
        }

    def _history(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = str(args.get("channel"))
        return self._listing([m for m in self.messages if m.channel == channel and not m.thread_ts], args)

    def _replies(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, ts = str(args.get("channel")), str(args.get("ts"))
        if self.find(channel, ts) is None:
            return {"ok": False, "error": "thread_not_found"}
        # Like Slack: the thread's parent and its replies.
        return self._listing(
            [m for m in self.messages if m.channel == channel and (m.thread_ts == ts or m.ts == ts)], args
        )

    def _usergroup_users(self, args: dict[str, Any]) -> dict[str, Any]:
        group = str(args.get("usergroup"))
        if group not in self.usergroups:
            return {"ok": False, "error": "no_such_subteam"}
        return {"ok": True, "users": self.usergroups[group]}

    def _conversations_open(self, args: dict[str, Any]) -> dict[str, Any]:
        users = str(args.get("users") or "")
        return {"ok": True, "channel": {"id": "D" + users.split(",")[0]}}

    def _users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        uid = str(args.get("user"))
        if uid not in self.users:
            return {"ok": False, "error": "user_not_found"}
        admin = uid in self.admins
        return {
            "ok": True,
            "user": {
                "id": uid,
                "name": self.users[uid],
                "real_name": self.users[uid],
                "is_admin": admin,
                "is_owner": admin,
            },
        }


async def _serve_forever(port: int, token: str, team: str) -> None:
    fake = await FakeSlack(team_id=team, bot_token=token).start(port)
    print(f"fake Slack Web API on {fake.base_url}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await fake.stop()


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Run the fake Slack Web API on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default="xoxb-fake-token")
    parser.add_argument("--team", default="T0FAKE")
    args = parser.parse_args()
    try:
        asyncio.run(_serve_forever(args.port, args.token, args.team))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
