"""Each Slack workspace's connection and settings.

Single-workspace mode (SLACK_BOT_TOKEN): one client, and the SLACK_* channel and senior
settings, which `/escalate config` can override for the workspace. Multi-workspace mode
(SLACK_CLIENT_ID + SLACK_CLIENT_SECRET): each workspace's bot token comes from the OAuth
installation store, and its channels and seniors only from its own `/escalate config`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Settings
from bot.slack.client import Retries, make_client
from bot.slack.seniors import Seniors
from handoff.domain import Queue
from handoff.service import HandoffService
from handoff.ttl import TtlCache

log = logging.getLogger(__name__)


CONFIG_TTL = 5.0


class NotInstalled(LookupError):
    """The workspace has no bot token (never installed, uninstalled, or its tokens were revoked)."""


@dataclass(frozen=True)
class WorkspaceConfig:
    escalation_channel: str | None = None
    leads_channel: str | None = None
    senior_user_ids: list[str] = field(default_factory=list)
    senior_usergroup: str | None = None
    lead_user_ids: list[str] = field(default_factory=list)
    # Days after which closed escalations' text is erased here (None: RETENTION_DAYS, if set).
    retention_days: int | None = None

    def as_settings(self) -> dict[str, Any]:
        """What goes in the workspace row's `settings` JSON (the channels have columns of their own)."""
        return {
            "senior_user_ids": self.senior_user_ids,
            "senior_usergroup": self.senior_usergroup,
            "lead_user_ids": self.lead_user_ids,
            "retention_days": self.retention_days,
        }


class SlackWorkspaces:
    def __init__(
        self,
        service: HandoffService,
        settings: Settings,
        base_client: AsyncWebClient,
        installation_store: AsyncInstallationStore | None = None,
    ):
        self.service = service
        self.settings = settings
        self.base_client = base_client
        self.installation_store = installation_store
        self._seniors: dict[tuple[int, int | None], tuple[WorkspaceConfig, Seniors]] = {}
        self._clients: dict[tuple[str, str], AsyncWebClient] = {}
        self._teams: dict[int, str] = {}
        self._configs: TtlCache[int, WorkspaceConfig] = TtlCache(CONFIG_TTL)
        self._urls: dict[int, str] = {}

    @property
    def multi(self) -> bool:
        return self.installation_store is not None

    def defaults(self) -> WorkspaceConfig:
        if self.multi:
            return WorkspaceConfig()
        s = self.settings
        return WorkspaceConfig(
            escalation_channel=s.slack_escalation_channel,
            leads_channel=s.slack_leads_channel,
            senior_user_ids=list(s.slack_senior_user_ids),
            senior_usergroup=s.slack_senior_usergroup,
            lead_user_ids=list(s.slack_lead_user_ids),
        )

    async def config(self, workspace_id: int) -> WorkspaceConfig:
        """The workspace's settings, read at most every CONFIG_TTL seconds (a change made on another
        replica applies within that; one made here applies at once)."""
        return await self._configs.get(workspace_id, lambda: self._read_config(workspace_id))

    async def _read_config(self, workspace_id: int) -> WorkspaceConfig:
        row = await self.service.workspace(workspace_id)
        base = self.defaults()
        if row is None:
            return base
        own: dict[str, Any] = row.settings or {}
        return WorkspaceConfig(
            escalation_channel=row.escalation_channel or base.escalation_channel,
            leads_channel=row.leads_channel or base.leads_channel,
            senior_user_ids=list(own.get("senior_user_ids") or base.senior_user_ids),
            senior_usergroup=own.get("senior_usergroup") or base.senior_usergroup,
            lead_user_ids=list(own.get("lead_user_ids") or base.lead_user_ids),
            retention_days=own.get("retention_days") if isinstance(own.get("retention_days"), int) else None,
        )

    async def seniors(self, workspace_id: int, queue: Queue | None = None) -> Seniors:
        """Who may claim in `queue` (the default queue: the workspace's seniors)."""
        cfg = await self.queue_config(workspace_id, queue)
        key = (workspace_id, queue.id if queue is not None and not queue.is_default else None)
        cached = self._seniors.get(key)
        if cached is not None and cached[0] == cfg:
            return cached[1]  # keeps its cached user-group members
        seniors = Seniors(cfg.senior_user_ids, cfg.senior_usergroup)
        self._seniors[key] = (cfg, seniors)
        return seniors

    async def queue_config(self, workspace_id: int, queue: Queue | None) -> WorkspaceConfig:
        """A queue's channels and people. The default queue's are the workspace's own; another
        queue's are its own, with the workspace's leads channel where it names none."""
        cfg = await self.config(workspace_id)
        if queue is None or queue.is_default:
            return cfg
        return WorkspaceConfig(
            escalation_channel=queue.escalation_channel,
            leads_channel=queue.leads_channel or cfg.leads_channel,
            senior_user_ids=list(queue.senior_user_ids),
            senior_usergroup=queue.senior_usergroup,
            lead_user_ids=list(queue.lead_user_ids),
        )

    async def team_id(self, workspace_id: int) -> str:
        team = self._teams.get(workspace_id)
        if team is None:
            row = await self.service.workspace(workspace_id)
            if row is None:
                raise NotInstalled(f"workspace {workspace_id} does not exist")
            team = self._teams[workspace_id] = row.external_id
        return team

    async def client_for(self, workspace_id: int, retries: Retries = "all") -> AsyncWebClient:
        """The Web API client that acts as the bot in this workspace. `retries`: what slack_sdk may
        retry by itself (`bot.slack.client.retry_handlers`): posts must not use "all"."""
        if self.multi:
            assert self.installation_store is not None
            team = await self.team_id(workspace_id)
            bot = await self.installation_store.async_find_bot(enterprise_id=None, team_id=team)
            if bot is None or not bot.bot_token:
                raise NotInstalled(f"the app is not installed in Slack workspace {team}")
            token = bot.bot_token
        elif retries == "all":
            return self.base_client
        else:
            token = self.base_client.token or ""
        client = self._clients.get((token, retries))
        if client is None:
            client = self._clients[(token, retries)] = make_client(
                token=token,
                base_url=self.base_client.base_url,
                session=self.base_client.session,
                timeout=self.base_client.timeout,
                retries=retries,
                on_call=getattr(self.base_client, "on_call", None),
            )
        return client

    async def permalink(self, workspace_id: int, channel: str, ts: str) -> str:
        """A message's link, as chat.getPermalink gives it (`https://<workspace>.slack.com/archives/
        <channel>/p<ts without the dot>`), built from the workspace's address, which auth.test tells
        once per process: a call per workspace instead of one per message. Raises what the call
        raises (SlackApiError, aiohttp.ClientError, TimeoutError)."""
        url = self._urls.get(workspace_id)
        if url is None:
            answer = await (await self.client_for(workspace_id, "reads")).auth_test()
            url = self._urls[workspace_id] = str(answer["url"]).rstrip("/")
        return f"{url}/archives/{channel}/p{ts.replace('.', '')}"

    async def save(self, workspace_id: int, cfg: WorkspaceConfig) -> None:
        await self.service.configure_workspace(
            workspace_id,
            escalation_channel=cfg.escalation_channel,
            leads_channel=cfg.leads_channel,
            settings=cfg.as_settings(),
        )
        self._seniors.pop((workspace_id, None), None)
        self._configs.forget(workspace_id)
