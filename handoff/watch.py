"""What whoever runs the bot watches, read from the database when metrics are scraped: the queues'
load (open escalations by queue and severity, the oldest unclaimed, when each would alert the
leads), the outbox's backlog, and whether last week's reports went out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from handoff.core import ServiceCore
from handoff.domain import Queue, Severity
from handoff.schedule import last_due, reminder_after, week_bounds
from storage import gauges
from storage import handoffs as q
from storage import queues as qs

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

    async def _queues_of(self, workspace_ids: set[int]) -> dict[int, list[Queue]]:
        """Every queue of these workspaces, in one statement however many there are (the per-workspace
        cache would read each on its own when it runs out)."""
        async with self.db.read() as conn:
            rows = await qs.of_workspaces(conn, sorted(workspace_ids))
        found: dict[int, list[Queue]] = {}
        for row in rows:
            queue = Queue.from_row(row)
            found.setdefault(queue.workspace_id, []).append(queue)
        return found

    async def queue_load(self, *, lead_alert_minutes: int) -> list[QueueLoad]:
        async with self.db.read() as conn:
            rows = await gauges.open_escalations(conn)
        queues = await self._queues_of({ws for ws, *_ in rows})
        merged: dict[tuple[str, str], _Load] = {}
        for ws, queue_id, severity, status, count, earliest in rows:
            mine = queues.get(ws, [])
            queue = next((x for x in mine if x.id == queue_id), mine[0] if mine else None)
            name = queue.name if queue is not None else qs.DEFAULT_QUEUE  # none made yet: the default's name
            minutes = (queue.lead_alert_minutes if queue is not None else None) or lead_alert_minutes
            entry = merged.setdefault((name, severity), _Load())
            entry.add(status, count, earliest, reminder_after(Severity(severity), minutes))
        return [
            QueueLoad(
                queue=name,
                severity=severity,
                unclaimed=e.unclaimed,
                claimed=e.claimed,
                oldest_unclaimed=e.oldest,
                lead_alert_after=e.after or timedelta(0),
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
        queues = await self._queues_of(set(workspace_ids))
        keys: dict[str, str] = {}
        for ws in workspace_ids:
            keys[f"weekly_report:{ws}:{week.isoformat()}"] = WHOLE_WORKSPACE
            for queue in queues.get(ws, []):
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


@dataclass
class _Load:
    unclaimed: int = 0
    claimed: int = 0
    oldest: datetime | None = None
    after: timedelta | None = None

    def add(self, status: str, count: int, earliest: datetime, after: timedelta) -> None:
        self.after = after if self.after is None else min(self.after, after)
        if status == "claimed":
            self.claimed += count
            return
        self.unclaimed += count
        self.oldest = earliest if self.oldest is None else min(self.oldest, earliest)
