"""Multi-workspace install: Bolt's OAuth flow on slack_sdk's async SQLAlchemy stores.

The stores' tables are created by our migrations (0006), on the project's database. On
uninstall or token revocation, Bolt's revocation listeners delete that workspace's tokens,
after which its deliveries stop with "not installed" instead of failing with bad tokens.
"""

from __future__ import annotations

from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_sdk.oauth.installation_store.sqlalchemy import AsyncSQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import AsyncSQLAlchemyOAuthStateStore
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.config import Settings

# The bot scopes an install asks for; the same list, each explained, is in manifest.yml.
BOT_SCOPES = [
    "commands",
    "chat:write",
    "usergroups:read",
    "users:read",
    "channels:history",
    "groups:history",
    "im:write",
    "im:history",
    "files:write",
]

INSTALL_PATH = "/slack/install"
REDIRECT_PATH = "/slack/oauth_redirect"
STATE_SECONDS = 600


def oauth_settings(settings: Settings, engine: AsyncEngine) -> AsyncOAuthSettings:
    assert settings.slack_client_id and settings.slack_client_secret
    return AsyncOAuthSettings(
        client_id=settings.slack_client_id,
        client_secret=settings.slack_client_secret.get_secret_value(),
        scopes=BOT_SCOPES,
        install_path=INSTALL_PATH,
        redirect_uri_path=REDIRECT_PATH,
        installation_store=AsyncSQLAlchemyInstallationStore(client_id=settings.slack_client_id, engine=engine),
        state_store=AsyncSQLAlchemyOAuthStateStore(expiration_seconds=STATE_SECONDS, engine=engine),
    )
