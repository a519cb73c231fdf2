"""The bot's Microsoft identity: its app id, tenant and client secret, and the token client (the
Agents SDK's MSAL provider) that fetches its Bot Connector tokens from the tenant's authority.

The authority is TEAMS_LOGIN_URL/TEAMS_TENANT_ID: Microsoft's public cloud by default, another
cloud's sign-in host, or a sandbox's fake. MSAL checks an authority it does not know against
Microsoft's instance-discovery service first; for a host that is not Microsoft's (a sandbox) that
check is off, since the operator named the host on purpose.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

from microsoft_agents.authentication.msal import MsalAuth
from microsoft_agents.hosting.core import AgentAuthConfiguration, ConnectionManager
from microsoft_agents.hosting.core.authorization import AuthTypes
from msal import ConfidentialClientApplication
from msal.authority import WELL_KNOWN_AUTHORITY_HOSTS

from bot.config import Settings

SERVICE_CONNECTION = "SERVICE_CONNECTION"


def auth_configuration(settings: Settings) -> AgentAuthConfiguration:
    """The bot's identity: checks incoming tokens, and gets outgoing ones (client secret)."""
    secret = settings.teams_app_password.get_secret_value() if settings.teams_app_password else None
    tenant = settings.teams_tenant_id
    return AgentAuthConfiguration(
        auth_type=AuthTypes.client_secret,
        client_id=settings.teams_app_id or "",
        tenant_id=tenant,
        authority=f"{settings.teams_login_url.rstrip('/')}/{tenant}" if tenant else None,
        client_secret=secret,
        anonymous_allowed=settings.teams_allow_anonymous,
    )


class _TenantMsal(MsalAuth):
    async def _get_access_token(self, resource_url: str, scopes: list[str], force_refresh: bool = False) -> Any:
        # MSAL discovers its authority with blocking HTTP when its client is made, and the SDK makes
        # it on the event loop; make it in a thread instead (the SDK then finds it made).
        await asyncio.to_thread(self._get_client)
        return await super()._get_access_token(resource_url, scopes, force_refresh)

    def _create_client_application(self, tenant_id: str | None = None) -> ConfidentialClientApplication:  # type: ignore[override]
        config = self._msal_configuration
        authority = MsalAuth._resolve_authority(config, tenant_id)
        host = (urlsplit(authority).hostname or "").lower()
        if config.AUTH_TYPE != AuthTypes.client_secret or host in WELL_KNOWN_AUTHORITY_HOSTS:
            return super()._create_client_application(tenant_id)  # type: ignore[return-value]
        return ConfidentialClientApplication(
            client_id=config.CLIENT_ID,
            authority=authority,
            client_credential=config.CLIENT_SECRET,
            instance_discovery=False,
        )


def connection_manager(config: AgentAuthConfiguration) -> ConnectionManager:
    return ConnectionManager(provider_factory=_TenantMsal, connections_configurations={SERVICE_CONNECTION: config})
