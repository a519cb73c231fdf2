"""What the Slack listeners need, handed to each module's `register`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.slack.seniors import Seniors
from handoff.service import HandoffService


@dataclass
class SlackDeps:
    service: HandoffService
    seniors: Seniors

    async def workspace(self, context: Any) -> int:
        """The workspace the signed request came from; ids in payloads never choose it."""
        team_id = context.get("team_id") or context.get("enterprise_id")
        if not team_id:
            raise LookupError("request carries no team id")
        return await self.service.workspace_id("slack", team_id)
