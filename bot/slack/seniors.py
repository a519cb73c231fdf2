"""Who may claim: the configured senior user ids and/or a Slack user group.

With neither configured, anyone may claim (the service still refuses the
requester). User group members are cached briefly: a claim must ack in time,
and a group rarely changes within a minute.
"""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import messages
from handoff.ttl import TtlCache

log = logging.getLogger(__name__)


class Seniors:
    def __init__(self, user_ids: list[str], usergroup: str | None, *, ttl: float = 60.0):
        self.user_ids = list(dict.fromkeys(user_ids))
        self.usergroup = usergroup or None
        self._members: set[str] = set()  # the last members read
        self._read: TtlCache[str, set[str]] = TtlCache(ttl)

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
        assert self.usergroup
        try:
            # Clicks in a storm that find the members out of date share one read: the method is
            # Tier 2 (about 20 a minute), and one read per click would be refused with 429s.
            self._members = await self._read.get(self.usergroup, lambda: self._fetch(client))
        except SlackApiError:
            pass  # keep the last known members rather than lock every senior out; the next click asks again
        return self._members

    async def _fetch(self, client: AsyncWebClient) -> set[str]:
        try:
            resp = await client.usergroups_users_list(usergroup=self.usergroup)
        except SlackApiError as exc:
            log.warning("could not read user group %s: %s", self.usergroup, exc.response.get("error"))
            raise
        return set(resp.get("users") or [])

    def refusal(self) -> str:
        return messages.who_may_claim(self.user_ids, self.usergroup)
