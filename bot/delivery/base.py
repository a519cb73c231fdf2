"""What a platform deliverer reports back about one outbox row."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from handoff.domain import Handoff
from handoff.service import HandoffService
from storage.outbox import OutboxItem


@dataclass(frozen=True)
class Sent:
    rendered_version: int | None = None  # a card render covers every update up to this version


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


async def handoff_of(service: HandoffService, item: OutboxItem) -> Handoff | GiveUp:
    """The escalation an outbox row is about, or why the row can never be delivered."""
    if item.handoff_id is None:
        return GiveUp(f"{item.kind} without a handoff")
    h = await service.get(item.workspace_id, item.handoff_id)
    if h is None:
        return GiveUp(f"handoff {item.handoff_id} not found in workspace {item.workspace_id}")
    return h


class Deliverer(Protocol):
    async def deliver(self, item: OutboxItem) -> DeliveryResult: ...
