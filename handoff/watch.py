"""What whoever runs the bot watches, read from the database when metrics are scraped: the queues'
load (open escalations by queue and severity, the oldest unclaimed, when each would alert the
leads), the outbox's backlog, and whether last week's reports went out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from handoff.core import ServiceCore
from handoff.domain import Severity
from handoff.schedule import last_due, reminder_after, week_bounds
from storage import gauges
from storage import handoffs as q

# The label of the workspace-wide weekly report (a queue's own report carries the queue's name).
WHOLE_WORKSPACE = "(workspace)"


@dataclass(frozen=True)
class QueueLoad:
    """One queue name and severity, across workspaces (a label per workspace would be unbounded)."""

    queue: str
    severity: str
    unclaimed: int
    claimed: int
    oldest_unclaimed: datetime | None
    lead_alert_after: timedelta  # the soonest any of those queues alerts its leads at this severity


@dataclass(frozen=True)
class ReportsDue:
    due_at: datetime  # when the latest weekly report was due
    posted: dict[str, datetime | None]  # by queue label: when that week's report went out, None if not yet


class Watch(ServiceCore):
    async def outbox_state(self) -> gauges.OutboxState:
        async with self.db.read() as conn:
            return await gauges.outbox_state(conn)

    async def queue_load(self, *, lead_alert_minutes: int) -> list[QueueLoad]:
        async with self.db.read() as conn:
            rows = await gauges.open_escalations(conn)
        merged: dict[tuple[str, str], dict[str, object]] = {}
        for ws, queue_id, severity, status, count, earliest in rows:
            queue = await self.queue(ws, queue_id)  # kept for QUEUES_TTL: no read per scrape
            after = reminder_after(Severity(severity), queue.lead_alert_minutes or lead_alert_minutes)
            entry = merged.setdefault(
                (queue.name, severity), {"unclaimed": 0, "claimed": 0, "oldest": None, "after": after}
            )
            entry["after"] = min(after, entry["after"])  # type: ignore[type-var]
            if status == "open":
                entry["unclaimed"] = int(entry["unclaimed"]) + count  # type: ignore[call-overload]
                oldest = entry["oldest"]
                entry["oldest"] = earliest if oldest is None or earliest < oldest else oldest  # type: ignore[operator]
            else:
                entry["claimed"] = int(entry["claimed"]) + count  # type: ignore[call-overload]
        return [
            QueueLoad(
                queue=name,
                severity=severity,
                unclaimed=int(e["unclaimed"]),  # type: ignore[call-overload]
                claimed=int(e["claimed"]),  # type: ignore[call-overload]
                oldest_unclaimed=e["oldest"],  # type: ignore[arg-type]
                lead_alert_after=e["after"],  # type: ignore[arg-type]
            )
            for (name, severity), e in sorted(merged.items())
        ]

    async def reports_due(self, *, weekday: str, at: time, timezone: str) -> ReportsDue:
        """The latest due week's reports (the workspace's, and each queue's with a leads channel of its
        own), and when each went out: the scheduler queues them with these keys."""
        tz = ZoneInfo(timezone)
        due_at, week = last_due(self.clock(), weekday, at, tz)
        _start, week_end = week_bounds(week, tz)
        async with self.db.read() as conn:
            workspace_ids = await q.workspaces_created_before(conn, week_end)
        keys: dict[str, str] = {}
        for ws in workspace_ids:
            keys[f"weekly_report:{ws}:{week.isoformat()}"] = WHOLE_WORKSPACE
            for queue in await self.queues(ws):
                if not queue.is_default and queue.leads_channel:
                    keys[f"weekly_report:{ws}:{week.isoformat()}:q{queue.id}"] = queue.name
        async with self.db.read() as conn:
            sent = await gauges.sent_at(conn, list(keys))
        posted: dict[str, datetime | None] = {}
        for key, label in keys.items():
            # Several workspaces under one label: posted once all of theirs are, at the last of them.
            when, before = sent.get(key), posted.get(label)
            if label not in posted:
                posted[label] = when
            elif before is not None:
                posted[label] = None if when is None else max(before, when)
        return ReportsDue(due_at=due_at, posted=posted)
