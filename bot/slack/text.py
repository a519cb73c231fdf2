"""User text into Slack mrkdwn: escaped so it is only ever data, and cut to fit.

Slack reads `<…>` as mentions, channel pings and links, so `&`, `<` and `>`
become entities. Cutting counts the escaped length and never splits an entity.
"""

from __future__ import annotations

import re

ELLIPSIS = "…"

# The Block Kit limit we render into (a section's text).
SECTION_TEXT_MAX = 3000

_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def escape(text: str) -> str:
    return "".join(_ENTITIES.get(ch, ch) for ch in text)


def fit(text: str, limit: int) -> str:
    """Escape `text` and cut it so the result is at most `limit` characters, ending in … when cut."""
    escaped = escape(text)
    if len(escaped) <= limit:
        return escaped
    out: list[str] = []
    used = 0
    budget = limit - len(ELLIPSIS)
    for ch in text:
        piece = _ENTITIES.get(ch, ch)
        if used + len(piece) > budget:
            break
        out.append(piece)
        used += len(piece)
    return "".join(out).rstrip() + ELLIPSIS


def cut_plain(text: str, limit: int) -> str:
    """Cut unescaped text (plain_text objects, modal initial values) with a visible ellipsis."""
    if len(text) <= limit:
        return text
    return text[: limit - len(ELLIPSIS)].rstrip() + ELLIPSIS


_USER_ID = re.compile(r"[UW][A-Z0-9]{2,30}")
_SAFE_URL = re.compile(r"https?://[^\s<>|]+")


def user(user_id: str | None) -> str:
    """A mention of a user id Slack gave us; anything not shaped like one is shown as plain text."""
    if not user_id:
        return "someone"
    return f"<@{user_id}>" if _USER_ID.fullmatch(user_id) else escape(user_id)


def channel(channel_id: str) -> str:
    return f"<#{channel_id}>" if channel_id[:1] in ("C", "G") else escape(channel_id)


def link(url: str | None, label: str) -> str:
    """A link with an escaped label; a missing or odd-looking URL leaves just the label."""
    if not url or not _SAFE_URL.fullmatch(url):
        return fit(label, 200)
    return f"<{url}|{fit(label, 200)}>"
