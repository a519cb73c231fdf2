"""The Slack Web API client: shared session, our base URL, retries switched on.

slack_sdk retries only connection errors by default; which calls may retry what is chosen here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import aiohttp
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_bolt.context.respond.internals import _build_message
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient, WebhookResponse

Retries = Literal["all", "rate_limits", "reads", "none"]


class ShortRateLimitRetry(AsyncRateLimitErrorRetryHandler):
    """Waits out a 429 only when Slack asks for a short wait; a long one (a minute, for history reads
    by apps outside the Marketplace) comes back to the caller, which can wait without holding a send."""

    def __init__(self, max_wait: float, **kwargs: Any):
        super().__init__(**kwargs)
        self.max_wait = max_wait

    async def _can_retry_async(self, *, state: Any, request: Any, response: Any = None, error: Any = None) -> bool:
        if response is None or response.status_code != 429:
            return False
        for key, value in response.headers.items():
            if key.lower() == "retry-after":
                try:
                    return float(value[0] if isinstance(value, list) else value) <= self.max_wait
                except (TypeError, ValueError):
                    return False
        return True


def retry_handlers(retries: Retries = "all") -> list[AsyncRetryHandler]:
    """What slack_sdk may retry by itself. "all": a dropped connection, a 429 (after its Retry-After)
    and a 5xx, for calls that are safe to repeat (updates). "rate_limits": only a 429, which Slack
    refused before doing anything, for calls that must not happen twice (posts, uploads): after a 5xx
    or a dropped connection the post may have gone through, and the outbox looks before sending again.
    "reads": everything a read may safely repeat, but only short 429 waits. "none": nothing."""
    if retries == "none":
        return []
    if retries == "rate_limits":
        return [AsyncRateLimitErrorRetryHandler(max_retry_count=2)]
    if retries == "reads":
        return [
            AsyncConnectionErrorRetryHandler(max_retry_count=2),
            ShortRateLimitRetry(max_wait=5, max_retry_count=2),
            AsyncServerErrorRetryHandler(max_retry_count=2),
        ]
    return [
        AsyncConnectionErrorRetryHandler(max_retry_count=2),
        AsyncRateLimitErrorRetryHandler(max_retry_count=2),
        AsyncServerErrorRetryHandler(max_retry_count=2),
    ]


# Told of every Web API call: (method, outcome), outcome one of ok, error, rate_limited, server_error, failed.
OnCall = Callable[[str, str], None]


class _Refusals(AsyncRetryHandler):
    """Sees every answer slack_sdk may retry, first: counts each 429 and 5xx Slack gave, including
    those retried away, and retries nothing itself (the handlers after it decide)."""

    def __init__(self, on_call: OnCall):
        super().__init__(max_retry_count=0)
        self.on_call = on_call

    async def can_retry_async(self, *, state: Any, request: Any, response: Any = None, error: Any = None) -> bool:
        status = getattr(response, "status_code", 0) if response is not None else 0
        if status == 429 or status >= 500:
            method = str(getattr(request, "url", "")).rsplit("/", 1)[-1].split("?", 1)[0] or "unknown"
            self.on_call(method, "rate_limited" if status == 429 else "server_error")
        return False


class MeteredWebClient(AsyncWebClient):
    """slack_sdk's client, telling `on_call` how each call ended (for the platform API metrics). A 429
    or 5xx is told by `_Refusals` as Slack gives it; here, the rest: ok, Slack's error, no answer."""

    on_call: OnCall | None = None

    async def api_call(self, api_method: str, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        if self.on_call is None:
            return await super().api_call(api_method, *args, **kwargs)
        try:
            response = await super().api_call(api_method, *args, **kwargs)
        except SlackApiError as exc:
            status = getattr(exc.response, "status_code", 200)
            if status != 429 and status < 500:  # those were told as they came
                self.on_call(api_method, "error")
            raise
        except Exception:
            self.on_call(api_method, "failed")
            raise
        self.on_call(api_method, "ok")
        return response


def make_client(
    *,
    token: str | None,
    base_url: str,
    session: aiohttp.ClientSession | None,
    timeout: float = 10.0,
    retries: Retries = "all",
    on_call: OnCall | None = None,
) -> AsyncWebClient:
    handlers = retry_handlers(retries)
    client = MeteredWebClient(
        token=token,
        base_url=base_url,
        session=session,
        timeout=int(max(1, timeout)),
        retry_handlers=[_Refusals(on_call), *handlers] if on_call is not None else handlers,
    )
    client.on_call = on_call
    return client


class SessionRespond(AsyncRespond):
    """Bolt's `respond` (a reply through the request's response_url) over the bot's one HTTP session.
    Bolt's own opens a new session, so a new connection, for every reply: two hundred seniors told
    "Already claimed" meant two hundred connections set up and torn down."""

    def __init__(self, response_url: str | None, session: aiohttp.ClientSession, timeout: float):
        super().__init__(response_url=response_url)
        self._session = session
        self._timeout = timeout

    async def __call__(self, text: str | dict = "", blocks: Any = None, **fields: Any) -> WebhookResponse:  # type: ignore[override]
        if self.response_url is None:
            raise ValueError("respond is unsupported here as there is no response_url")
        message = (
            _build_message(**text) if isinstance(text, dict) else _build_message(text=text, blocks=blocks, **fields)
        )
        client = AsyncWebhookClient(url=self.response_url, session=self._session, timeout=int(max(1, self._timeout)))
        return await client.send_dict(message)
