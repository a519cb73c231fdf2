"""The Bolt app: signature checks on, our listeners registered, one error handler."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient

from bot import inflight
from bot.inflight import AcknowledgedWork
from bot.slack import messages
from bot.slack.client import SessionRespond
from bot.slack.deps import SlackDeps
from bot.slack.listeners import register_all
from bot.slack.listeners.common import failure_answer
from storage.db import StorageUnavailable

log = logging.getLogger(__name__)


# Set on a request's context by the HTTP endpoint once its signature checked out. Socket Mode
# requests come over the app's own authenticated connection and need no mark.
VERIFIED = "escalation_bot_verified"

# Bolt says this for every failed authorization: an uninstalled workspace or a revoked token, but
# also Slack answering auth.test with an error during an incident. So it says what is known.
NOT_INSTALLED = (
    ":warning: Slack didn't confirm that Escalation Bot is installed in this workspace, so nothing was "
    "sent or stored. Please try again in a minute; if this keeps happening, a workspace admin may need "
    "to install it again."
)


def build_slack_app(
    *,
    signing_secret: str,
    client: AsyncWebClient,
    deps: SlackDeps,
    oauth: AsyncOAuthSettings | None = None,
    session: aiohttp.ClientSession | None = None,
    reply_timeout: float = 10.0,
    acknowledged: AcknowledgedWork | None = None,
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
    if acknowledged is not None:

        @app.middleware
        async def work_is_finished_at_stop(context: AsyncBoltContext, next: Callable[[], Awaitable[Any]]) -> Any:
            context[inflight.CONTEXT_KEY] = acknowledged  # listeners register there (`guarded`)
            return await next()

    if session is not None:

        @app.middleware
        async def replies_share_the_session(context: AsyncBoltContext, next: Callable[[], Awaitable[Any]]) -> Any:
            context["respond"] = SessionRespond(context.response_url, session, reply_timeout)
            return await next()

    register_all(app, deps)

    @app.error
    async def on_error(
        error: Exception, request: AsyncBoltRequest, response: BoltResponse | None
    ) -> BoltResponse | None:
        """The last line, for a failure no listener caught: never a 5xx, never a lost form, and the
        person told, but only through a response_url Slack itself signed."""
        log.error("unhandled error in a Slack listener: %s", error, exc_info=error)
        trusted = request.mode == "socket_mode" or bool(request.context.get(VERIFIED))
        text = messages.TRY_AGAIN if isinstance(error, StorageUnavailable) else messages.SOMETHING_WRONG
        response_url = request.body.get("response_url")
        if trusted and isinstance(response_url, str):
            try:
                await request.context.respond(text=text, response_type="ephemeral", replace_original=False)
            except Exception as exc:  # the reply is best effort; the error is already logged
                log.warning("could not tell the user about the error: %s", type(exc).__name__)
        if response is None:
            return None  # already acknowledged: Slack has its answer
        return failure_answer(request.body, text)

    return app
