"""The Bolt app: signature checks on, our listeners registered, one error handler."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import messages
from bot.slack.deps import SlackDeps
from bot.slack.listeners import register_all
from storage.db import StorageUnavailable

log = logging.getLogger(__name__)


NOT_INSTALLED = (
    ":warning: Escalation Bot isn't installed in this workspace any more, so nothing was sent or stored. "
    "A workspace admin can install it again."
)


def build_slack_app(
    *, signing_secret: str, client: AsyncWebClient, deps: SlackDeps, oauth: AsyncOAuthSettings | None = None
) -> AsyncApp:
    bolt_log = logging.getLogger("bot.slack.bolt")
    # Bolt also reads SLACK_BOT_TOKEN from the environment and warns that our client (which
    # carries that token) wins; quiet it for construction only.
    level = bolt_log.level
    bolt_log.setLevel(logging.ERROR)
    try:
        app = AsyncApp(
            signing_secret=signing_secret,
            client=client,
            request_verification_enabled=True,
            raise_error_for_unhandled_request=False,
            logger=bolt_log,
            oauth_settings=oauth,
            user_facing_authorize_error_message=NOT_INSTALLED,
        )
    finally:
        bolt_log.setLevel(level)
    if oauth is not None:
        # app_uninstalled / tokens_revoked: delete the workspace's tokens from the installation store.
        app.enable_token_revocation_listeners()
    register_all(app, deps)

    @app.error
    async def on_error(error: Exception, body: dict[str, Any], respond: Any) -> BoltResponse | None:
        # A person clicked or typed something and we failed: tell them, never leave them guessing.
        log.error("unhandled error in a Slack listener: %s", error, exc_info=error)
        text = messages.TRY_AGAIN if isinstance(error, StorageUnavailable) else messages.SOMETHING_WRONG
        if body.get("response_url"):
            try:
                await respond(text=text, response_type="ephemeral", replace_original=False)
            except Exception:  # the reply is best effort; the error is already logged
                log.warning("could not tell the user about the error")
        return None

    return app
