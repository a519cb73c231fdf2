"""What a platform deliverer reports back about one outbox row."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from handoff.domain import Handoff, Status
from handoff.service import HandoffService, utcnow
from storage.outbox import CARD_NEVER_POSTED, WAITING, OutboxItem

WAITING_FOR_CARD = WAITING + "the card is not posted yet"


@dataclass(frozen=True)
class Sent:
    rendered_version: int | None = None  # a card render covers every update up to this version
    note: str | None = None  # what did not go out with it (kept on the row for operators)


@dataclass(frozen=True)
class Retry:
    """Failed in a way that may pass: try again after `after` seconds (Retry-After) or the backoff."""

    error: str
    after: float | None = None


@dataclass(frozen=True)
class Defer:
    """Not yet possible (the card is not posted yet); try again soon without counting an attempt."""

    after: float
    reason: str


@dataclass(frozen=True)
class GiveUp:
    """A retry cannot fix this; an operator must, then re-send with `escalation-bot outbox retry`."""

    error: str


DeliveryResult = Sent | Retry | Defer | GiveUp


async def waiting_for_card(service: HandoffService, item: OutboxItem) -> Defer | GiveUp:
    """A row that needs the card, and the card is not up: wait for it, or, if its post died, die
    with it (`outbox retry` of the card brings both back)."""
    assert item.handoff_id is not None
    failure = await service.card_failure(item.handoff_id)
    if failure is not None:
        return GiveUp(f"{CARD_NEVER_POSTED}: {failure}")
    # Normally the lease holds these back until the card is up; wait longer the longer it has been.
    age = (utcnow() - item.created_at).total_seconds()
    return Defer(min(300.0, max(2.0, age / 10)), WAITING_FOR_CARD)


def chase_is_over(h: Handoff, item: OutboxItem) -> bool:
    """A reminder or lead alert nobody needs any more: the escalation was claimed or closed since it
    was queued, or moved to another queue (whose own clock chases it there)."""
    return h.status != Status.OPEN or item.payload.get("moves", h.moves) != h.moves


async def handoff_of(service: HandoffService, item: OutboxItem) -> Handoff | GiveUp:
    """The escalation an outbox row is about, or why the row can never be delivered."""
    if item.handoff_id is None:
        return GiveUp(f"{item.kind} without a handoff")
    h = await service.get_together(item.workspace_id, item.handoff_id)
    if h is None:
        return GiveUp(f"handoff {item.handoff_id} not found in workspace {item.workspace_id}")
    return h


class Deliverer(Protocol):
    async def deliver(self, item: OutboxItem) -> DeliveryResult: ...
