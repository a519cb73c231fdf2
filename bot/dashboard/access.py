"""Who may see the leads' page, and what of it: asked of each platform at sign-in and at every
request after, so a lead who lost the role is refused at their next one."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from handoff.ttl import TtlCache

log = logging.getLogger(__name__)

ADMIN_TTL = 30.0  # seconds a Slack admin's or owner's role is taken as known
NAME_TTL = 600.0  # seconds a Slack user's name is kept for the page
MOST_NAMES = 100  # names looked up for one page; any more are shown as their ids


@dataclass(frozen=True)
class Role:
    """A lead's reach: every queue (the workspace's leads, admins and owners), or some queues (a
    queue's leads)."""

    queue_ids: frozenset[int] | None = None  # None: the whole workspace

    @property
    def whole_workspace(self) -> bool:
        return self.queue_ids is None

    def may_see(self, queue_id: int | None) -> bool:
        """`queue_id` None is the whole workspace's figures."""
        if self.queue_ids is None:
            return True
        return queue_id is not None and queue_id in self.queue_ids


class Access:
    """One platform's answer to "is this person a lead here, and of what"."""

    platform = ""
    who_can = ""  # said to someone who may not

    async def role(self, workspace_id: int, user_id: str) -> Role | None:
        raise NotImplementedError

    async def names(self, workspace_id: int, user_ids: list[str]) -> dict[str, str]:
        """What to call these people on the page (their id where the platform does not say)."""
        raise NotImplementedError


class SlackAccess(Access):
    """A workspace's leads (`/escalate config`, SLACK_LEAD_USER_IDS), its admins and owners (users.info),
    and each queue's leads (that queue only)."""

    platform = "slack"
    who_can = (
        "the workspace's leads (set in `/escalate config`), its admins and owners, and each queue's leads "
        "(for that queue)"
    )

    def __init__(self, workspaces: Any, service: Any):
        self.workspaces = workspaces
        self.service = service
        self._admins: TtlCache[tuple[int, str], bool] = TtlCache(ADMIN_TTL)
        self._names: TtlCache[tuple[int, str], str] = TtlCache(NAME_TTL)

    async def names(self, workspace_id: int, user_ids: list[str]) -> dict[str, str]:
        async def name_of(user_id: str) -> str:
            async def ask() -> str:
                try:
                    client = await self.workspaces.client_for(workspace_id, "reads")
                    info: dict[str, Any] = (await client.users_info(user=user_id)).get("user") or {}
                except Exception as exc:  # shown as the id until the next look
                    answer = getattr(exc, "response", None)
                    said = answer.get("error") if answer is not None and hasattr(answer, "get") else None
                    log.warning("users.info for %s failed: %s", user_id, said or type(exc).__name__)
                    return user_id
                profile = info.get("profile") or {}
                found = profile.get("display_name") or profile.get("real_name") or info.get("real_name")
                return str(found or info.get("name") or user_id)

            return await self._names.get((workspace_id, user_id), ask)

        wanted = list(dict.fromkeys(user_ids))[:MOST_NAMES]
        found = await asyncio.gather(*(name_of(u) for u in wanted))
        return dict(zip(wanted, found, strict=True))

    async def _is_admin(self, workspace_id: int, user_id: str) -> bool:
        async def ask() -> bool:
            client = await self.workspaces.client_for(workspace_id, "reads")
            info: dict[str, Any] = (await client.users_info(user=user_id)).get("user") or {}
            return bool(info.get("is_admin") or info.get("is_owner") or info.get("is_primary_owner"))

        try:
            return await self._admins.get((workspace_id, user_id), ask)
        except Exception as exc:  # Slack did not say: not taken as an admin
            log.warning("users.info for %s failed: %s", user_id, type(exc).__name__)
            return False

    async def role(self, workspace_id: int, user_id: str) -> Role | None:
        cfg = await self.workspaces.config(workspace_id)
        if user_id in cfg.lead_user_ids or await self._is_admin(workspace_id, user_id):
            return Role()
        mine = set()
        for queue in await self.service.queues(workspace_id):
            if (
                not queue.is_default
                and user_id in (await self.workspaces.queue_config(workspace_id, queue)).lead_user_ids
            ):
                mine.add(queue.id)
        return Role(frozenset(mine)) if mine else None


class TeamsAccess(Access):
    """TEAMS_LEAD_USER_IDS (the whole workspace), and each queue's leads (that queue only)."""

    platform = "teams"
    who_can = "the leads in TEAMS_LEAD_USER_IDS, and each queue's leads (for that queue)"

    def __init__(self, lead_ids: list[str], service: Any):
        self.lead_ids = {x.lower() for x in lead_ids}
        self.service = service

    async def role(self, workspace_id: int, user_id: str) -> Role | None:
        if user_id.lower() in self.lead_ids:
            return Role()
        queues = [q for q in await self.service.queues(workspace_id) if not q.is_default]
        mine = frozenset(q.id for q in queues if user_id.lower() in {x.lower() for x in q.lead_user_ids})
        return Role(mine) if mine else None

    async def names(self, workspace_id: int, user_ids: list[str]) -> dict[str, str]:
        known = await self.service.names(workspace_id, list(dict.fromkeys(user_ids))[:MOST_NAMES])
        return {u: known.get(u) or u for u in user_ids}


RoleOf = Callable[[int, str], Awaitable[Role | None]]
