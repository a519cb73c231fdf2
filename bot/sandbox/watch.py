"""What the fakes share: serving on loopback, and waiting until what they recorded satisfies a test."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import web


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


async def serve_on_loopback(
    app: web.Application, port: int = 0, *, handler_cancellation: bool = False, ssl_context: Any = None
) -> tuple[web.AppRunner, int]:
    """Run an aiohttp app on 127.0.0.1 (any free port by default); returns the runner and the port."""
    runner = web.AppRunner(app, handler_cancellation=handler_cancellation, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=1024, ssl_context=ssl_context)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
