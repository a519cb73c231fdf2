"""What the Teams handlers share: who sent an activity, where to write back later, and the answers
to an Action.Execute (a message, or the refreshed card)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from microsoft_agents.activity import AdaptiveCardInvokeResponse
from microsoft_agents.hosting.core import TurnContext

from bot.teams.cards import CARD_TYPE
from handoff.domain import MAX_ID

if TYPE_CHECKING:
    from handoff.report import WeeklyReport
    from handoff.service import HandoffService

MESSAGE_TYPE = "application/vnd.microsoft.activity.message"
TRY_AGAIN = "I couldn't reach my database just now, so nothing changed. Please try again in a moment."


def message_response(text: str) -> AdaptiveCardInvokeResponse:
    return AdaptiveCardInvokeResponse(status_code=200, type=MESSAGE_TYPE, value=text)


def card_response(content: dict[str, Any]) -> AdaptiveCardInvokeResponse:
    return AdaptiveCardInvokeResponse(status_code=200, type=CARD_TYPE, value=content)


@dataclass
class Who:
    tenant: str
    user_id: str
    name: str


def who(context: TurnContext) -> Who:
    a = context.activity
    sender = a.from_property
    channel_data = a.channel_data if isinstance(a.channel_data, dict) else {}
    tenant = (a.conversation.tenant_id if a.conversation else None) or (channel_data.get("tenant") or {}).get("id")
    if not tenant:
        raise LookupError("activity carries no tenant id")
    tenant = tenant.lower()  # the gate has checked it is this bot's tenant; one spelling for the workspace
    user_id = (getattr(sender, "aad_object_id", None) or sender.id) if sender else "unknown"
    return Who(tenant=tenant, user_id=user_id, name=(sender.name if sender and sender.name else user_id))


def reference_of(context: TurnContext, *, conversation_id: str | None = None) -> dict[str, Any]:
    ref = context.activity.get_conversation_reference()
    data = ref.model_dump(mode="json", by_alias=True, exclude_none=True)
    data.pop("activityId", None)
    if conversation_id is not None:
        data["conversation"]["id"] = conversation_id
    return data


MEMBER_PAGES = 20  # of up to 500 people each: a team of 10,000 is read to the end


async def team_names(client: Any, conversation_id: str, wanted: list[str]) -> dict[str, str]:
    """The display names of `wanted` (Entra object ids, or Teams ids) among a team conversation's
    members, read page by page from the connector (`pagedmembers`, which Teams and the Agents
    Playground both serve; looking one person up by Entra id is not served by the playground).
    Stops when all are found. Connector errors propagate to the caller."""
    left, found = set(wanted), {}
    token: str | None = None
    for _ in range(MEMBER_PAGES):
        page = await client.conversations.get_conversation_paged_members(
            conversation_id, page_size=500, continuation_token=token
        )
        for member in page.members or []:
            for key in (getattr(member, "aad_object_id", None), member.id):
                if key in left and member.name:
                    found[key] = member.name
                    left.discard(key)
        token = page.continuation_token
        if not left or not token:
            break
    return found


BROKEN_BUTTON = "That button doesn't carry a valid escalation; nothing changed."


def button_handoff(data: dict[str, Any]) -> int | None:
    """The handoff id an Action.Execute carries, or None when it is missing or forged."""
    handoff_id = data.get("h")
    if isinstance(handoff_id, bool) or not isinstance(handoff_id, int) or not 1 <= handoff_id <= MAX_ID:
        return None  # `true` is not escalation 1, and nothing past the column's range is ours
    return handoff_id


def button_queue(data: dict[str, Any]) -> int | None:
    """The queue whose card an Action.Execute came from (multi-queue cards carry it), or None."""
    value = data.get("q")
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID else None


class Bot(Protocol):
    """What the handlers outside `bot.teams.app` use of the Teams bot (so they need not import it)."""

    service: HandoffService
    leads: list[str]
    stats_for: Callable[[int, int | None], Awaitable[WeeklyReport]] | None

    async def _remember_chat(self, context: TurnContext, ws: int, me: Who) -> None: ...

    async def _senior_choices(self, ws: int) -> list[tuple[str, str]]: ...
