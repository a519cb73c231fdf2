"""What the fakes share: waiting until what they recorded satisfies a test."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


class Watched:
    def __init__(self) -> None:
        self._changed = asyncio.Condition()

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Wait until `predicate()` is truthy (re-checked after every call the fake answers)."""
        async with asyncio.timeout(timeout):
            async with self._changed:
                while True:
                    value = predicate()
                    if value:
                        return value
                    await self._changed.wait()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()
