"""How long ago, in words: the same on every platform."""

from __future__ import annotations

from datetime import datetime


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
