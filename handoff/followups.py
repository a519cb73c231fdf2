"""What follows an escalation: the holder's first action, reminders and lead alerts, the weekly
report, notices."""

from __future__ import annotations

from datetime import date, time
from zoneinfo import ZoneInfo

from handoff.core import (
    ServiceCore,
)
from handoff.domain import (
    Handoff,
    Outbound,
    Severity,
)
from handoff.schedule import last_due, reminder_after, week_bounds
from storage import handoffs as q
from storage import outbox
from storage import queues as qs


class FollowUps(ServiceCore):
    # ---- first action ------------------------------------------------------

    async def first_reply(
        self, workspace_id: int, *, channel: str, thread_ref: str, user: str, event_id: str | None, source: str
    ) -> str:
        """A reply in a card's thread. If it is the claimer's first, it is the escalation's first action.

        Returns what happened: "recorded", "duplicate" (this event was handled before),
        "not_a_card", or "ignored" (not the claimer, or not their first).
        The de-duplication and the change are one transaction, so a retried event counts once
        and a failed one is not lost.
        """
        now = self.clock()
        async with self.db.write() as conn:
            if event_id is not None and not await q.mark_processed(conn, source, event_id, now):
                return "duplicate"
            row = await q.get_by_card(conn, workspace_id, channel, thread_ref)
            if row is None:
                return "not_a_card"
            h = Handoff.from_row(row)
            if not await q.mark_first_action(conn, workspace_id, h.id, user, now):
                return "ignored"
            await q.add_event(
                conn,
                workspace_id=workspace_id,
                handoff_id=h.id,
                kind="first_action",
                actor=user,
                at=now,
                data={"via": "thread_reply"},
            )
        return "recorded"

    async def seen_event(self, source: str, event_id: str) -> bool:
        async with self.db.read() as conn:
            return await q.is_processed(conn, source, event_id)

    # ---- reminders and the weekly report -----------------------------------

    async def queue_reminders(self, *, reminder_minutes: int, lead_alert_minutes: int) -> int:
        """Chase open escalations nobody has claimed: the seniors after `reminder_minutes`, the
        leads after `lead_alert_minutes` (a third of each for P1), or the minutes their queue sets,
        counted from when they arrived in their queue (a move starts the clock again). Each happens
        once per escalation and queue however many replicas run this at the same moment. Returns
        how many were queued."""
        now = self.clock()
        queued = 0
        minutes_of: dict[tuple[int, int | None], tuple[int, int]] = {}
        for kind, event, default in (
            (Outbound.REMIND_SENIORS, "reminded", reminder_minutes),
            (Outbound.ALERT_LEADS, "lead_alerted", lead_alert_minutes),
        ):
            # Queues may chase sooner than the default: look at everything older than the soonest.
            async with self.db.read() as conn:
                soonest = min([default, *await qs.shortest_minutes(conn, event)])
                candidates = await q.open_without_event(
                    conn, before=now - reminder_after(Severity.P1, soonest), kind=event
                )
            for row in candidates:
                h = Handoff.from_row(row)
                key = (h.workspace_id, h.queue_id)
                if key not in minutes_of:
                    queue = await self.queue(h.workspace_id, h.queue_id)
                    minutes_of[key] = (
                        queue.reminder_minutes or reminder_minutes,
                        queue.lead_alert_minutes or lead_alert_minutes,
                    )
                minutes = minutes_of[key][0 if event == "reminded" else 1]
                arrived = h.queue_arrived_at or h.created_at
                if arrived > now - reminder_after(h.severity, minutes):
                    continue
                async with self.db.write() as conn:
                    fresh = await outbox.enqueue(
                        conn,
                        workspace_id=h.workspace_id,
                        handoff_id=h.id,
                        handoff_version=h.version,
                        kind=kind,
                        # Once per escalation and queue it arrived in (the first arrival keeps the old key).
                        dedupe_key=f"{event}:{h.id}" + (f":m{h.moves}" if h.moves else ""),
                        payload={
                            "minutes": minutes if h.severity != Severity.P1 else round(minutes / 3, 1),
                            "moves": h.moves,  # a reminder for the queue it is in now: not after a move
                        },
                        now=now,
                    )
                    if fresh:
                        await q.add_event(
                            conn,
                            workspace_id=h.workspace_id,
                            handoff_id=h.id,
                            kind=event,
                            actor=None,
                            at=now,
                            data={"after_minutes": (now - arrived).total_seconds() / 60, "queue": h.queue_id},
                        )
                queued += int(fresh)
        if queued:
            self._committed()
        return queued

    async def queue_weekly_reports(self, *, weekday: str, at: time, timezone: str) -> list[tuple[int, date]]:
        """Queue each workspace's report for the week that ended before the latest scheduled
        moment, once per workspace and week, even from several replicas, and late if the bot
        was down when it was due. A queue with a leads channel of its own gets its own report there."""
        now = self.clock()
        tz = ZoneInfo(timezone)
        _slot, week = last_due(now, weekday, at, tz)
        _start, week_end = week_bounds(week, tz)
        queued: list[tuple[int, date]] = []
        async with self.db.read() as conn:
            workspace_ids = await q.workspaces_created_before(conn, week_end)
        for ws in workspace_ids:
            own = [x for x in await self.queues(ws) if not x.is_default and x.leads_channel]
            async with self.db.write() as conn:
                if not await q.claim_weekly_report(conn, ws, week, now):
                    continue
                rows = [
                    {
                        "workspace_id": ws,
                        "kind": Outbound.WEEKLY_REPORT,
                        "dedupe_key": f"weekly_report:{ws}:{week.isoformat()}",
                        "payload": {"week": week.isoformat()},
                    },
                    *(
                        {
                            "workspace_id": ws,
                            "kind": Outbound.WEEKLY_REPORT,
                            "dedupe_key": f"weekly_report:{ws}:{week.isoformat()}:q{x.id}",
                            "payload": {"week": week.isoformat(), "queue": x.id},
                        }
                        for x in own
                    ),
                ]
                await outbox.enqueue_many(conn, rows, now)
            queued.append((ws, week))
        if queued:
            self._committed()
        return queued

    async def queue_report_now(self, workspace_id: int, week: date) -> str:
        """`escalation-bot report --post`: post a week's report now, whether or not it went out before.
        Returns the outbox key, to follow what became of it."""
        now = self.clock()
        key = f"weekly_report:{workspace_id}:{week.isoformat()}:manual:{now.isoformat()}"
        async with self.db.write() as conn:
            await outbox.enqueue(
                conn,
                workspace_id=workspace_id,
                kind=Outbound.WEEKLY_REPORT,
                dedupe_key=key,
                payload={"week": week.isoformat()},
                now=now,
            )
        self._committed()
        return key

    async def outbox_row(self, dedupe_key: str) -> outbox.OutboxItem | None:
        async with self.db.read() as conn:
            return await outbox.by_key(conn, dedupe_key)

    async def queue_notice(self, workspace_id: int, notice: str) -> bool:
        """Tell a workspace's leads something once, ever (each platform words it): True if queued now."""
        now = self.clock()
        async with self.db.single() as conn:
            fresh = await outbox.enqueue(
                conn,
                workspace_id=workspace_id,
                kind=Outbound.NOTICE,
                dedupe_key=f"notice:{notice}:{workspace_id}",
                payload={"notice": notice},
                now=now,
            )
        if fresh:
            self._committed()
        return fresh
