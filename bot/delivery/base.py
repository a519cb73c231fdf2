"""What a platform deliverer reports back about one outbox row."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

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


class Deliverer(Protocol):
    async def deliver(self, item: OutboxItem) -> DeliveryResult: ...
