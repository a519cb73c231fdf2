"""The edge of `POST /slack/events`: verify first, then parse, then check the envelope.

1. The signature is checked on the raw bytes (slack_sdk's verifier) before anything parses
   the body. Headers that are missing, malformed (a timestamp that is not digits, a signature
   that is not `v0=` and 64 hex digits, anything non-ASCII), stale or wrong are 401, and
   nothing in the body is read, stored or called.
2. A verified body that cannot be parsed (not UTF-8, broken JSON, a JSON value that is not an
   object) is 400 with one WARNING line.
3. The parsed payload has its text made storable (`bot.inbound.scrub`), and its envelope (who
   sent it, from which workspace, which action or view) is checked for the types and sizes our
   columns hold. A payload Slack could never have sent is 400 with one WARNING line; what is
   inside a form or a button is the listeners' business, and they answer the person.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.request.async_internals import build_async_context
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.request.internals import parse_body
from slack_sdk.signature import SignatureVerifier

from bot.inbound import scrub

log = logging.getLogger(__name__)

MAX_SKEW_SECONDS = 300  # Slack's own rule: older (or newer) than five minutes is a replay
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")
# Slack's ids (team, user, channel, view, trigger, action): ASCII, bounded to what our columns hold.
_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_LONG_ID = re.compile(r"[A-Za-z0-9._:-]{1,255}")
_EVENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")

# JSON escapes that decode to what `scrub` removes (NUL, a UTF-16 surrogate); without any, a JSON
# text decoded from strict UTF-8 holds neither (json refuses raw control characters in strings).
_UNSTORABLE_ESCAPE = re.compile(r"\\u(?:0000|[dD][89abcdefABCDEF])")

INTERACTIVE = {"block_actions", "view_submission", "view_closed", "message_action", "shortcut", "block_suggestion"}


@dataclass(frozen=True)
class Rejected:
    status: int
    reason: str


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    return value if isinstance(value, str) else None


def verify(verifier: SignatureVerifier, raw: bytes, headers: Mapping[str, str], *, now: float | None = None) -> bool:
    """Whether Slack signed exactly these bytes within the last five minutes."""
    timestamp = _header(headers, "X-Slack-Request-Timestamp")
    signature = _header(headers, "X-Slack-Signature")
    if not timestamp or not _TIMESTAMP.fullmatch(timestamp) or not signature or not _SIGNATURE.fullmatch(signature):
        return False
    if abs((time.time() if now is None else now) - int(timestamp)) > MAX_SKEW_SECONDS:
        return False
    try:
        body = raw.decode("utf-8")
    except UnicodeDecodeError:
        return False  # Slack signs UTF-8; these bytes were never Slack's
    return verifier.is_valid(body=body, timestamp=timestamp, signature=signature)


def unquote_plus(value: str) -> str:
    """`urllib.parse.unquote_plus`, always with its result, but at C speed for what Slack sends (ASCII
    with %XX escapes of UTF-8): an interactive payload is a few KB of JSON with a thousand escapes,
    and urllib decodes them one by one in Python. Anything else (non-ASCII, a backslash, a stray %,
    bytes that are not UTF-8) is left to urllib."""
    value = value.replace("+", " ")
    if "%" not in value:
        return value
    if value.isascii() and "\\" not in value:
        try:
            escaped = value.replace("%", "\\x").encode("ascii").decode("unicode_escape")
            return escaped.encode("latin-1").decode("utf-8")
        except UnicodeError:
            pass
    return unquote(value)


def _body(text: str, content_type: str | None) -> tuple[Any, bool]:
    """The body as Bolt parses it, and whether its text may hold what `scrub` removes. Interactive
    payloads (`payload=<JSON>`, the big ones) are decoded here, faster; the rest by Bolt."""
    if content_type != "application/json" and text.startswith("payload=") and "&" not in text:
        payload = unquote_plus(text[len("payload=") :])
        return json.loads(payload), _UNSTORABLE_ESCAPE.search(payload) is not None
    return parse_body(text, content_type), True


def parse(raw: bytes, headers: Mapping[str, str], query: str) -> AsyncBoltRequest | Rejected:
    """A verified body as Bolt's request, its text scrubbed and its envelope checked."""
    try:
        text = raw.decode("utf-8")
        request = AsyncBoltRequest(body="", query=query, headers=dict(headers))
        request.raw_body = text  # what Bolt's own signature check reads
        body, unstorable = _body(text, request.content_type)
    except (ValueError, TypeError, AttributeError, KeyError, IndexError) as exc:
        return Rejected(400, f"body does not parse ({type(exc).__name__})")
    if not isinstance(body, dict):
        return Rejected(400, "body is not a JSON object or form")
    request.body = scrub(body) if unstorable else body
    problem = envelope_problem(request.body)
    if problem is not None:
        return Rejected(400, problem)
    try:
        # The context (team, user, channel) is read from the body: read it again from the scrubbed one.
        request.context = build_async_context(AsyncBoltContext({}), request.body)
    except (ValueError, TypeError, AttributeError, KeyError, IndexError) as exc:
        return Rejected(400, f"envelope does not parse ({type(exc).__name__})")
    return request


