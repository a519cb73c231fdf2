"""`/escalate dashboard` and `/escalate baseline N` (bot/dashboard/chat.py says what is answered)."""

from __future__ import annotations

from bot.dashboard import chat
from bot.slack import text as t
from bot.slack.deps import SlackDeps


async def sign_in_link(deps: SlackDeps, workspace_id: int, user: str) -> str:
    return await chat.sign_in_reply(deps.service, deps.access, deps.public_url, workspace_id, user, t.link)


async def baseline(deps: SlackDeps, workspace_id: int, user: str, typed: str) -> str:
    return await chat.baseline_reply(deps.service, deps.access, workspace_id, user, typed, "`/escalate baseline 25`")
