"""Timed work, in every replica: reminders for unclaimed escalations and the weekly post; beside
them, retention.

Every replica runs this loop; the database decides who does what (the dedupe keys of the
outbox and the weekly_reports table), so three replicas due at the same moment post once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from bot.config import Settings
from bot.metrics import Metrics
from handoff.service import HandoffService
from storage.db import StorageUnavailable

log = logging.getLogger(__name__)


# Retention runs this often; while a run stops at its batch limit (a backlog) the next follows at once.
PURGE_EVERY_SECONDS = 600.0


class Scheduler:
    def __init__(
        self,
        service: HandoffService,
        settings: Settings,
        *,
        every_seconds: float = 20.0,
        metrics: Metrics | None = None,
        idle: Callable[[], float] | None = None,
    ):
        self.service = service
        self.settings = settings
        self.every = every_seconds
        self.metrics = metrics
        self.idle = idle  # how long this replica has been without people's requests (retention waits)
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

    async def purge(self) -> bool:
        """Erase what is past its retention, delete what was delivered long enough ago: log and count
        it. Returns whether there is more to do now."""
        s = self.settings
        done = await self.service.purge(
            retention_days=s.retention_days,
            outbox_keep_days=s.outbox_keep_days,
            idle=self.idle,
            stopping=self._stopping.is_set,
        )
        if not done.anything:
            return done.more
        log.info(
            "retention: erased the text of %d escalation(s) closed over %s day(s) ago; deleted %d message(s) "
            "delivered over %d day(s) ago, %d platform event id(s) and %d expired sign-in(s) to the leads' page",
            done.erased,
            s.retention_days or "their workspace's",
            done.delivered,
            s.outbox_keep_days,
            done.event_ids,
            done.sign_ins,
        )
        if self.metrics is not None:
            for what, n in (
                ("escalation_text", done.erased),
                ("delivered_messages", done.delivered),
                ("event_ids", done.event_ids),
                ("sign_ins", done.sign_ins),
            ):
                if n:
                    self.metrics.retention.labels(what).inc(n)
        return done.more

    async def run(self) -> None:
        """The ticks, and retention in a task of its own: a backlog's runs wait for quiet moments
        (minutes under steady traffic), and reminders must not wait for them."""
        purging = asyncio.create_task(self._purging(), name="retention")
        try:
            while not self._stopping.is_set():
                try:
                    await self.tick()
                except StorageUnavailable as exc:
                    log.warning("scheduler skipped a beat, database unavailable: %s", exc)
                except Exception:
                    log.exception("scheduler error")
                await self._pause(self.every)
        finally:
            if not self._stopping.is_set():
                purging.cancel()  # cancelled without being told to stop: retention would wait on
            await asyncio.gather(purging, return_exceptions=True)  # told: it stops between batches

    async def _purging(self) -> None:
        # A tick after the start: a replica's first moments (its first requests, cold caches) are not
        # the purge's, and whoever ran the replica before it may still be finishing a batch.
        await self._pause(self.every)
        while not self._stopping.is_set():
            more = False
            try:
                more = await self.purge()
            except StorageUnavailable as exc:
                log.warning("retention skipped a run, database unavailable: %s", exc)
            except Exception:
                log.exception("retention error")
            if not more:
                await self._pause(PURGE_EVERY_SECONDS)

    async def _pause(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
        except TimeoutError:
            pass
