"""Work a replica has acknowledged and not yet finished.

Slack hears "ok" for a click, a form or an event before the work behind it is done (it allows 3 s;
the claim, the reply to the clicker, the card's change come after). A replica told to stop must
finish that work before it closes its database and its connections, or the click is lost though
Slack was told it was taken: the claim committed and the winner never told.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

log = logging.getLogger(__name__)

# The key under which a request's context carries the replica's AcknowledgedWork.
CONTEXT_KEY = "escalation_bot_acknowledged"


class AcknowledgedWork:
    """The tasks still running after their request was acknowledged. Holds them strongly too:
    asyncio keeps tasks only weakly, and Bolt keeps no reference to the listener tasks it starts."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self.finished = 0
        self.last_done = 0.0  # time.monotonic() when the latest one finished

    def __len__(self) -> int:
        return len(self._tasks)

    def track(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        if task in self._tasks:
            self._tasks.discard(task)
            self.finished += 1
            self.last_done = time.monotonic()

    async def finish(self, timeout: float) -> int:
        """Wait up to `timeout` seconds for everything in hand, including work that starts meanwhile
        (a request answered during the wait). Returns how many were cut short (cancelled)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, timeout)
        while self._tasks:
            left = deadline - loop.time()
            if left <= 0:
                break
            await asyncio.wait(set(self._tasks), timeout=left)
        late = list(self._tasks)
        for task in late:
            task.cancel()
        if late:
            await asyncio.gather(*late, return_exceptions=True)
        return len(late)
