"""Queues on Teams: who may claim in one, `setup queue NAME`'s queue, the channels a queue's cards
and leads' posts go to, and moving an escalation from its card (Action.Execute `move`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from microsoft_agents.activity import AdaptiveCardInvokeResponse
from microsoft_agents.hosting.core import TurnContext

from bot.teams import cards
from bot.teams.replies import BROKEN_BUTTON, TRY_AGAIN, button_handoff, card_response, message_response, who
from handoff.domain import Changed, Closed, Moved, NotAllowed, Queue
from handoff.validation import clean
from storage.db import StorageUnavailable

if TYPE_CHECKING:
    from handoff.service import HandoffService


class TeamsQueues:
    service: HandoffService
    seniors: list[str]

    def _may_claim(self, user_id: str, queue: Queue | None = None) -> bool:
        """Who may claim in `queue`: its own seniors where it names any, else TEAMS_SENIOR_USER_IDS."""
        seniors = list(queue.senior_user_ids) if queue is not None and not queue.is_default else []
        seniors = seniors or self.seniors
        return not seniors or user_id in seniors

    async def _queue_named(self, ws: int, name: str) -> Queue | None:
        """The queue of that name or alias, made if there is none (`setup queue Billing`)."""
        name = " ".join(name.split())
        if not 0 < len(name) <= 80:
            return None
        found = next((q for q in await self.service.queues(ws) if q.answers_to(name)), None)
        if found is None:
            found = await self.service.add_queue(ws, Queue(id=0, workspace_id=ws, name=name, is_default=False))
        return found

    async def _move(self, context: TurnContext, data: dict[str, Any]) -> AdaptiveCardInvokeResponse:
        me = who(context)
        handoff_id = button_handoff(data)
        version, target = data.get("v"), data.get("move_to")
        if handoff_id is None or not isinstance(version, int) or isinstance(version, bool):
            return message_response(BROKEN_BUTTON)
        if not isinstance(target, str) or not target.isdigit() or len(target) > 9:
            return message_response("Choose the queue to move it to, then press Move.")
        note = clean(data.get("move_note") if isinstance(data.get("move_note"), str) else None)
        if not note:
            return message_response("Say why, so the seniors there know where to start; then press Move.")
        try:
            ws = await self.service.workspace_id("teams", me.tenant)
            await self.service.remember_person(ws, me.user_id, me.name)
            h = await self.service.get(ws, handoff_id)
            queue = await self.service.queue(ws, h.queue_id) if h is not None else None
            allowed = h is not None and (h.claimed_by == me.user_id or self._may_claim(me.user_id, queue))
            tried_text = data.get("move_tried") if isinstance(data.get("move_tried"), str) else None
            tried = clean(tried_text) if h is not None and h.claimed_by == me.user_id else ""
            outcome = await self.service.move(
                ws,
                handoff_id,
                me.user_id,
                to_queue_id=int(target),
                expected_version=version,
                note=note,
                may_move=allowed,
                tried=tried or None,
            )
            if isinstance(outcome, Moved):
                names = await self.service.names(ws, [me.user_id])
                moved = {"to": outcome.to_queue.name, "actor": me.user_id, "note": note}
                return card_response(cards.moved_card(outcome.handoff, names, moved))
        except StorageUnavailable:
            return message_response(TRY_AGAIN)
        if isinstance(outcome, Changed):
            return message_response(
                f"{outcome.handoff.ref} changed while you were moving it, so nothing moved. Look at the card again."
            )
        if isinstance(outcome, NotAllowed):
            return message_response(
                "It is in that queue already."
                if outcome.reason == "same_queue"
                else "Only the seniors of its queue, or whoever holds it, can move it."
            )
        if isinstance(outcome, Closed):
            return message_response(f"{outcome.handoff.ref} is already {outcome.handoff.status.value}.")
        return message_response("I can't find that escalation or queue in this organisation.")


def channel_key(kind: str, queue: Queue | None) -> str:
    """Where a queue's cards (`escalation`) or leads' posts (`leads`) go: the default queue's are the
    workspace's own channels (`setup`, `setup leads`); another's were set with `setup queue NAME`."""
    return kind if queue is None or queue.is_default else f"{kind}:q{queue.id}"
