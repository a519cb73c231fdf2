"""Who may claim: the configured senior user ids and/or a Slack user group.

With neither configured, anyone may claim (the service still refuses the
requester). User group members are cached briefly: a claim must ack in time,
and a group rarely changes within a minute.
"""

from __future__ import annotations

import logging
import time

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import messages

log = logging.getLogger(__name__)


class Seniors:
    def __init__(self, user_ids: list[str], usergroup: str | None, *, ttl: float = 60.0):
        self.user_ids = list(dict.fromkeys(user_ids))
        self.usergroup = usergroup or None
        self.ttl = ttl
        self._members: set[str] = set()
        self._fetched_at = 0.0

    @property
    def anyone(self) -> bool:
        return not self.user_ids and not self.usergroup

    async def may_claim(self, client: AsyncWebClient, user_id: str) -> bool:
        if self.anyone or user_id in self.user_ids:
            return True
        if not self.usergroup:
            return False
        return user_id in await self._group_members(client)

    async def _group_members(self, client: AsyncWebClient) -> set[str]:
        if time.monotonic() - self._fetched_at < self.ttl:
            return self._members
        try:
            resp = await client.usergroups_users_list(usergroup=self.usergroup)
            self._members = set(resp.get("users") or [])
            self._fetched_at = time.monotonic()
        except SlackApiError as exc:
            # Keep the last known members rather than lock every senior out.
            log.warning("could not read user group %s: %s", self.usergroup, exc.response.get("error"))
        return self._members

    def refusal(self) -> str:
        return messages.who_may_claim(self.user_ids, self.usergroup)
