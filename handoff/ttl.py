"""Values kept for a few seconds, read once however many ask at the moment they run out.

A replica under load has dozens of requests in flight. When a cached value runs out, every one of
them used to find it missing and read it again: with three replicas, ~100 reads of the same queue
list in a few seconds, each a round trip on a connection that may not have prepared the statement
yet (bench/intake.py); for a Slack user group, one `usergroups.users.list` per click in a claim
storm, a Tier 2 method (about 20 a minute). Here the first caller reads and the others wait for
that read.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    """Per key, a value read at most every `ttl` seconds. Callers that find it missing or too old
    while a read is under way wait for that read. A read that fails is not kept: its waiters get its
    error, and the next caller reads again. `forget` (after a change made here) makes the next caller
    read, and a read started before it is not kept."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl
        self._clock = clock
        self._values: dict[K, tuple[float, V]] = {}
        self._reading: dict[K, asyncio.Future[V]] = {}

    async def get(self, key: K, read: Callable[[], Awaitable[V]]) -> V:
        kept = self._values.get(key)
        if kept is not None and self._clock() - kept[0] < self.ttl:
            return kept[1]
        reading = self._reading.get(key)
        if reading is None:
            reading = asyncio.ensure_future(self._read(key, read))
            reading.add_done_callback(_retrieve)
            self._reading[key] = reading
        # Shielded: a caller that gives up (a request cancelled) does not cancel the others' read.
        return await asyncio.shield(reading)

    async def _read(self, key: K, read: Callable[[], Awaitable[V]]) -> V:
        mine = asyncio.current_task()
        try:
            value = await read()
        finally:
            still_wanted = self._reading.get(key) is mine
            if still_wanted:
                del self._reading[key]
        if still_wanted:
            self._values[key] = (self._clock(), value)
        return value

    def forget(self, key: K) -> None:
        self._values.pop(key, None)
        self._reading.pop(key, None)

    def clear(self) -> None:
        self._values.clear()
        self._reading.clear()


def _retrieve(reading: asyncio.Future[object]) -> None:
    # Every caller may have gone before a read failed; its error was theirs, not the loop's to log.
    if not reading.cancelled():
        reading.exception()
