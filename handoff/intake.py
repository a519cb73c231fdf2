"""Taking escalations in: storing one (once per form), the similar past resolutions its card
shows, the thread it came from, and what the platforms report back about its card."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from handoff import similar
from handoff.core import (
    HOME_VIEWERS_WITHIN,
    SIMILAR_BUDGET_SECONDS,
    DuplicateKey,
    ServiceCore,
    home_refresh_row,
    moved_card_row,
)
from handoff.domain import (
    Draft,
    Escalated,
    Handoff,
    Outbound,
    Status,
)
from storage import escalations, outbox, search
from storage import handoffs as q
from storage.grouped import Batched, Grouped

log = logging.getLogger(__name__)


# What a new escalation owes: its card, and the requester's note (queued now so it is first in the
# requester's lane; it waits until the card is up). Kind, and dedupe key with `{id}` for its id.
_OWED = [(Outbound.POST_CARD, "post_card:{id}"), (Outbound.NOTIFY_REQUESTER, "notify:{id}:created")]


def _owed_payloads(requester_id: str) -> list[dict[str, Any]]:
    return [{}, {"what": "created", "actor": requester_id}]


@dataclass(frozen=True)
class _Submission:
    workspace_id: int
    new: escalations.NewEscalation
    at: datetime


class Intake(ServiceCore):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stores: Grouped[_Submission, Any] = Grouped(self._store_group, linger=False)
        self._cards: Grouped[outbox.PostedCard, bool] = Grouped(self._record_cards)
        self._word_counts: Batched[tuple[int, str], int] = Batched(self._count_words)

    async def _record_cards(self, cards: list[outbox.PostedCard]) -> list[bool]:
        async with self.db.autocommit() as conn:
            return await outbox.record_cards_posted(conn, cards, self.clock())

    async def _count_words(self, pairs: list[tuple[int, str]]) -> dict[tuple[int, str], int]:
        async with self.db.read() as conn:
            return await search.count_together(conn, pairs)

    # ---- escalate ---------------------------------------------------------

    async def escalate(
        self, workspace_id: int, requester_id: str, draft: Draft, *, key: str, queue_id: int | None = None
    ) -> Escalated:
        """Store an escalation in `queue_id` (the workspace's default queue for None, or for an id that
        is not one of this workspace's queues) and queue its card. The same key twice stores it once."""
        queue_id = (await self.queue(workspace_id, queue_id)).id  # queue walls are tenant walls
        try:
            return await self._escalate(workspace_id, requester_id, draft, key, queue_id)
        except DuplicateKey:
            async with self.db.read() as conn:
                row = await q.get_by_key(conn, workspace_id, key)
            if row is None:
                raise LookupError(f"workspace {workspace_id} does not exist") from None
            return Escalated(Handoff.from_row(row), created=False)

    async def _escalate(self, workspace_id: int, requester_id: str, draft: Draft, key: str, queue_id: int) -> Escalated:
        now = self.clock()
        values: dict[str, Any] = {
            "status": Status.OPEN.value,
            "severity": draft.severity.value,
            "category": draft.category,
            "summary": draft.summary,
            "details": draft.details,
            "tried": draft.tried,
            "customer": draft.customer,
            "links": draft.links,
            "transcript": draft.transcript,
            "source": draft.source,
            "requester_id": requester_id,
            "requested_senior_id": draft.requested_senior_id,
            "origin_channel": draft.origin_channel,
            "version": 1,
            "queue_id": queue_id,
            "queue_arrived_at": now,
            "moves": 0,
            "created_at": now,
            "updated_at": now,
        }
        # Submissions that arrive together are stored together (`_store_group`).
        new = escalations.NewEscalation(key, values, {"severity": draft.severity.value}, _owed_payloads(requester_id))
        row = await self._stores.add(_Submission(workspace_id, new, now))
        if row is None:
            raise DuplicateKey(key)  # stored already (or no such workspace: escalate() finds out)
        return Escalated(Handoff.from_row(row), created=True)

    async def _store_group(self, group: list[_Submission]) -> list[Any]:
        """The submissions that arrived together, stored together per workspace among them (see
        storage.escalations: one statement in autocommit on PostgreSQL, so the workspace's counter row
        is locked only while it runs and replicas do not queue on it; one write transaction on
        SQLite). None for a form stored already."""
        stored: dict[tuple[int, str], Any] = {}
        for ws in dict.fromkeys(s.workspace_id for s in group):
            mine = [s for s in group if s.workspace_id == ws]
            now = max(s.at for s in mine)
            async with self.db.single() as conn:
                owed = escalations.Owed("created", _OWED, home_refresh_row(ws, now), now - HOME_VIEWERS_WITHIN, now)
                rows = await escalations.store(conn, ws, [s.new for s in mine], owed)
            stored.update({(ws, key): row for key, row in rows.items()})
        if stored:  # something new to send: wake the worker (a group of re-submissions queued nothing)
            self._committed()
        # A key given twice in one group is stored for the first; the second is told it was stored.
        return [stored.pop((s.workspace_id, s.new.key), None) for s in group]

    # ---- similar past resolutions, the thread an escalation came from ---------

    async def similar_resolved(self, workspace_id: int, h: Handoff, limit: int = 3) -> list[dict[str, Any]]:
        """Up to `limit` resolved escalations of this workspace that look like `h`, best first."""
        terms = similar.query_terms(h.summary, h.details, h.tried)
        if self.db.is_postgres:
            # The words of the cards being drawn at the same moment are counted together: one round
            # trip for them all (one per card cost ~6% of an escalation's CPU in bench/intake.py).
            head = search.words(terms)
            if len(head) < 2:
                return []
            counts = await self._word_counts.get_all([(workspace_id, w) for w in head])
            planned = search.choose(head, [n or 0 for n in counts])
        else:
            # Which words to pair is a quick read on the loop; only a search that will run goes to
            # SQLite's thread (the hop cost a tenth of an escalation's CPU when there was nothing to find).
            async with self.db.read() as conn:
                planned = await search.plan(conn, workspace_id, terms)
        if planned is None:
            return []
        async with self.db.read(heavy=True) as conn:
            candidates = await search.resolved_candidates(conn, workspace_id, planned, exclude_id=h.id)
        return [m.as_json() for m in similar.pick(terms, candidates, limit)]

    async def with_similar(self, h: Handoff, *, budget: float = SIMILAR_BUDGET_SECONDS) -> Handoff:
        """The handoff with its similar resolutions: those kept when its card was posted, or found now
        (to be kept by `card_posted`). The card does not wait longer than `budget` for them: past
        it, the card goes out without."""
        if h.similar is not None:
            return h
        try:
            async with asyncio.timeout(budget):
                found = await self.similar_resolved(h.workspace_id, h)
        except TimeoutError:
            log.warning("%s: similar resolutions took over %.1f s; the card goes out without them", h.ref, budget)
            return h
        return replace(h, similar=found)

    async def record_thread(
        self, h: Handoff, transcript: list[dict[str, Any]] | None, source: dict[str, Any]
    ) -> Handoff:
        async with self.db.write() as conn:
            await q.set_transcript(conn, h.workspace_id, h.id, transcript, source)
        return replace(h, transcript=transcript, source=source)

    # ---- what the platforms report back ----------------------------------

    async def card_failure(self, handoff_id: int) -> str | None:
        """Why a handoff's card will not be posted (its post died), or None."""
        async with self.db.read() as conn:
            return await outbox.card_failure(conn, handoff_id)

    async def channel_ready(self, workspace_id: int) -> int:
        """A channel was set up in this workspace: what was waiting for one goes out now."""
        async with self.db.single() as conn:
            woken = await outbox.wake_workspace(conn, workspace_id, self.clock())
        if woken:
            self._committed()
        return woken

    async def card_posted(
        self,
        workspace_id: int,
        handoff_id: int,
        *,
        channel: str,
        ref: str,
        url: str | None,
        similar: list[dict[str, Any]] | None = None,
        moves: int | None = None,
    ) -> bool:
        """Remember the card's place (and the similar resolutions it shows), once, and release the
        messages that were waiting for it. `moves`: the move count the card was drawn with; if the
        escalation moved on meanwhile (a senior moved it the moment it appeared), the card is not
        recorded, and it is changed to say where the escalation went, as a card moved later is."""
        now = self.clock()
        if self.db.is_postgres:
            # Cards that went out together are recorded together: one statement for them all.
            card = outbox.PostedCard(workspace_id, handoff_id, channel, ref, url, similar, moves)
            first = bool(await self._cards.add(card))
        else:
            async with self.db.write() as conn:
                first = await q.set_card(conn, workspace_id, handoff_id, channel, ref, url, similar, moves)
                if first:
                    await q.add_event(
                        conn,
                        workspace_id=workspace_id,
                        handoff_id=handoff_id,
                        kind="posted",
                        actor=None,
                        at=now,
                        data={"channel": channel, "ref": ref},
                    )
                    await outbox.wake_waiting(conn, handoff_id, now)
        if first:
            self._committed()
        elif moves is not None:
            await self._left_behind(workspace_id, handoff_id, moves, channel, ref, now)
        return first

    async def _left_behind(
        self, workspace_id: int, handoff_id: int, moves: int, channel: str, ref: str, now: Any
    ) -> None:
        """A card posted in a queue the escalation had already left: queue the change that says
        where it went (the move could not, as the card's place was not known yet)."""
        async with self.db.write() as conn:
            row = await q.get(conn, workspace_id, handoff_id)
            if row is None or row._mapping["moves"] == moves:
                return  # not moved: the card was simply recorded before (a repeated post)
            moved = [e for e in await q.events(conn, workspace_id, handoff_id) if e._mapping["kind"] == "moved"]
            if len(moved) <= moves:
                return
            e = moved[moves]._mapping  # the move away from the queue this card was drawn for
            data = e["data"] or {}
            common = {
                "workspace_id": workspace_id,
                "handoff_id": handoff_id,
                "handoff_version": row._mapping["version"],
            }
            said = {"what": "moved", "actor": e["actor"], "to": data.get("to_name", ""), "note": data.get("note", "")}
            change = moved_card_row(common, moves + 1, said, channel, ref, data.get("from_name", ""))
            await outbox.enqueue_many(conn, [change], now)
        self._committed()
