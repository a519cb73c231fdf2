"""Was it already sent? The check made before sending again anything whose earlier attempt may
have gone through (an answer that never came, a 5xx, a dropped connection, a crash, `outbox retry`).

Every message the bot posts carries its outbox key in Slack message metadata; the check reads the
conversation (or the thread) back from shortly before the row was queued, newest first, within
Slack's limits: it asks for 200 messages a call (Slack's recommended most; apps distributed outside
the Marketplace are given 15, and may call once a minute: a longer wait comes back as "rate
limited" and the row waits it out). A file share carries no metadata: it is recognised by its name.
If the check cannot run (the history cannot be read, or Slack rate-limits the reading), the row
waits and checks again; it never sends blind.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from storage.outbox import OutboxItem

log = logging.getLogger(__name__)

METADATA_TYPE = "escalation_bot_message"
PAGE = 200  # messages asked for per history call (Slack gives apps outside the Marketplace 15)
PAGES_PER_ATTEMPT = 20  # stops earlier if Slack rate-limits the reading (then the row waits)


def metadata(item: OutboxItem) -> dict[str, Any]:
    """What a message carries so a later attempt can recognise it."""
    return {"event_type": METADATA_TYPE, "event_payload": {"key": item.dedupe_key}}


@dataclass
class CannotCheck(Exception):
    """The check could not run; try it again later (after `after` seconds, if Slack said)."""

    reason: str
    after: float | None = None

    def __str__(self) -> str:
        return self.reason


def _retry_after(exc: SlackApiError) -> float | None:
    headers = getattr(exc.response, "headers", None) or {}
    for key, value in headers.items():
        if key.lower() == "retry-after":
            try:
                return float(value[0] if isinstance(value, list) else value)
            except (TypeError, ValueError):
                return None
    return None


def _is_ours(message: dict[str, Any], item: OutboxItem, filename: str | None) -> bool:
    if filename is not None:
        return any((f or {}).get("name") == filename for f in message.get("files") or [])
    md = message.get("metadata") or {}
    return md.get("event_type") == METADATA_TYPE and (md.get("event_payload") or {}).get("key") == item.dedupe_key


async def find_sent(
    client: AsyncWebClient,
    item: OutboxItem,
    *,
    channel: str,
    thread_ts: str | None = None,
    filename: str | None = None,
) -> str | None:
    """The ts of the message `item` already became, or None if it is not there. Raises CannotCheck."""
    oldest = f"{item.created_at.timestamp() - 60:.6f}"
    cursor: str | None = None
    try:
        for _page in range(PAGES_PER_ATTEMPT):
            args: dict[str, Any] = {"channel": channel, "oldest": oldest, "limit": PAGE, "cursor": cursor}
            if filename is None:
                args["include_all_metadata"] = True
            if thread_ts:
                resp = await client.conversations_replies(ts=thread_ts, **args)
            else:
                resp = await client.conversations_history(**args)
            for m in resp.get("messages") or []:
                if _is_ours(m, item, filename):
                    log.info("%s was already delivered by an earlier attempt", item.dedupe_key)
                    return str(m["ts"])
            cursor = (resp.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                return None
    except SlackApiError as exc:
        status = getattr(exc.response, "status_code", 0)
        error = str(exc.response.get("error") or f"HTTP {status}")
        if status == 429 or error == "ratelimited":
            raise CannotCheck("Slack rate-limited reading the history back", _retry_after(exc)) from None
        hint = " (the app needs its *:history scopes and to be in the channel)" if error != "internal_error" else ""
        raise CannotCheck(f"Slack would not let me read the history back: {error}{hint}") from None
    raise CannotCheck(f"more than {PAGES_PER_ATTEMPT} pages of messages to look through since it was queued")
