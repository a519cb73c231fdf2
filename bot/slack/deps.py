"""What the Slack listeners need, handed to each module's `register`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bot.metrics import Metrics
from bot.slack.seniors import Seniors
from bot.slack.workspaces import SlackWorkspaces
from handoff.report import WeeklyReport
from handoff.service import HandoffService


@dataclass
class SlackDeps:
    service: HandoffService
    workspaces: SlackWorkspaces
    # The weekly figures of the week so far, for `/escalate stats`.
    stats_for: Callable[[int, int | None], Awaitable[WeeklyReport]]
    metrics: Metrics | None = None
    # The leads' page: who may open it, and where it is (PUBLIC_URL; None: not set up).
    access: Any = None
    public_url: str | None = None

    async def seniors(self, workspace_id: int, queue_id: int | None = None) -> Seniors:
        """Who may claim in that queue (None: the workspace's default queue)."""
        queue = await self.service.queue(workspace_id, queue_id) if queue_id is not None else None
        return await self.workspaces.seniors(workspace_id, queue)

    async def workspace(self, context: Any) -> int:
        """The workspace the signed request came from; ids in payloads never choose it."""
        team_id = context.get("team_id") or context.get("enterprise_id")
        if not team_id:
            raise LookupError("request carries no team id")
        return await self.service.workspace_id("slack", team_id)

    def count(self, name: str, *labels: str) -> None:
        """Count something in the metrics, when there are metrics."""
        if self.metrics is not None:
            metric = getattr(self.metrics, name)
            (metric.labels(*labels) if labels else metric).inc()
