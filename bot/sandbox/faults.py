"""Failures on demand, for the fakes of Slack and the Teams connector.

A failure is scripted (the next calls to a method fail this way) or random (a share of the calls,
chaos). It can come before the call has any effect, which is a clean refusal (an error, a 429, a
500), or after it took effect, which is what makes delivery hard: the service applied the post,
then the answer was a 500, never came (a stall past the client's timeout), or the connection was
reset. The caller cannot tell, and must look before it sends again.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Any

from aiohttp import web


@dataclass(frozen=True)
class Fail:
    """One failure. `status`/`error`: the answer (HTTP status, or a Slack error with HTTP 200);
    `retry_after`: the 429's header; `stall`: seconds before answering; `applied`: the call takes
    effect first; `reset`: instead of answering, the connection is dropped."""

    status: int = 200
    error: str | None = None
    retry_after: int | None = None
    stall: float = 0.0
    applied: bool = False
    reset: bool = False

    @property
    def answers_normally(self) -> bool:
        """A pure delay: the call goes through, only late."""
        return self.status == 200 and not self.error and not self.reset


# The three ambiguous outcomes every write can be given: applied, then 500 / no answer / reset.
APPLIED_THEN_500 = Fail(status=500, applied=True)
APPLIED_THEN_RESET = Fail(applied=True, reset=True)


def applied_then_silent(seconds: float) -> Fail:
    """Applied, and the answer held back for `seconds` (longer than the client waits: it times out)."""
    return Fail(stall=seconds, applied=True, status=504)


class Script:
    """The failures still to come, per key (a method, a conversation), and the chaos setting."""

    def __init__(self) -> None:
        self._queued: dict[str, list[Fail]] = {}
        self._chaos: tuple[float, tuple[str, ...], list[Fail], random.Random] | None = None

    def queue(self, key: str, *failures: Fail) -> None:
        self._queued.setdefault(key, []).extend(failures)

    def chaos(self, rate: float, keys: tuple[str, ...], failures: list[Fail], seed: int = 7) -> None:
        self._chaos = (rate, keys, failures, random.Random(seed))

    def calm(self) -> None:
        self._queued.clear()
        self._chaos = None

    def next(self, *keys: str) -> Fail | None:
        """The failure for a call matching any of `keys` (queued ones first), or None."""
        for key in keys:
            queue = self._queued.get(key)
            if queue:
                return queue.pop(0)
        if self._chaos is not None:
            rate, chaos_keys, failures, rng = self._chaos
            if any(k in chaos_keys for k in keys) and rng.random() < rate:
                return rng.choice(failures)
        return None


async def reset_connection(request: web.Request) -> web.StreamResponse:
    """Drop the connection without an answer (the client sees it reset)."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    # aiohttp wants a response object even though nothing will be written.
    return web.Response(status=500)


async def stall(seconds: float) -> None:
    if seconds > 0:
        await asyncio.sleep(seconds)


def failure_from_json(data: dict[str, Any]) -> Fail:
    """A failure sent to a fake running in another process (`/_fake/chaos`)."""
    return Fail(**{k: v for k, v in data.items() if k in Fail.__dataclass_fields__})
