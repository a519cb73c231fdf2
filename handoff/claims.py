"""Claim, release, resolve: each one compare-and-set on the state it expects, so exactly one
caller wins, on any number of replicas."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
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
from storage.grouped import Grouped

_OPEN_AGAIN: ClaimOutcome = NotFound()  # sentinel, compared by identity: released between our UPDATE and read
_UNREAD = object()  # a group has not read the card's row yet (None: read, and there is no such card)


@dataclass(frozen=True, slots=True)
class _ClaimClick:
    workspace_id: int
    handoff_id: int
    user: str
    may_claim: bool
    queue_id: int | None
    at: datetime


class Claims(ServiceCore):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._claims: Grouped[_ClaimClick, ClaimOutcome] = Grouped(self._claim_group, linger=False)

    # ---- claim ------------------------------------------------------------

    async def claim(
        self, workspace_id: int, handoff_id: int, user: str, *, may_claim: bool = True, queue_id: int | None = None
    ) -> ClaimOutcome:
        """Exactly one caller per open escalation gets Won, on any number of replicas. `queue_id`: the
        queue whose card was clicked; if the escalation has moved on from it, MovedAway.

        Clicks that arrive together on one card are decided together, in the order they arrived, in
        one transaction (`_claim_card`): two hundred seniors pressing Claim at once cost a handful of
        transactions, and the card's change is not queued behind a transaction per losing click."""
        outcome = await self._claims.add(_ClaimClick(workspace_id, handoff_id, user, may_claim, queue_id, self.clock()))
        assert outcome is not None
        return outcome

    async def _claim_group(self, clicks: list[_ClaimClick]) -> list[ClaimOutcome | BaseException]:
        # One transaction per card, so a group holds the same row locks one click did (one card's
        # row, and what its single winner writes) and cannot deadlock with another replica's group.
        cards: dict[tuple[int, int], list[int]] = {}
        for i, click in enumerate(clicks):
            cards.setdefault((click.workspace_id, click.handoff_id), []).append(i)
        if len(cards) == 1:  # a storm on one card: no task in between
            return list(await self._claim_card(clicks))
        results: list[ClaimOutcome | BaseException] = [NotFound()] * len(clicks)
        decided = await asyncio.gather(
            *(self._claim_card([clicks[i] for i in indexes]) for indexes in cards.values()), return_exceptions=True
        )
        for indexes, outcomes in zip(cards.values(), decided, strict=True):
            for n, i in enumerate(indexes):
                results[i] = outcomes if isinstance(outcomes, BaseException) else outcomes[n]
        for outcome in decided:
            if isinstance(outcome, BaseException) and not isinstance(outcome, Exception):
                raise outcome
        return results

    async def _claim_card(self, clicks: list[_ClaimClick]) -> list[ClaimOutcome]:
        """The clicks on one card, in arrival order, in one transaction. The claim statement is the
        compare-and-set, as for a single click; once the card is known not to be open (this
        transaction claimed it, or read it claimed or closed) a later click in the group is answered
        from that row rather than by running a statement it cannot win."""
        outcomes: list[ClaimOutcome] = []
        conflicts: list[dict[str, Any]] = []
        won = False
        async with self.db.write() as conn:
            known: Any = _UNREAD
            for click in clicks:
                outcome: ClaimOutcome = NotFound()
                for _ in range(3):
                    row = None
                    if click.may_claim and (known is _UNREAD or (known is not None and known.status == Status.OPEN)):
                        row = await q.claim(
                            conn, click.workspace_id, click.handoff_id, click.user, click.at, click.queue_id
                        )
                        if row is None:
                            known = _UNREAD  # someone else has it, or it moved: read what it is now
                    if row is not None:
                        known = row
                        h = Handoff.from_row(row)
                        await q.add_event(
                            conn,
                            workspace_id=click.workspace_id,
                            handoff_id=click.handoff_id,
                            kind="claimed",
                            actor=click.user,
                            at=click.at,
                        )
                        await self._queue_change(conn, h, "claimed", click.user, click.at)
                        outcome, won = Won(h), True
                        break
                    if known is _UNREAD:
                        known = await q.get(conn, click.workspace_id, click.handoff_id)
                    outcome = self._why_not(known, click.user, click.may_claim, click.queue_id)
                    if outcome is not _OPEN_AGAIN:
                        break
                    known = _UNREAD  # released between our UPDATE and our read: try again
                if isinstance(outcome, Conflict):
                    # Contested claims are a weekly figure: keep each losing click.
                    conflicts.append(
                        {
                            "workspace_id": click.workspace_id,
                            "handoff_id": click.handoff_id,
                            "kind": "claim_conflict",
                            "actor": click.user,
                            "at": click.at,
                            "data": {"winner": outcome.winner},
                        }
                    )
                elif outcome is _OPEN_AGAIN:
                    outcome = NotFound()
                outcomes.append(outcome)
            await q.add_events(conn, conflicts)
        if won:
            self._committed()
        return outcomes

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
