"""User text into Slack mrkdwn: escaped so it is only ever data, and cut to fit.

Slack reads `<…>` as mentions, channel pings and links, so `&`, `<` and `>`
become entities. Cutting counts the escaped length and never splits an entity.
"""

from __future__ import annotations

from datetime import datetime

ELLIPSIS = "…"

# Block Kit limits we render into.
SECTION_TEXT_MAX = 3000
CONTEXT_TEXT_MAX = 2000
HEADER_TEXT_MAX = 150
MESSAGE_TEXT_MAX = 4000
OPTION_TEXT_MAX = 75
BUTTON_VALUE_MAX = 2000
INITIAL_VALUE_MAX = 3000

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


def minutes_between(start: datetime, end: datetime) -> int:
    return max(0, int((end - start).total_seconds() // 60))


def after_phrase(start: datetime, end: datetime) -> str:
    """'2 min after escalation' style; under a minute says so."""
    m = minutes_between(start, end)
    if m < 1:
        return "under a minute"
    if m < 120:
        return f"{m} min"
    hours, mins = divmod(m, 60)
    if hours < 48:
        return f"{hours} h {mins} min" if mins else f"{hours} h"
    return f"{hours // 24} days"


def ago_phrase(then: datetime, now: datetime) -> str:
    """'2 minutes ago' style."""
    m = minutes_between(then, now)
    if m < 1:
        return "less than a minute ago"
    if m == 1:
        return "1 minute ago"
    if m < 120:
        return f"{m} minutes ago"
    hours = m // 60
    if hours < 48:
        return f"{hours} hours ago"
    return f"{hours // 24} days ago"


def user(user_id: str | None) -> str:
    """A mention of a user id Slack gave us (never of typed text)."""
    return f"<@{user_id}>" if user_id else "someone"


def channel(channel_id: str) -> str:
    return f"<#{channel_id}>" if channel_id[:1] in ("C", "G") else escape(channel_id)


def link(url: str, label: str) -> str:
    return f"<{url}|{fit(label, 200)}>"
