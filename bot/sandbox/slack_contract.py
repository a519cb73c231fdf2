"""What Slack's Web API promises and refuses, method by method, for the fake Slack to enforce.

Taken from Slack's method reference (docs.slack.dev/reference/methods/…): the bot-token scopes each
method needs, its rate-limit tier, and whether it changes anything. The tiers are per method per
workspace: Tier 1 1+/min, Tier 2 20+/min, Tier 3 50+/min, Tier 4 100+/min, each tolerating bursts;
chat.postMessage allows about one message per second per channel, with short bursts. Since May 2025
apps distributed outside the Slack Marketplace may read conversations.history and .replies only
once a minute, 15 messages a call (`non_marketplace`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

HISTORY = "history"  # the scope depends on the conversation: channels:, groups:, im: or mpim:history
POST = "post"  # chat.postMessage's own limit: per channel


@dataclass(frozen=True)
class Method:
    scopes: tuple[str, ...] = ()
    tier: str = "4"
    writes: bool = False
    needs_token: bool = True


METHODS: dict[str, Method] = {
    "auth.test": Method(tier="4"),
    "chat.postMessage": Method(("chat:write",), tier=POST, writes=True),
    "chat.update": Method(("chat:write",), tier="3", writes=True),
    "chat.postEphemeral": Method(("chat:write",), tier="4", writes=True),
    "chat.getPermalink": Method(tier="4"),
    "views.open": Method(tier="4", writes=True),
    "views.update": Method(tier="4", writes=True),
    "views.publish": Method(tier="4", writes=True),
    "usergroups.users.list": Method(("usergroups:read",), tier="2"),
    "conversations.open": Method(("im:write",), tier="3", writes=True),
    "users.info": Method(("users:read",), tier="4"),
    "conversations.history": Method((HISTORY,), tier=HISTORY),
    "conversations.replies": Method((HISTORY,), tier=HISTORY),
    "files.getUploadURLExternal": Method(("files:write",), tier="4", writes=True),
    "files.completeUploadExternal": Method(("files:write",), tier="4", writes=True),
    "oauth.v2.access": Method(tier="4", needs_token=False),
}

PER_MINUTE = {"1": 1, "2": 20, "3": 50, "4": 100}
HISTORY_LIMIT_MAX = 1000  # Marketplace and internal apps (200 recommended)
NON_MARKETPLACE_HISTORY_LIMIT = 15


def history_scope(channel_id: str, private: bool) -> str:
    if channel_id.startswith("D"):
        return "im:history"
    if channel_id.startswith("G") or private:
        return "groups:history"
    return "channels:history"


@dataclass
class _Bucket:
    capacity: float
    per_second: float
    tokens: float
    at: float = field(default_factory=time.monotonic)

    def take(self) -> float:
        """0 if a call may go now (and counts it), else the seconds until one may."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.per_second)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.per_second


class RateLimits:
    """Token buckets per workspace and method (and channel, for posting). `scale` multiplies every
    rate: a test that needs more speed than Slack allows raises it explicitly and says why."""

    def __init__(self, *, scale: float = 1.0, non_marketplace: bool = False, enabled: bool = True):
        self.scale = scale
        self.non_marketplace = non_marketplace
        self.enabled = enabled
        self._buckets: dict[tuple[str, ...], _Bucket] = {}

    def _shape(self, tier: str) -> tuple[float, float]:
        """(burst capacity, calls per second) for a tier."""
        if tier == POST:
            return 10 * self.scale, 1.0 * self.scale
        if tier == HISTORY:
            if self.non_marketplace:
                return 1 * self.scale, self.scale / 60
            tier = "3"
        per_minute = PER_MINUTE[tier] * self.scale
        return per_minute, per_minute / 60

    def wait(self, team: str, method: str, channel: str | None = None) -> int:
        """0 if the call may go now, else the Retry-After seconds Slack would send."""
        spec = METHODS.get(method)
        if not self.enabled or spec is None:
            return 0
        key = (team, method, channel or "") if spec.tier == POST else (team, method)
        bucket = self._buckets.get(key)
        if bucket is None:
            capacity, per_second = self._shape(spec.tier)
            bucket = self._buckets[key] = _Bucket(capacity, per_second, capacity)
        seconds = bucket.take()
        return 0 if seconds == 0 else max(1, math.ceil(seconds))

    def history_limit(self, asked: object) -> int:
        """The number of messages one history call returns for the `limit` asked."""
        cap = NON_MARKETPLACE_HISTORY_LIMIT if self.non_marketplace else HISTORY_LIMIT_MAX
        try:
            wanted = int(str(asked)) if asked not in (None, "") else (15 if self.non_marketplace else 100)
        except ValueError:
            wanted = 100
        return max(1, min(cap, wanted))
