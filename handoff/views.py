"""One person's view (App Home, `/escalate mine`) and the workspace's settings."""

from __future__ import annotations

from typing import Any

from handoff.core import (
    HOME_VIEWERS_MAX,
    HOME_VIEWERS_WITHIN,
    HomeView,
    ServiceCore,
)
from handoff.domain import (
    Handoff,
)
from storage import directory, outbox
from storage import handoffs as q


class Views(ServiceCore):
    # ---- one person's view: App Home, `/escalate mine` ---------------------

    async def open_queue(self, workspace_id: int, limit: int = 20) -> tuple[list[Handoff], int]:
        """The open escalations everyone's Home shows (most severe, then oldest, first), and how many."""
        async with self.db.read() as conn:
            rows, total = await q.open_queue(conn, workspace_id, limit)
        return [Handoff.from_row(r) for r in rows], total

    async def home(
        self, workspace_id: int, user: str, *, queue: tuple[list[Handoff], int] | None = None, own_limit: int = 10
    ) -> HomeView:
        """One person's Home; pass `queue` (from `open_queue`) when drawing several people's at once."""
        if queue is None:
            queue = await self.open_queue(workspace_id)
        async with self.db.read() as conn:
            mine = await q.of_person(conn, workspace_id, requester=user, statuses=("open", "claimed"), limit=own_limit)
            claims = await q.of_person(conn, workspace_id, claimer=user, statuses=("claimed",), limit=own_limit)
        return HomeView(
            open=queue[0],
            open_total=queue[1],
            mine=[Handoff.from_row(r) for r in mine],
            claims=[Handoff.from_row(r) for r in claims],
        )

    async def mine(self, workspace_id: int, user: str, limit: int = 20) -> list[Handoff]:
        async with self.db.read() as conn:
            rows = await q.of_person(conn, workspace_id, requester=user, statuses=("open", "claimed"), limit=limit)
        return [Handoff.from_row(r) for r in rows]

    async def home_opened(self, workspace_id: int, user: str) -> None:
        async with self.db.write() as conn:
            await directory.home_opened(conn, workspace_id, user, self.clock())

    async def home_viewers(self, workspace_id: int) -> list[str]:
        async with self.db.read() as conn:
            return await directory.home_viewers_since(
                conn, workspace_id, self.clock() - HOME_VIEWERS_WITHIN, HOME_VIEWERS_MAX
            )

    async def configure_workspace(
        self, workspace_id: int, *, escalation_channel: str | None, leads_channel: str | None, settings: dict[str, Any]
    ) -> None:
        async with self.db.write() as conn:
            await directory.save_workspace_config(
                conn,
                workspace_id,
                escalation_channel=escalation_channel,
                leads_channel=leads_channel,
                settings=settings,
            )
            woken = await outbox.wake_workspace(conn, workspace_id, self.clock())  # cards waiting for a channel
        if woken:
            self._committed()
