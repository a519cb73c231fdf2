"""The delivery worker: leases outbox rows and sends them through the platform's deliverer.

Woken right after every commit that queued something, and otherwise polls,
so rows written by other replicas (or left by a dead one whose lease ran
out) still go out.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta

from bot.delivery.base import Defer, Deliverer, DeliveryResult, GiveUp, Retry, Sent
from bot.logs import log_context
from handoff.service import utcnow
from storage import outbox
from storage.db import Database, StorageUnavailable
from storage.grouped import Grouped
from storage.outbox import OutboxItem

log = logging.getLogger(__name__)

BACKOFF_BASE = 2.0
BACKOFF_CAP = 600.0


def backoff(attempts: int, cap: float = BACKOFF_CAP) -> float:
    """Seconds before attempt n+1: 2, 4, 8 … capped (10 minutes unless set), with jitter so replicas
    spread out."""
    return min(cap, BACKOFF_BASE ** max(1, attempts)) * random.uniform(0.8, 1.2)


class DeliveryWorker:
    def __init__(
        self,
        db: Database,
        deliverer_for: Callable[[int], Awaitable[Deliverer]],
        *,
        owner: str | None = None,
        lease_seconds: float = 30.0,
        max_attempts: int = 10,
        backoff_cap_seconds: float = BACKOFF_CAP,
        poll_seconds: float = 1.0,
        batch: int = 50,
        concurrency: int = 16,
    ):
        self.db = db
        self.deliverer_for = deliverer_for
        self.owner = owner or f"worker-{uuid.uuid4().hex[:12]}"
        self.lease = timedelta(seconds=lease_seconds)
        self.max_attempts = max_attempts
        self.backoff_cap = backoff_cap_seconds
        self.poll_seconds = poll_seconds
        self.batch = batch
        self.concurrency = concurrency
        self._wake = asyncio.Event()
        self._stopping = False
        # What the background loop (`run`) has in hand: rows being leased and sends in flight. `drain`
        # waits for both, so "drained" means nothing is due and nothing is half-sent.
        self._in_flight: set[asyncio.Task[None]] = set()
        self._leasing = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.on_result: Callable[[OutboxItem, DeliveryResult, float], None] | None = None
        self.sent = 0  # sends that went through, for the replica's goodbye
        # Sends that went out are marked sent together: one transaction for all that finish while
        # the previous group is being written.
        self._sent: Grouped[tuple[OutboxItem, Sent], None] = Grouped(self._mark_sent)

    def wake(self) -> None:
        self._wake.set()

    @property
    def in_hand(self) -> int:
        """Sends started and not yet recorded."""
        return len(self._in_flight)

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def hand_back(self) -> int:
        """Give back the leases of sends this worker did not finish (it is stopping), so another
        replica sends them now rather than when the lease runs out."""
        async with self.db.single(urgent=True) as conn:
            return await outbox.hand_back(conn, self.owner)

    async def run(self) -> None:
        """Keep up to `concurrency` sends in flight, topping up as each one finishes, so one
        slow call (a stalled Slack request) never holds up the rest."""
        log.info("delivery worker %s started", self.owner)
        in_flight = self._in_flight

        def finished(task: asyncio.Task[None]) -> None:
            in_flight.discard(task)
            self._note_idle()
            self._wake.set()  # room for more, and the next message in its lane may be due

        try:
            while not self._stopping:
                self._wake.clear()
                room = self.concurrency - len(in_flight)
                leased: list[OutboxItem] = []
                if room > 0:
                    self._leasing += 1
                    self._idle.clear()
                    try:
                        leased = await self._lease(min(room, self.batch))
                    except StorageUnavailable as exc:
                        log.warning("delivery paused, database unavailable: %s", exc)
                    except Exception:
                        log.exception("delivery loop error")
                    finally:
                        self._leasing -= 1
                for item in leased:
                    task = asyncio.create_task(self._send_one(item))
                    in_flight.add(task)
                    task.add_done_callback(finished)
                self._note_idle()
                if leased and len(leased) == room:
                    await asyncio.sleep(0)  # full: let the sends start, then look again
                    continue
                try:
                    # Waited on in this task (not wait_for's own): a wake-up after a claim resumes the
                    # loop in one turn, not three, while a storm fills each turn with requests.
                    async with asyncio.timeout(self.poll_seconds):
                        await self._wake.wait()
                except TimeoutError:
                    pass
        finally:
            # Let what is in hand finish and be recorded; cancelled only if the process insists.
            if in_flight:
                await asyncio.gather(*in_flight, return_exceptions=True)

    async def _lease(self, limit: int) -> list[OutboxItem]:
        # Urgent: what people wait to see (a card changed, a DM) goes before writes still queued.
        async with self.db.single(urgent=True) as conn:
            return await outbox.lease(conn, owner=self.owner, now=utcnow(), lease_for=self.lease, limit=limit)

    async def run_once(self) -> int:
        """Lease one batch and send it all. Returns how many rows were leased."""
        items = await self._lease(self.batch)
        # The lease hands out only the head of each (handoff, kind) lane, so these can all go at once.
        await asyncio.gather(*(self._send_one(item) for item in items))
        return len(items)

    def _note_idle(self) -> None:
        if self._leasing == 0 and not self._in_flight:
            self._idle.set()
        else:
            self._idle.clear()

    async def drain(self, timeout: float = 10.0) -> None:
        """Send until nothing is due, counting what the background loop has in hand too (the demo,
        `report --post`, tests). Raises TimeoutError if that takes longer than `timeout`."""
        async with asyncio.timeout(timeout):
            while True:
                await self._idle.wait()
                if not await self.run_once() and self._idle.is_set():
                    return

    async def _send_one(self, item: OutboxItem) -> None:
        token = log_context.set({"outbox_id": item.id, "kind": item.kind, "workspace": item.workspace_id})
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            try:
                deliverer = await self.deliverer_for(item.workspace_id)
                # Finish well inside the lease, or another replica could take the row while we still
                # hold it; an abandoned attempt is checked for having gone through before a re-send.
                async with asyncio.timeout(self.lease.total_seconds() * 0.7):
                    result = await deliverer.deliver(item)
            except TimeoutError:
                result = Retry(error="no answer within the lease; outcome unknown, will check before re-sending")
            except StorageUnavailable as exc:
                result = Retry(error=f"database unavailable: {exc}")
            except Exception as exc:
                log.exception("delivery of outbox row %s (%s) raised", item.id, item.kind)
                result = Retry(error=f"{type(exc).__name__}: {exc}")
            await self._record(item, result)
            if isinstance(result, Sent):
                self.sent += 1
            if self.on_result is not None:
                self.on_result(item, result, loop.time() - started)
        finally:
            log_context.reset(token)

    async def _mark_sent(self, group: list[tuple[OutboxItem, Sent]]) -> None:
        now = utcnow()
        async with self.db.single() as conn:
            await outbox.complete_many(conn, [(i.id, r.note) for i, r in group], self.owner, now)
            for i, r in group:
                # Version 1 is the card as first posted: every update was queued by a later version.
                if r.rendered_version is not None and r.rendered_version > 1 and i.handoff_id is not None:
                    await outbox.coalesce_card_updates(conn, i.handoff_id, r.rendered_version, now)

    async def _record(self, item: OutboxItem, result: DeliveryResult) -> None:
        now = utcnow()
        try:
            if isinstance(result, Sent):
                await self._sent.add((item, result))
                return
            async with self.db.single() as conn:
                if isinstance(result, Defer):
                    await outbox.retry_later(
                        conn,
                        item.id,
                        self.owner,
                        at=now + timedelta(seconds=result.after),
                        error=result.reason,
                        count_attempt=False,
                    )
                elif isinstance(result, GiveUp) or item.attempts >= self.max_attempts:
                    error = result.error if isinstance(result, GiveUp | Retry) else "gave up"
                    await outbox.give_up(conn, item.id, self.owner, error)
                    if item.kind == "post_card" and item.handoff_id is not None:
                        await outbox.give_up_dependants(conn, item.handoff_id, error)
                    log.error(
                        "outbox row %s (%s) is dead after %s attempt(s): %s",
                        item.id,
                        item.kind,
                        item.attempts,
                        error,
                    )
                else:
                    assert isinstance(result, Retry)
                    wait = result.after if result.after is not None else backoff(item.attempts, self.backoff_cap)
                    await outbox.retry_later(
                        conn, item.id, self.owner, at=now + timedelta(seconds=wait), error=result.error
                    )
                    log.warning(
                        "outbox row %s (%s) attempt %s failed: %s; next try in %.1fs",
                        item.id,
                        item.kind,
                        item.attempts,
                        result.error,
                        wait,
                    )
        except StorageUnavailable as exc:
            # The lease runs out and the row is tried again; it looks before it sends, so nothing doubles.
            log.warning("could not record delivery of outbox row %s: %s", item.id, exc)
        except Exception:  # a failed record must not take the send task down with it; the lease runs out
            log.exception("could not record delivery of outbox row %s", item.id)
