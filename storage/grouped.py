"""Writes that many callers make at once, done together: one transaction for a group.

Each caller waits until its own item is written (so nothing is acknowledged before it is stored),
but the items that arrive while one group is being written go into the next group together. At a
trickle every group is one item and nothing waits longer than it would have; in a burst (two
hundred losing Claim clicks, a worker finishing fifty sends) a handful of transactions do the work
of hundreds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


R = TypeVar("R")


class Grouped(Generic[T, R]):
    """`write` gets a group's items in the order they arrived and returns None, or one result per
    item (an exception among them is raised to that item's caller alone)."""

    def __init__(
        self, write: Callable[[list[T]], Awaitable[Sequence[R | BaseException] | None]], *, linger: bool = True
    ):
        """`linger`: the first group waits one more turn of the loop for company (sends finishing
        together). Without it the first item is written as soon as the writer runs, and what arrives
        meanwhile forms the next group: for a Claim click, the first click is not kept waiting."""
        self._write = write
        self._linger = linger
        self._waiting: list[tuple[T, asyncio.Future[R | None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def add(self, item: T) -> R | None:
        """Returns once `item` is written, with its result; raises what writing its group raised."""
        done: asyncio.Future[R | None] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_groups())
        return await done

    async def _write_groups(self) -> None:
        while self._waiting:
            if self._linger:
                await asyncio.sleep(0)  # what arrives in the next turn of the loop joins the group too
            group, self._waiting = self._waiting, []
            try:
                results = await self._write([item for item, _ in group])
            except Exception as exc:
                for _, done in group:
                    if not done.done():
                        done.set_exception(exc)
            else:
                for i, (_, done) in enumerate(group):
                    if done.done():
                        continue
                    result = None if results is None else results[i]
                    if isinstance(result, BaseException):
                        done.set_exception(result)
                    else:
                        done.set_result(result)


K = TypeVar("K")
V = TypeVar("V")


class Batched(Generic[K, V]):
    """Reads that many callers make at once, done together: the keys asked for in one turn of the
    loop are fetched in one statement, and each caller gets its own answer (or None)."""

    def __init__(self, fetch: Callable[[list[K]], Awaitable[dict[K, V]]]):
        self._fetch = fetch
        self._waiting: list[tuple[K, asyncio.Future[V | None]]] = []
        self._reader: asyncio.Task[None] | None = None

    async def get(self, key: K) -> V | None:
        return await self._ask(key)

    async def get_all(self, keys: list[K]) -> list[V | None]:
        """Several keys for one caller, read with everything else asked in this turn."""
        return list(await asyncio.gather(*(self._ask(key) for key in keys)))

    def _ask(self, key: K) -> asyncio.Future[V | None]:
        found: asyncio.Future[V | None] = asyncio.get_running_loop().create_future()
        self._waiting.append((key, found))
        if self._reader is None or self._reader.done():
            self._reader = asyncio.create_task(self._read_batches())
        return found

    async def _read_batches(self) -> None:
        # This task starts in the turn after the first caller's, so everything asked in that turn is
        # here already; what is asked while a batch is read forms the next one.
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                rows = await self._fetch(list(dict.fromkeys(key for key, _ in batch)))
            except BaseException as exc:
                for _, found in batch:
                    if not found.done():
                        found.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
            else:
                for key, found in batch:
                    if not found.done():
                        found.set_result(rows.get(key))
