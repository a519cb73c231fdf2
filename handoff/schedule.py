"""Calendar arithmetic: report weeks in a time zone, when the weekly post is due, reminder times.

Weeks run Monday 00:00 to Monday 00:00 in the team's time zone. Their bounds are computed in
local time and then converted, so a week with a daylight-saving change is 167 or 169 hours
long, as the clocks on the wall say.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from handoff.domain import Severity

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def week_start_of(day: date) -> date:
    return day - timedelta(days=day.weekday())


def week_bounds(week_start: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """UTC instants of Monday 00:00 local and the next Monday 00:00 local."""
    start = datetime.combine(week_start, time(0), tzinfo=tz)
    end = datetime.combine(week_start + timedelta(days=7), time(0), tzinfo=tz)
    return start.astimezone(UTC), end.astimezone(UTC)


def day_bounds(week_start: date, tz: ZoneInfo, days: int = 7) -> list[tuple[datetime, datetime]]:
    """The local days from `week_start` on (a week's seven, or `days` of them), as UTC ranges."""
    out = []
    for i in range(days):
        d = week_start + timedelta(days=i)
        a = datetime.combine(d, time(0), tzinfo=tz).astimezone(UTC)
        b = datetime.combine(d + timedelta(days=1), time(0), tzinfo=tz).astimezone(UTC)
        out.append((a, b))
    return out


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """00:00 of `day` in `tz`, as a UTC instant."""
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def parse_iso_week(text: str) -> date:
    """'2026-W47' → the Monday of that ISO week."""
    m = re.fullmatch(r"(\d{4})-?W(\d{1,2})", text.strip(), re.IGNORECASE)
    if not m:
        raise ValueError(f"{text!r} is not an ISO week like 2026-W47")
    return date.fromisocalendar(int(m.group(1)), int(m.group(2)), 1)


def iso_week(week_start: date) -> str:
    year, week, _ = week_start.isocalendar()
    return f"{year}-W{week:02d}"


def last_due(now: datetime, weekday: str, at: time, tz: ZoneInfo) -> tuple[datetime, date]:
    """The latest scheduled moment at or before `now`, and the week it reports on: the last full
    Monday-to-Monday week that ended before that moment."""
    local_now = now.astimezone(tz)
    target = WEEKDAYS.index(weekday)
    day = local_now.date() - timedelta(days=(local_now.weekday() - target) % 7)
    slot = datetime.combine(day, at, tzinfo=tz)
    if slot > local_now:
        slot = datetime.combine(day - timedelta(days=7), at, tzinfo=tz)
    week = week_start_of(slot.date()) - timedelta(days=7)
    return slot.astimezone(UTC), week


def reminder_after(severity: Severity, minutes: int) -> timedelta:
    """P1 escalations are chased three times sooner."""
    return timedelta(minutes=minutes / 3 if severity == Severity.P1 else minutes)
