"""The fake Slack's workspace state: messages, replies to response_urls, channels, installs, and the
Block Kit limits and trigger ids Slack hands out (`bot.sandbox.slack_methods` answers the methods)."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

TRIGGER_LIFETIME = 3.0  # seconds: Slack's trigger_id expires three seconds after it was issued


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
    files: list[dict[str, Any]] | None = None  # a file share: the files it shows


@dataclass
class Reply:
    """A message sent to a click's or command's response_url (ephemeral unless said otherwise)."""

    user: str
    text: str
    response_type: str | None
    replace_original: bool | None
    blocks: list[dict[str, Any]] | None
    at: float
    peer: str = ""  # the client's address and port: replies over one kept-alive connection share it


@dataclass
class Channel:
    id: str
    name: str
    team: str
    private: bool = False
    bot_member: bool = True


@dataclass
class Install:
    """A bot token: the workspace it belongs to and the scopes it was granted."""

    team: str
    scopes: frozenset[str]


def maybe_json(value: Any) -> Any:
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


def trigger_for(user: str) -> str:
    """A trigger id as Slack hands one out with a request, carrying when (for the 3-second expiry)."""
    return f"trig.{user}.{int(time.time() * 1000)}.{uuid.uuid4().hex[:10]}"
