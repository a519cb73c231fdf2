"""A fake Slack Web API on 127.0.0.1, for the demo, the tests and the benchmarks.

It is a contract with Slack, not a convenience: every call needs a token, and the token the scopes
Slack's method reference names (`missing_scope` with `needed` and `provided` otherwise); methods are
rate-limited per workspace by their published tier (429 with Retry-After); a channel the bot was not
invited to answers `not_in_channel`, an unknown one `channel_not_found`; a trigger id works once and
only for 3 seconds. It records every call (when it arrives), keeps the messages as a channel would
show them, receives `response_url` replies, and fails on demand, before or after a call took effect
(`bot.sandbox.faults`).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from bot.sandbox.faults import Fail, Script, failure_from_json, reset_connection, stall
from bot.sandbox.slack_contract import HISTORY, METHODS, RateLimits, history_scope
from bot.sandbox.slack_methods import SlackMethods
from bot.sandbox.slack_state import Channel, Install, Message, Reply, block_problems, maybe_json, trigger_for
from bot.sandbox.watch import Watched, serve_on_loopback

__all__ = ["ApiCall", "Channel", "Fail", "FakeSlack", "Message", "Reply", "block_problems", "trigger_for"]


@dataclass
class ApiCall:
    method: str
    args: dict[str, Any]
    status: int  # 0 while the call is still being answered
    ok: bool
    at: float  # when it arrived
    token: str | None = None
    applied: bool = False  # it took effect (even if the answer was a failure)
    error: str | None = None  # the Slack error it was answered with


def default_scopes() -> list[str]:
    """The scopes the app asks for (manifest.yml; bot.slack.oauth keeps the same list, tested)."""
    from bot.slack.oauth import BOT_SCOPES

    return list(BOT_SCOPES)


# The key to fail replies to a click's response_url with (FakeSlack.fail_next).
RESPONSE_URL = "response_url"


def _fault_key(method: str, channel: str) -> str:
    """Where failures aimed at one channel's calls to a method wait (`fail_next(..., channel=)`)."""
    return f"{method}:{channel}"


