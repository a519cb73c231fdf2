"""The Slack Web API client: shared session, our base URL, retries switched on.

slack_sdk retries only connection errors by default; 429 (honouring
Retry-After) and 5xx are added here.
"""

from __future__ import annotations

import aiohttp
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient


def retry_handlers() -> list:
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
    retries: bool = True,
) -> AsyncWebClient:
    """`retries=False` leaves slack_sdk's default (one retry of a failed connection) and never waits
    out a 429's Retry-After or retries a 5xx: for a call whose caller copes with failing instead."""
    return AsyncWebClient(
        token=token,
        base_url=base_url,
        session=session,
        timeout=int(max(1, timeout)),
        retry_handlers=retry_handlers() if retries else None,
    )
