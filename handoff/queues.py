"""Queues: which one an escalation goes to, keeping them, and moving an escalation between them.

A move is a compare-and-set on the state the mover saw (its version), like a claim on "open": a
claim and a move made at the same moment leave exactly one outcome. It keeps the number, the
context, the thread transcript and the audit trail; the escalation is open in the new queue, its
holder (if any) released, and it arrived there now (time to claim is measured from then).
"""

from __future__ import annotations

from typing import Any

from handoff.core import ServiceCore, moved_card_row
from handoff.domain import (
    Changed,
    Closed,
    Handoff,
    Moved,
    MoveOutcome,
    NotAllowed,
    NotFound,
    Outbound,
    Queue,
    Status,
)
from storage import handoffs as q
from storage import outbox
from storage import queues as qs

QUEUE_NAME_MAX = 80
# A queue's other names, joined by ", ", as the admin's form shows and takes them in one field.
QUEUE_ALIASES_MAX = 200


def queue_name_problem(name: str) -> str | None:
    """Why `name` cannot name a queue, or None. The same rule for the CLI, Slack's form and Teams."""
    if not name.strip() or len(name.strip()) > QUEUE_NAME_MAX or ":" in name:
        return f"A name of 1 to {QUEUE_NAME_MAX} characters, without a colon."
    return None