class FakeSlack(SlackMethods, Watched):
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
        private_channels: dict[str, str] | None = None,
        usergroups: dict[str, list[str]] | None = None,
        scopes: Iterable[str] | None = None,
        rate_scale: float = 1.0,
        non_marketplace: bool = False,
    ):
        """`channels`/`private_channels`: id -> name of the channels that exist, the bot a member of
        each. `scopes`: what the bot token was granted (default: what manifest.yml asks for).
        `rate_scale`: multiplies Slack's published rates; leave it at 1 unless a test needs speed
        Slack would not give, and say so there."""
        Watched.__init__(self)
        self.team_id = team_id
        self.team_domain = team_domain
        self.bot_token = bot_token
        self.app_token = app_token
        self.bot_user_id = bot_user_id
        self.default_scopes = list(scopes) if scopes is not None else default_scopes()
        self.tokens: dict[str, Install] = {}
        if bot_token is not None:
            self.tokens[bot_token] = Install(team_id, frozenset(self.default_scopes))
        self.limits = RateLimits(scale=rate_scale, non_marketplace=non_marketplace)
        self.script = Script()
        self.calls: list[ApiCall] = []
        self.sockets: list[web.WebSocketResponse] = []
        self.socket_acks: dict[str, dict[str, Any]] = {}
        self._init_state(users=users, channels=channels, private_channels=private_channels, usergroups=usergroups)
        self._handlers = self.handlers()
        self._runner: web.AppRunner | None = None
        self.port: int = 0

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
        app.router.add_post("/_fake/setup", self._setup)
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

    def fail_next(self, method: str, *failures: Fail, channel: str | None = None) -> None:
        """The next calls to `method` fail this way; with `channel`, only calls to that channel
        (a DM's user id, say) do, so a test can aim at one of several sends racing each other."""
        self.script.queue(_fault_key(method, channel) if channel else method, *failures)

    def chaos(self, rate: float, methods: tuple[str, ...], failures: list[Fail], seed: int = 7) -> None:
        """Fail `rate` of calls to `methods`, each time with one of `failures` at random."""
        self.script.chaos(rate, methods, failures, seed)

    def calm(self) -> None:
        self.script.calm()

    # ---- the workspace, as tests arrange it -----------------------------------

    def team_for(self, token: str | None) -> str | None:
        install = self.tokens.get(token or "")
        return install.team if install is not None else None

    def revoke(self, team_id: str) -> None:
        """The workspace uninstalled the app: its tokens stop working."""
        for token, install in list(self.tokens.items()):
            if install.team == team_id:
                del self.tokens[token]

    def set_scopes(self, token: str, scopes: Iterable[str]) -> None:
        """What an older install was granted, say (before the app asked for a scope it needs now)."""
        self.tokens[token] = Install(self.tokens[token].team, frozenset(scopes))

    @property
    def installs(self) -> dict[str, str]:
        """OAuth-installed bot tokens -> their workspace."""
        return {t: i.team for t, i in self.tokens.items() if t != self.bot_token}

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

    def scopes_needed(self) -> set[str]:
        """The scopes the calls made so far needed, by Slack's method reference."""
        needed: set[str] = set()
        for call in self.calls:
            spec = METHODS.get(call.method)
            if spec is not None:
                needed |= {self._scope_for(s, call.args) for s in spec.scopes}
        return needed

    # ---- HTTP -------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        args: dict[str, Any] = dict(request.query)
        if request.method == "POST":
            if request.content_type == "application/json":
                body = await request.json()
                args.update(body if isinstance(body, dict) else {})
            else:
                form = await request.post()
                args.update({k: maybe_json(v) for k, v in form.items() if isinstance(v, str)})
        auth = request.headers.get("Authorization", "")
        basic = auth.removeprefix("Basic ").strip() if auth.startswith("Basic ") else None
        token = None if basic else (auth.removeprefix("Bearer ").strip() or args.pop("token", None))
        if basic:
            args["_basic"] = basic
        call = ApiCall(method, args, 0, False, time.monotonic(), token)
        self.calls.append(call)  # recorded as it arrives: a stalled call is seen while it stalls
        await self._notify()

        channel = args.get("channel")
        keys = (_fault_key(method, channel), method) if isinstance(channel, str) else (method,)
        failure = self.script.next(*keys)
        if failure is not None and not failure.applied:
            await stall(failure.stall)
            if not failure.answers_normally:
                return await self._fail(request, call, failure)
        if method == "apps.connections.open":
            return await self._answer(call, self._connections_open(token))
        refusal = self._refusal(method, token, args)
        if refusal is not None:
            status, body, headers = refusal
            return await self._answer(call, body, status=status, headers=headers)
        handler = self._handlers.get(method)
        if handler is None:
            return await self._answer(call, {"ok": False, "error": "unknown_method"})
        result = handler(args)
        call.applied = bool(result.get("ok"))
        if failure is not None and failure.applied:
            await self._notify()
            await stall(failure.stall)
            return await self._fail(request, call, failure)
        return await self._answer(call, result)

    def _refusal(
        self, method: str, token: str | None, args: dict[str, Any]
    ) -> tuple[int, dict[str, Any], dict[str, str]] | None:
        """Why Slack would answer this call without running it (auth, scope, rate), or None."""
        spec = METHODS.get(method)
        self._install, self._team = None, ""
        if spec is not None and not spec.needs_token:
            return None
        if not token:
            return 200, {"ok": False, "error": "not_authed"}, {}
        install = self.tokens.get(token)
        if install is None:
            return 200, {"ok": False, "error": "invalid_auth"}, {}
        self._install, self._team = install, install.team
        if spec is None:
            return None
        for scope in spec.scopes:
            needed = self._scope_for(scope, args)
            if needed not in install.scopes:
                provided = ",".join(sorted(install.scopes))
                return 200, {"ok": False, "error": "missing_scope", "needed": needed, "provided": provided}, {}
        wait = self.limits.wait(install.team, method, str(args.get("channel") or ""))
        if wait:
            return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(wait)}
        return None

    def _scope_for(self, scope: str, args: dict[str, Any]) -> str:
        if scope != HISTORY:
            return scope
        cid = str(args.get("channel") or "")
        channel = self.channels.get(cid)
        return history_scope(cid, channel.private if channel is not None else False)

    async def _answer(
        self, call: ApiCall, body: dict[str, Any], *, status: int = 200, headers: dict[str, str] | None = None
    ) -> web.Response:
        call.status, call.ok, call.error = status, bool(body.get("ok")), body.get("error")
        await self._notify()
        return web.json_response(body, status=status, headers=headers)

    async def _fail(self, request: web.Request, call: ApiCall, failure: Fail) -> web.StreamResponse:
        call.status, call.ok = failure.status if failure.status != 200 else 200, False
        await self._notify()
        if failure.reset:
            return await reset_connection(request)
        headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after is not None else {}
        if failure.status == 200:
            return web.json_response({"ok": False, "error": failure.error or "fatal_error"})
        error = failure.error or ("ratelimited" if failure.status == 429 else "internal_error")
        return web.json_response({"ok": False, "error": error}, status=failure.status, headers=headers)

    def _connections_open(self, token: str | None) -> dict[str, Any]:
        if token != self.app_token:
            return {"ok": False, "error": "invalid_auth"}
        return {"ok": True, "url": f"ws://127.0.0.1:{self.port}/socket-mode"}

    async def _respond(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        # A reply to a click is not a Web API call but can be slow or fail too (fail_next("response_url")).
        failure = self.script.next(RESPONSE_URL)
        if failure is not None:
            await stall(failure.stall)
            if not failure.answers_normally:
                return await self._fail(request, ApiCall(RESPONSE_URL, body, 0, False, time.monotonic(), None), failure)
        self.replies.append(
            Reply(
                user=request.match_info["user"],
                text=body.get("text", ""),
                response_type=body.get("response_type"),
                replace_original=body.get("replace_original"),
                blocks=body.get("blocks"),
                at=time.monotonic(),
                peer=str(request.transport.get_extra_info("peername") if request.transport else ""),
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

    # ---- control from another process -------------------------------------

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
                "edited_at": [e["at"] for e in m.edits],
                "at": m.at,
            }

        counts: dict[str, dict[str, int]] = {}
        for c in self.calls if "calls" in request.query else ():  # a long run asks only at the end
            entry = counts.setdefault(c.method, {"ok": 0, "failed": 0})
            entry["ok" if c.ok else "failed"] += 1
        since = int(request.query.get("since", 0))
        replies_since = int(request.query.get("replies_since", 0))  # a long run reads only what is new
        return web.json_response(
            {
                "messages": [msg(m) for m in self.messages[since:]],
                "replies": [
                    {"user": r.user, "text": r.text, "response_type": r.response_type, "at": r.at}
                    for r in self.replies[replies_since:]
                ],
                "calls": counts,
            }
        )

    async def _set_chaos(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.chaos(
            float(body["rate"]),
            tuple(body["methods"]),
            [failure_from_json(f) for f in body["failures"]],
            seed=int(body.get("seed", 7)),
        )
        return web.json_response({"ok": True})

    async def _set_calm(self, request: web.Request) -> web.Response:
        self.calm()
        return web.json_response({"ok": True})

    async def _setup(self, request: web.Request) -> web.Response:
        """Channels and rate limits, for a fake started by `main` in another process."""
        body = await request.json()
        for cid, name in (body.get("channels") or {}).items():
            self.add_channel(cid, name)
        if "rate_scale" in body:
            self.limits.scale = float(body["rate_scale"])
        return web.json_response({"ok": True})


async def _serve_forever(port: int, token: str, team: str, channels: list[str], rate_scale: float) -> None:
    fake = await FakeSlack(
        team_id=team, bot_token=token, channels={c: c.lower() for c in channels}, rate_scale=rate_scale
    ).start(port)
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
    parser.add_argument("--channel", action="append", default=[], help="a channel that exists, the bot in it")
    parser.add_argument("--rate-scale", type=float, default=1.0, help="multiply Slack's published rate limits")
    args = parser.parse_args()
    try:
        asyncio.run(_serve_forever(args.port, args.token, args.team, args.channel, args.rate_scale))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
