"""Data with a lifetime (the scheduler runs this): after the retention period a closed escalation's
free text is erased and its numbers kept, so old weeks' reports keep their figures; delivered
messages are deleted after a few days, and platform event ids after two, so no table grows with
history. In small batches, each a short transaction, one replica at a time; flat out while the replica
is quiet, otherwise in the gaps between people's requests. Cards already in Slack or Teams
stay as they are: the bot does not edit old messages."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from handoff.core import ServiceCore
from storage import dashboard as sign_ins
from storage import retention as rt

EVENT_IDS_KEPT = timedelta(days=2)  # Slack retries an event for an hour at most
# A batch waits for the replica to have been without people's requests this long: requests come in
# bursts, and batches run back to back meet every request of a burst (each paid for the batch it
# overlapped: the retention bench's claim p50 went 21 -> 29 ms, p99 1.39x).
QUIET_SECONDS = 0.5
# ... for this long at most; then for a gap between requests (as long again at most), so a replica
# that is never quiet still purges, a batch every ten seconds or so (five escalations a second: more
# than any team closes). At a second, batches in the gaps of a steady stream of claims (ten a
# second) still met about one claim in a hundred: the bench's p99 was 1.5x on PostgreSQL, 2.2x on SQLite.
GIVE_WAY_SECONDS = 10.0


@dataclass
class Purged:
    erased: int = 0  # escalations whose text was erased
    delivered: int = 0  # delivered outbox rows deleted
    event_ids: int = 0  # processed event ids forgotten
    sign_ins: int = 0  # the leads' page's links and sessions past their time
    skipped: bool = False  # another replica was purging: nothing done this time
    more: bool = False  # it stopped at its batch limit: there is more to do now

    @property
    def anything(self) -> bool:
        return bool(self.erased or self.delivered or self.event_ids or self.sign_ins)


class Retention(ServiceCore):
    async def purge(
        self,
        *,
        retention_days: int | None,
        outbox_keep_days: int,
        batch: int = 50,
        max_batches: int | None = 40,
        idle: Callable[[], float] | None = None,
        stopping: Callable[[], bool] | None = None,
    ) -> Purged:
        """One run: up to `max_batches` batches of `batch` rows of each kind (None: until done).
        `idle` says how long the replica has been without people's requests (0 while it has some):
        each batch waits for it to be quiet (see _wait_turn). A batch shares the database's CPU and
        WAL with a claim that overlaps it; batches of 500 rows unpaced made the claim p99 1.7-2.1x on
        PostgreSQL, and a claim's commit waits for the WAL a batch wrote before it (3.5 MB for 50
        escalations on a year of history). Once `stopping` says so, it ends after the batch in hand
        (with `more` set)."""
        now = self.clock()
        done = Purged()
        async with self.db.read() as conn:
            workspaces = await rt.workspace_retention(conn)
        for ws, own in workspaces:
            days = own or retention_days
            if not days:
                continue
            before = now - timedelta(days=days)

            async def erase(ws: int = ws, before=before) -> int:  # type: ignore[no-untyped-def]
                async with self.db.write() as conn:
                    if not await rt.take_turn(conn):
                        return -1
                    return await rt.erase_text(conn, await rt.closed_before(conn, ws, before, batch), now)

            n, more = await _batches(erase, batch, max_batches, idle, stopping)
            if n < 0:
                done.skipped = True
                return done
            done.erased += n
            done.more = done.more or more

        keep_until, reports_until = (
            now - timedelta(days=outbox_keep_days),
            now - timedelta(days=rt.REPORT_ROWS_KEPT_DAYS),
        )

        async def prune() -> int:
            async with self.db.write() as conn:
                if not await rt.take_turn(conn):
                    return -1
                return await rt.prune_delivered(conn, keep_until, min(keep_until, reports_until), batch)

        async def forget_events() -> int:
            async with self.db.write() as conn:
                if not await rt.take_turn(conn):
                    return -1
                return await rt.prune_processed_events(conn, now - EVENT_IDS_KEPT, batch)

        async def expired_sign_ins() -> int:
            async with self.db.write() as conn:
                if not await rt.take_turn(conn):
                    return -1
                return await sign_ins.prune(conn, now, batch)

        for work, field in ((prune, "delivered"), (forget_events, "event_ids"), (expired_sign_ins, "sign_ins")):
            n, more = await _batches(work, batch, max_batches, idle, stopping)
            if n < 0:
                done.skipped = True
                return done
            setattr(done, field, n)
            done.more = done.more or more
        return done


async def _batches(  # type: ignore[no-untyped-def]
    work,
    batch: int,
    max_batches: int | None,
    idle: Callable[[], float] | None,
    stopping: Callable[[], bool] | None,
) -> tuple[int, bool]:
    """Batches of `work` until one comes back short: (rows, whether there is more to do now); rows
    -1 when another replica was purging."""
    total = taken = 0
    while max_batches is None or taken < max_batches:
        await _wait_turn(idle, stopping)
        if stopping is not None and stopping():
            break
        n = await work()
        if n < 0:
            return -1, False
        total += n
        taken += 1
        if n < batch:
            return total, False
        await asyncio.sleep(0)  # the bot's own writes go between batches
    return total, True


async def _wait_turn(idle: Callable[[], float] | None, stopping: Callable[[], bool] | None) -> None:
    """Before a batch: wait for the replica to be quiet (QUIET_SECONDS without people's requests), a
    GIVE_WAY_SECONDS at most; then, if it is still answering someone, for that to be done (as long
    again at most): a batch started in a gap does not meet the request that just ended. Not once the
    replica is stopping."""
    if idle is None:
        return
    loop = asyncio.get_running_loop()
    # Polled: `idle` is the replica's own reading (its requests and acknowledged work), no event to wait on.
    for enough in (QUIET_SECONDS, 1e-9):
        until = loop.time() + GIVE_WAY_SECONDS
        while idle() < enough and loop.time() < until:
            if stopping is not None and stopping():
                return
            await asyncio.sleep(0.005)