def _id(value: Any, *, pattern: re.Pattern[str] = _ID) -> bool:
    return isinstance(value, str) and pattern.fullmatch(value) is not None


def _optional(value: Any, *, pattern: re.Pattern[str] = _ID) -> bool:
    return value is None or _id(value, pattern=pattern)


def envelope_problem(body: dict[str, Any]) -> str | None:
    """What makes this payload one Slack could not have sent, or None."""
    if "command" in body:
        for key in ("command", "text", "response_url", "trigger_id", "user_id", "team_id", "channel_id"):
            if key in body and not isinstance(body[key], str):
                return f"slash command field {key} is not text"
        if not _id(body.get("user_id")) or not _id(body.get("team_id")):
            return "slash command without a valid user_id and team_id"
        if not _id(body.get("trigger_id"), pattern=_LONG_ID) or not isinstance(body.get("response_url"), str):
            return "slash command without a trigger_id or response_url"
        if not _optional(body.get("channel_id")):
            return "slash command with a malformed channel_id"
        return None
    kind = body.get("type")
    if kind in INTERACTIVE:
        return _interactive_problem(kind, body)
    if kind == "event_callback":
        event = body.get("event")
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            return "event_callback without an event"
        if not _id(body.get("event_id"), pattern=_EVENT_ID):
            return "event_callback with a malformed event_id"
        if not _optional(body.get("team_id")) or not _optional(body.get("enterprise_id")):
            return "event_callback with a malformed team_id"
        for key in ("user", "channel", "tab", "subtype", "bot_id", "ts", "thread_ts", "channel_type"):
            if key in event and event[key] is not None and not isinstance(event[key], str):
                return f"event field {key} is not text"
        for key in ("message", "previous_message"):
            if key in event and event[key] is not None and not isinstance(event[key], dict):
                return f"event field {key} is not an object"
        return None
    if kind == "url_verification":
        return None if isinstance(body.get("challenge"), str) else "url_verification without a challenge"
    if "ssl_check" in body:
        return None
    return "not a request Slack sends (no command and no known type)"


def _interactive_problem(kind: str, body: dict[str, Any]) -> str | None:
    user = body.get("user")
    if not isinstance(user, dict) or not _id(user.get("id")):
        return f"{kind} without a valid user"
    team = body.get("team")
    if team is not None and (not isinstance(team, dict) or not _optional(team.get("id"))):
        return f"{kind} with a malformed team"
    for key in ("trigger_id", "response_url", "callback_id"):
        if key in body and body[key] is not None and not isinstance(body[key], str):
            return f"{kind} field {key} is not text"
    if kind == "block_actions":
        actions = body.get("actions")
        if not isinstance(actions, list) or not actions:
            return "block_actions without actions"
        if not all(isinstance(a, dict) and _id(a.get("action_id"), pattern=_LONG_ID) for a in actions):
            return "block_actions with a malformed action"
        for key in ("channel", "container", "message", "view"):
            if key in body and body[key] is not None and not isinstance(body[key], dict):
                return f"block_actions field {key} is not an object"
    if kind in ("view_submission", "view_closed"):
        view = body.get("view")
        if not isinstance(view, dict) or not isinstance(view.get("callback_id"), str):
            return f"{kind} without a view"
        if not isinstance(view.get("type"), str):
            return f"{kind} with a view of no type"
    if kind in ("message_action", "shortcut"):
        if not isinstance(body.get("callback_id"), str):
            return f"{kind} without a callback_id"
        if kind == "message_action" and not isinstance(body.get("response_url"), str):
            return "message_action without a response_url"
        for key in ("message", "channel"):
            if key in body and body[key] is not None and not isinstance(body[key], dict):
                return f"{kind} field {key} is not an object"
    return None


def warn(rejected: Rejected) -> None:
    log.warning("rejected a signed Slack request (%s): %s", rejected.status, rejected.reason)
