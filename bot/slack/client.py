"""The Slack Web API client: shared session, our base URL, retries switched on.

slack_sdk retries only connection errors by default; which calls may retry what is chosen here.
"""

from __future__ import annotations

from typing import Literal

import aiohttp
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

Retries = Literal["all", "rate_limits", "none"]


def retry_handlers(retries: Retries = "all") -> list[AsyncRetryHandler]:
    """What slack_sdk may retry by itself. "all": a dropped connection, a 429 (after its Retry-After)
    and a 5xx, for calls that are safe to repeat (updates, reads). "rate_limits": only a 429, which
    Slack refused before doing anything, for calls that must not happen twice (posts, uploads): after
    a 5xx or a dropped connection the post may have gone through, and the outbox looks before sending
    again. "none": the caller copes with failing (a 429 comes back to it with its Retry-After)."""
    if retries == "none":
        return []
    if retries == "rate_limits":
        return [AsyncRateLimitErrorRetryHandler(max_retry_count=2)]
    return [
        AsyncConnectionErrorRetryHandler(max_retry_count=2),
        AsyncRateLimitErrorRetryHandler(max_retry_count=2),
        AsyncServerErrorRetryHandler(max_retry_count=2),
    ]


def make_client(
    *,
    token: str | None,
    base_url: str,
    session: aiohttp.ClientSession | None,
    timeout: float = 10.0,
    retries: Retries = "all",
) -> AsyncWebClient:
    return AsyncWebClient(
        token=token,
        base_url=base_url,
        session=session,
        timeout=int(max(1, timeout)),
        retry_handlers=retry_handlers(retries),
    )
