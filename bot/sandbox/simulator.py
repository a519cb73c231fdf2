"""Sends requests to the bot the way Slack does: the same payload shapes, signed
with the signing secret (v0 HMAC over timestamp and body)."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp
from slack_sdk.signature import SignatureVerifier

from bot.sandbox.fake_slack import FakeSlack, Message, trigger_for


@dataclass
class Answer:
    status: int
    body: str

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


def form_state(view: dict[str, Any], answers: dict[str, Any]) -> dict[str, Any]:
    """The `state.values` Slack would send for a modal filled in with `answers` (by block id)."""
    values: dict[str, Any] = {}
    for block in view.get("blocks", []):
        if block.get("type") != "input":
            continue
        bid = block["block_id"]
        el = block["element"]
        answer = answers.get(bid)
        kind = el["type"]
        if kind == "plain_text_input":
            state: dict[str, Any] = {"type": kind, "value": answer}
        elif kind == "static_select":
            chosen = answer if answer is not None else (el.get("initial_option") or {}).get("value")
            state = {"type": kind, "selected_option": {"value": chosen} if chosen else None}
        elif kind == "users_select":
            state = {"type": kind, "selected_user": answer}
        elif kind == "conversations_select":
            state = {"type": kind, "selected_conversation": answer}
        elif kind == "multi_users_select":
            state = {"type": kind, "selected_users": list(answer or [])}  # type: ignore[arg-type]
        elif kind == "multi_conversations_select":
            chosen_list = answer if answer is not None else el.get("initial_conversations") or []
            state = {"type": kind, "selected_conversations": list(chosen_list)}
        else:
            state = {"type": kind, "value": answer}
        values[bid] = {el["action_id"]: state}
    return values


class SlackSimulator:
    def __init__(
        self,
        bot_url: str,
        signing_secret: str,
        *,
        fake: FakeSlack | None = None,
        team_id: str = "T0FAKE",
        session: aiohttp.ClientSession | None = None,
        response_base: str | None = None,
    ):
        self.url = bot_url.rstrip("/") + "/slack/events"
        # Where response_url points when the fake Slack runs in another process.
        self.response_base = response_base
        self.secret = signing_secret
        self.fake = fake
        self.team_id = team_id
        self._session = session
        self._own_session = session is None

    async def __aenter__(self) -> SlackSimulator:
        if self._session is None:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()

    def _response_url(self, user: str) -> str:
        if self.fake is not None:
            return self.fake.response_url(user)
        if self.response_base is not None:
            return f"{self.response_base}/respond/{user}/{uuid.uuid4().hex}"
        return f"http://127.0.0.1:9/respond/{user}/{uuid.uuid4().hex}"

    @staticmethod
    def trigger_id(user: str) -> str:
        return trigger_for(user)  # Slack's come with the request and expire 3 s later

    def sign(self, body: str, timestamp: int | None = None) -> dict[str, str]:
        ts = str(int(time.time()) if timestamp is None else timestamp)
        sig = SignatureVerifier(self.secret).generate_signature(timestamp=ts, body=body)
        return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": sig}

    async def post(
        self,
        body: str,
        content_type: str,
        *,
        headers: dict[str, str] | None = None,
        timestamp: int | None = None,
        signature: str | None = None,
    ) -> Answer:
        assert self._session is not None, "use `async with SlackSimulator(...)`"
        h = {"Content-Type": content_type, **self.sign(body, timestamp)}
        if signature is not None:
            h["X-Slack-Signature"] = signature
        h.update(headers or {})
        async with self._session.post(self.url, data=body.encode(), headers=h) as resp:
            return Answer(resp.status, await resp.text())

    # ---- what people do ----------------------------------------------------

    def command_body(self, user: str, text: str = "", *, channel: str = "CGENERAL", command: str = "/escalate") -> str:
        return urlencode(
            {
                "token": "legacy-verification-token",
                "team_id": self.team_id,
                "team_domain": "acme-support",
                "channel_id": channel,
                "channel_name": "general",
                "user_id": user,
                "user_name": user.lower(),
                "command": command,
                "text": text,
                "api_app_id": "A0ESCALATE",
                "is_enterprise_install": "false",
                "response_url": self._response_url(user),
                "trigger_id": self.trigger_id(user),
            }
        )

    async def command(self, user: str, text: str = "", **kw: Any) -> Answer:
        return await self.post(self.command_body(user, text, **kw), "application/x-www-form-urlencoded")

    def _interactive(self, payload: dict[str, Any]) -> str:
        return urlencode({"payload": json.dumps(payload)})

    def view_submission_body(
        self, user: str, view: dict[str, Any], answers: dict[str, str | None], *, view_id: str | None = None
    ) -> str:
        submitted = {k: v for k, v in view.items() if not k.startswith("_")}
        submitted["id"] = view_id or view.get("id") or "V" + uuid.uuid4().hex[:10].upper()
        submitted["state"] = {"values": form_state(view, answers)}
        submitted.setdefault("hash", uuid.uuid4().hex)
        return self._interactive(
            {
                "type": "view_submission",
                "team": {"id": self.team_id, "domain": "acme-support"},
                "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": self.team_id},
                "api_app_id": "A0ESCALATE",
                "token": "legacy-verification-token",
                "trigger_id": self.trigger_id(user),
                "view": submitted,
                "response_urls": [],
                "is_enterprise_install": False,
            }
        )

    async def submit(self, user: str, view: dict[str, Any], answers: dict[str, str | None], **kw: Any) -> Answer:
        return await self.post(
            self.view_submission_body(user, view, answers, **kw), "application/x-www-form-urlencoded"
        )

    def click_body(self, user: str, message: Message, action_id: str, *, value: str | None = None) -> str:
        if value is None:
            value = button_value(message, action_id)
        return self._interactive(
            {
                "type": "block_actions",
                "team": {"id": self.team_id, "domain": "acme-support"},
                "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": self.team_id},
                "api_app_id": "A0ESCALATE",
                "token": "legacy-verification-token",
                "container": {
                    "type": "message",
                    "message_ts": message.ts,
                    "channel_id": message.channel,
                    "is_ephemeral": False,
                },
                "trigger_id": self.trigger_id(user),
                "channel": {"id": message.channel, "name": "escalations"},
                "message": {
                    "type": "message",
                    "ts": message.ts,
                    "text": message.text,
                    "blocks": message.blocks,
                },
                "response_url": self._response_url(user),
                "actions": [
                    {
                        "type": "button",
                        "action_id": action_id,
                        "block_id": "card_actions",
                        "value": value,
                        "text": {"type": "plain_text", "text": action_id.title()},
                        "action_ts": f"{time.time():.6f}",
                    }
                ],
                "is_enterprise_install": False,
            }
        )

    async def click(self, user: str, message: Message, action_id: str, *, value: str | None = None) -> Answer:
        return await self.post(
            self.click_body(user, message, action_id, value=value), "application/x-www-form-urlencoded"
        )

    def _who(self, user: str) -> dict[str, Any]:
        return {"id": user, "username": user.lower(), "name": user.lower(), "team_id": self.team_id}

    async def message_shortcut(self, user: str, message: Message, callback_id: str = "escalate_message") -> Answer:
        """A person picks "Escalate this message" from a message's menu."""
        msg: dict[str, Any] = {"type": "message", "ts": message.ts, "text": message.text, "user": message.user}
        if message.thread_ts:
            msg["thread_ts"] = message.thread_ts
        body = self._interactive(
            {
                "type": "message_action",
                "callback_id": callback_id,
                "team": {"id": self.team_id, "domain": "acme-support"},
                "user": self._who(user),
                "channel": {"id": message.channel, "name": "support"},
                "message": msg,
                "message_ts": message.ts,
                "trigger_id": self.trigger_id(user),
                "response_url": self._response_url(user),
                "token": "legacy-verification-token",
                "action_ts": f"{time.time():.6f}",
                "is_enterprise_install": False,
            }
        )
        return await self.post(body, "application/x-www-form-urlencoded")

    async def home_click(self, user: str, action_id: str, value: str) -> Answer:
        """A click on a button on the App Home tab: no channel, no response_url."""
        body = self._interactive(
            {
                "type": "block_actions",
                "team": {"id": self.team_id, "domain": "acme-support"},
                "user": self._who(user),
                "api_app_id": "A0ESCALATE",
                "token": "legacy-verification-token",
                "container": {"type": "view", "view_id": "VHOME"},
                "trigger_id": self.trigger_id(user),
                "view": {"id": "VHOME", "type": "home", "team_id": self.team_id},
                "actions": [
                    {
                        "type": "button",
                        "action_id": action_id,
                        "block_id": "home",
                        "value": value,
                        "action_ts": f"{time.time():.6f}",
                    }
                ],
                "is_enterprise_install": False,
            }
        )
        return await self.post(body, "application/x-www-form-urlencoded")

    async def open_home(self, user: str) -> Answer:
        return await self.event({"type": "app_home_opened", "user": user, "channel": "D" + user, "tab": "home"})

    async def event(
        self, event: dict[str, Any], *, event_id: str | None = None, retry_num: int | None = None
    ) -> Answer:
        body = json.dumps(
            {
                "token": "legacy-verification-token",
                "team_id": self.team_id,
                "api_app_id": "A0ESCALATE",
                "event": event,
                "type": "event_callback",
                "event_id": event_id or "Ev" + uuid.uuid4().hex[:10].upper(),
                "event_time": int(time.time()),
                "authorizations": [{"team_id": self.team_id, "user_id": "UBOT", "is_bot": True}],
            }
        )
        headers = {}
        if retry_num is not None:
            headers = {"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": "http_timeout"}
        return await self.post(body, "application/json", headers=headers)


def button_value(message: Message, action_id: str) -> str:
    """The value of the button with `action_id` on the message as it is now."""
    for block in message.blocks or []:
        for el in block.get("elements", []) if block.get("type") == "actions" else []:
            if el.get("action_id") == action_id:
                return str(el.get("value"))
    raise LookupError(f"no {action_id!r} button on message {message.ts}")
