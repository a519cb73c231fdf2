"""What the bot answers in chat, on either platform, to `dashboard` (a private one-time link to the
leads' page) and `baseline N` (a measured manual handoff): leads only; anyone else is told who may."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from handoff.leads import BASELINE_MAX_MINUTES, LINK_MINUTES
from handoff.recovered import MEASURED_ENOUGH

NO_PUBLIC_URL = (
    "The leads' page is not set up: an operator sets PUBLIC_URL to where the bot is reached from a browser "
    "(https://…), and its link works from then on."
)


def not_a_lead(access: Any) -> str:
    return f"Only leads can do that here: {access.who_can}."


async def sign_in_reply(
    service: Any, access: Any, public_url: str | None, workspace_id: int, user: str, link: Callable[[str, str], str]
) -> str:
    if public_url is None:
        return NO_PUBLIC_URL
    if await access.role(workspace_id, user) is None:
        return not_a_lead(access)
    token = await service.sign_in_link(workspace_id, user)
    opened = link(f"{public_url}/dashboard/signin/{token}", "Open the leads' page")
    return f"{opened} (the link is yours alone: it works once, for the next {LINK_MINUTES} minutes)."


async def baseline_reply(service: Any, access: Any, workspace_id: int, user: str, typed: str, how: str) -> str:
    """`how`: the command as the platform spells it (`/escalate baseline 25`, `baseline 25`)."""
    if await access.role(workspace_id, user) is None:
        return not_a_lead(access)
    raw = typed.strip().removesuffix("minutes").removesuffix("min").strip()
    try:
        minutes = float(raw)
    except ValueError:
        minutes = -1.0
    if not 0 < minutes <= BASELINE_MAX_MINUTES:
        return (
            f"How long did a handoff take without the bot, in minutes? For example {how} (1 to {BASELINE_MAX_MINUTES})."
        )
    count = await service.record_baseline(workspace_id, user, minutes)
    if count >= MEASURED_ENOUGH:
        now = f"The hours-recovered estimate now uses the median of the {count} measured handoffs."
    else:
        now = f"With {MEASURED_ENOUGH - count} more, the hours-recovered estimate will use their median."
    return f"Recorded: a handoff without the bot took {minutes:g} min. {now}"
