"""Claim, release, resolve: each one compare-and-set on the state it expects, so exactly one
caller wins, on any number of replicas."""

from __future__ import annotations

from typing import Any

from handoff.core import ServiceCore
from handoff.domain import (
    AlreadyYours,
    ChangeOutcome,
    ClaimOutcome,
    Closed,
    Conflict,
    Done,
    Handoff,
    MovedAway,
    NotAllowed,
    NotFound,
    NotHolder,
    Status,
    Won,
)
from storage import handoffs as q

_OPEN_AGAIN: ClaimOutcome = NotFound()  # sentinel, compared by identity: released between our UPDATE and read


class Claims(ServiceCore):
    # ---- claim ------------------------------------------------------------

    async def claim(
        self, workspace_id: int, handoff_id: int, user: str, *, may_claim: bool = True, queue_id: int | None = None
    ) -> ClaimOutcome:
        """Exactly one caller per open escalation gets Won, on any number of replicas. `queue_id`: the
        queue whose card was clicked; if the escalation has moved on from it, MovedAway."""
        now = self.clock()
        async with self.db.write() as conn:
            outcome: ClaimOutcome = NotFound()
            for _ in range(3):
                row = await q.claim(conn, workspace_id, handoff_id, user, now, queue_id) if may_claim else None
                if row is not None:
                    h = Handoff.from_row(row)
                    await q.add_event(
                        conn,
                        workspace_id=workspace_id,
                        handoff_id=handoff_id,
                        kind="claimed",
                        actor=user,
                        at=now,
                    )
                    await self._queue_change(conn, h, "claimed", user, now)
                    outcome = Won(h)
                    break
                current = await q.get(conn, workspace_id, handoff_id)
                outcome = self._why_not(current, user, may_claim, queue_id)
                if outcome is not _OPEN_AGAIN:
                    break
            if isinstance(outcome, Conflict):
                # Contested claims are a weekly figure: keep each losing click.
                await q.add_event(
                    conn,
                    workspace_id=workspace_id,
                    handoff_id=handoff_id,
                    kind="claim_conflict",
                    actor=user,
                    at=now,
                    data={"winner": outcome.winner},
                )
            elif outcome is _OPEN_AGAIN:
                outcome = NotFound()
        if isinstance(outcome, Won):
            self._committed()
        return outcome

    @staticmethod
    def _why_not(row: Any, user: str, may_claim: bool, queue_id: int | None = None) -> ClaimOutcome:
        if row is None:
            return NotFound()
        h = Handoff.from_row(row)
        if queue_id is not None and h.queue_id != queue_id:
            return MovedAway(h)
        if h.status in (Status.RESOLVED, Status.CANCELLED):
            return Closed(h)
        if h.requester_id == user:
            return NotAllowed("own", h)
        if h.status == Status.CLAIMED and h.claimed_by == user:
            return AlreadyYours(h)
        if not may_claim:
            return NotAllowed("not_senior", h)
        if h.status == Status.CLAIMED:
            assert h.claimed_by is not None and h.claimed_at is not None
            return Conflict(h.claimed_by, h.claimed_at, h)
        # Released again between our UPDATE and our read: try the claim again.
        return _OPEN_AGAIN

    # ---- release / resolve ------------------------------------------------

    async def release(self, workspace_id: int, handoff_id: int, user: str) -> ChangeOutcome:
        now = self.clock()
        async with self.db.write() as conn:
            row = await q.release(conn, workspace_id, handoff_id, user, now)
            if row is None:
                return self._not_changed(await q.get(conn, workspace_id, handoff_id))
            h = Handoff.from_row(row)
            await q.add_event(
                conn, workspace_id=workspace_id, handoff_id=handoff_id, kind="released", actor=user, at=now
            )
            await self._queue_change(conn, h, "released", user, now)
        self._committed()
        return Done(h)

    async def resolve(self, workspace_id: int, handoff_id: int, user: str, note: str) -> ChangeOutcome:
        now = self.clock()
        async with self.db.write() as conn:
            first = await q.mark_first_action(conn, workspace_id, handoff_id, user, now)
            row = await q.resolve(conn, workspace_id, handoff_id, user, note, now)
            if row is None:
                return self._not_changed(await q.get(conn, workspace_id, handoff_id))
            h = Handoff.from_row(row)
            if first:
                await q.add_event(
                    conn,
                    workspace_id=workspace_id,
                    handoff_id=handoff_id,
                    kind="first_action",
                    actor=user,
                    at=now,
                    data={"via": "resolve"},
                )
            await q.add_event(
                conn, workspace_id=workspace_id, handoff_id=handoff_id, kind="resolved", actor=user, at=now
            )
            await self._queue_change(conn, h, "resolved", user, now)
        self._committed()
        return Done(h)

    async def cancel(self, workspace_id: int, handoff_id: int, user: str) -> ChangeOutcome | NotAllowed:
        """The requester withdraws their escalation (open or claimed): everyone's card says it was
        cancelled and by whom; a holder is told in the card's thread."""
        now = self.clock()
        async with self.db.write() as conn:
            row = await q.cancel(conn, workspace_id, handoff_id, user, now)
            if row is None:
                current = await q.get(conn, workspace_id, handoff_id)
                if current is not None and Handoff.from_row(current).requester_id != user:
                    return NotAllowed("not_requester", Handoff.from_row(current))
                return self._not_changed(current)
            h = Handoff.from_row(row)
            await q.add_event(
                conn, workspace_id=workspace_id, handoff_id=handoff_id, kind="cancelled", actor=user, at=now
            )
            await self._queue_change(conn, h, "cancelled", user, now)
        self._committed()
        return Done(h)

    @staticmethod
    def _not_changed(row: Any) -> ChangeOutcome:
        if row is None:
            return NotFound()
        h = Handoff.from_row(row)
        if h.status in (Status.RESOLVED, Status.CANCELLED):
            return Closed(h)
        return NotHolder(h)