def clean_aliases(names: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Other names as stored: comma-separated (or a list), trimmed, lower case, each once."""
    parts = names.split(",") if isinstance(names, str) else names
    return tuple(dict.fromkeys(a.strip().lower() for a in parts if a.strip()))


def aliases_problem(aliases: tuple[str, ...]) -> str | None:
    """Why these other names cannot be kept, or None: the form must be able to show and save them."""
    if any(len(a) > QUEUE_NAME_MAX or ":" in a for a in aliases):
        return f"Each name up to {QUEUE_NAME_MAX} characters, without a colon."
    joined = len(", ".join(aliases))
    if joined > QUEUE_ALIASES_MAX:
        return (
            f"The other names together, with commas, are at most {QUEUE_ALIASES_MAX} characters (these are {joined})."
        )
    return None


def route(queues: list[Queue], *, channel: str | None, text: str) -> tuple[Queue, str]:
    """The queue an escalation goes to, and its text without a queue prefix: a queue's name or alias
    before a colon (`billing: customer can't pay`), else the queue serving the channel it was made
    in, else the default queue (the first)."""
    head, colon, rest = text.partition(":")
    if colon and head.strip() and len(head) <= QUEUE_NAME_MAX:
        for queue in queues:
            if queue.answers_to(head):
                return queue, rest.strip()
    if channel:
        for queue in queues:
            if channel in queue.serves:
                return queue, text
    return queues[0], text


class Queues(ServiceCore):
    # ---- keeping them -------------------------------------------------------

    async def open_in_queue(self, workspace_id: int, queue_id: int) -> list[Handoff]:
        """The open and claimed escalations of a queue, oldest first."""
        async with self.db.read() as conn:
            return [Handoff.from_row(r) for r in await qs.open_in(conn, workspace_id, queue_id)]

    async def add_queue(self, workspace_id: int, queue: Queue) -> Queue | None:
        """A new queue (None if one of that name exists)."""
        await self.queues(workspace_id)  # the default comes first
        async with self.db.write() as conn:
            new_id = await qs.add(conn, workspace_id, _values(queue), self.clock())
        self._queues.forget(workspace_id)
        return None if new_id is None else await self.queue(workspace_id, new_id)

    async def edit_queue(self, workspace_id: int, queue: Queue) -> bool:
        async with self.db.write() as conn:
            changed = await qs.change(conn, workspace_id, queue.id, _values(queue))
        self._queues.forget(workspace_id)
        return changed

    async def remove_queue(self, workspace_id: int, queue_id: int, *, move_to: int | None, user: str) -> int | None:
        """Remove a queue, moving what is open or claimed in it to `move_to` first. Returns how many
        escalations moved, or None when it could not be removed (the default queue; open escalations
        and nowhere to move them)."""
        found = {x.id: x for x in await self.queues(workspace_id)}
        gone = found.get(queue_id)
        target = found.get(move_to) if move_to is not None else None
        if gone is None or gone.is_default or (target is not None and target.id == gone.id):
            return None
        now = self.clock()
        moved = 0
        async with self.db.write() as conn:
            for row in await qs.open_in(conn, workspace_id, gone.id):
                if target is None:
                    return None
                h = Handoff.from_row(row)
                handovers = [*(h.handovers or []), _handover(gone, target, user, "", None, now)][-HANDOVERS_KEPT:]
                after = await qs.move(conn, workspace_id, h.id, target.id, h.version, now, handovers)
                if after is not None:
                    await self._queue_move(conn, Handoff.from_row(after), h, gone, target, user, "", None, now)
                    moved += 1
            if not await qs.remove(conn, workspace_id, gone.id):
                return None
        self._queues.forget(workspace_id)
        self._committed()
        return moved

    # ---- moving an escalation -----------------------------------------------

    async def move(
        self,
        workspace_id: int,
        handoff_id: int,
        user: str,
        *,
        to_queue_id: int,
        expected_version: int,
        note: str,
        may_move: bool,
        tried: str | None = None,
    ) -> MoveOutcome:
        """Move an escalation to another queue if it is still as `user` saw it (`expected_version`).
        `may_move`: the platform's answer to "is this a senior or lead of its queue, or its holder".
        `tried`: the holder's own notes when they escalate further."""
        found = {x.id: x for x in await self.queues(workspace_id)}
        now = self.clock()
        async with self.db.write() as conn:
            row = await q.get(conn, workspace_id, handoff_id)
            if row is None:
                return NotFound()
            h = Handoff.from_row(row)
            if h.status in (Status.RESOLVED, Status.CANCELLED):
                return Closed(h)
            if h.version != expected_version:
                return Changed(h)  # first: who may move it is judged on the state the mover saw
            if not may_move:
                return NotAllowed("not_senior", h)
            source = found.get(h.queue_id) or next(iter(found.values()))
            target = found.get(to_queue_id)
            if target is None:
                return NotFound()
            if target.id == source.id:
                return NotAllowed("same_queue", h)
            handovers = [*(h.handovers or []), _handover(source, target, user, note, tried, now)][-HANDOVERS_KEPT:]
            moved = await qs.move(conn, workspace_id, handoff_id, target.id, expected_version, now, handovers)
            if moved is None:
                return Changed(Handoff.from_row(await q.get(conn, workspace_id, handoff_id)))
            after = Handoff.from_row(moved)
            await self._queue_move(conn, after, h, source, target, user, note, tried, now)
        self._committed()
        return Moved(after, source, target, h.claimed_by)

    async def _queue_move(
        self,
        conn: Any,
        h: Handoff,
        before: Handoff,
        source: Queue,
        target: Queue,
        user: str,
        note: str,
        tried: str | None,
        now: Any,
    ) -> None:
        """The audit event and the messages of a move: the new card, the old card changed to say
        where it went, the requester told, the Home tabs refreshed."""
        old = before
        data = {
            "from": source.id,
            "from_name": source.name,
            "to": target.id,
            "to_name": target.name,
            "note": note,
            "tried": tried or "",
            "released": old.claimed_by,
            "card": {"channel": old.card_channel, "ref": old.card_ref, "url": old.card_url},
        }
        await q.add_event(
            conn, workspace_id=h.workspace_id, handoff_id=h.id, kind="moved", actor=user, at=now, data=data
        )
        common = {"workspace_id": h.workspace_id, "handoff_id": h.id, "handoff_version": h.version}
        said = {"what": "moved", "actor": user, "to": target.name, "note": note}
        rows: list[dict[str, Any]] = [
            {**common, "kind": Outbound.POST_CARD, "dedupe_key": f"post_card:{h.id}:m{h.moves}"},
            {
                **common,
                "kind": Outbound.NOTIFY_REQUESTER,
                "dedupe_key": f"notify:{h.id}:moved:{h.moves}",
                "payload": said,
            },
        ]
        if old.card_ref and old.card_channel:
            # Waits for the new card (as everything about a handoff does), so it can link to it.
            rows.append(moved_card_row(common, h.moves, said, old.card_channel, old.card_ref, source.name))
        await outbox.enqueue_many(conn, rows, now)
        await self._refresh_homes(conn, h.workspace_id, now)


HANDOVERS_KEPT = 10  # on the row (the card shows the last); the audit trail keeps every one


def _handover(source: Queue, target: Queue, user: str, note: str, tried: str | None, now: Any) -> dict[str, Any]:
    return {
        "from": source.name,
        "to": target.name,
        "by": user,
        "note": note,
        "tried": tried or "",
        "at": now.isoformat(),
    }


def _values(queue: Queue) -> dict[str, Any]:
    return {
        "name": queue.name.strip()[:QUEUE_NAME_MAX],
        "aliases": sorted({a.strip().lower() for a in queue.aliases if a.strip()}),
        "escalation_channel": queue.escalation_channel,
        "leads_channel": queue.leads_channel,
        "settings": queue.settings(),
    }
