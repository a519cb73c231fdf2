"""Timed work, in every replica: reminders for unclaimed escalations and the weekly post.

Every replica runs this loop; the database decides who does what (the dedupe keys of the
outbox and the weekly_reports table), so three replicas due at the same moment post once.
"""

from __future__ import annotations

import asyncio
import logging

from bot.config import Settings
from handoff.service import HandoffService
from storage.db import StorageUnavailable

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(self, service: HandoffService, settings: Settings, *, every_seconds: float = 20.0):
        self.service = service
        self.settings = settings
        self.every = every_seconds
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def tick(self) -> None:
        s = self.settings
        n = await self.service.queue_reminders(
            reminder_minutes=s.reminder_minutes, lead_alert_minutes=s.lead_alert_minutes
        )
        if n:
            log.info("queued %d reminder(s)", n)
        for ws, week in await self.service.queue_weekly_reports(
            weekday=s.report_weekday, at=s.report_time, timezone=s.timezone
        ):
            log.info("weekly report for week of %s queued", week, extra={"workspace": ws})

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.tick()
            except StorageUnavailable as exc:
                log.warning("scheduler skipped a beat, database unavailable: %s", exc)
            except Exception:
                log.exception("scheduler error")
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=self.every)
            except TimeoutError:
                pass
