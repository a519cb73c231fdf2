"""The App Home tab: the open queue (most severe, then oldest, first) with Claim buttons on
the same race-safe path as the card's, then "My escalations" and "My claims"."""

from __future__ import annotations

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View
from slack_sdk.web.async_client import AsyncWebClient

from bot.phrases import ago_phrase
from bot.slack import text as t
from bot.slack.cards import SEVERITY_EMOJI, status_line
from bot.slack.ids import ActionId, CardAction
from bot.slack.workspaces import SlackWorkspaces
from handoff.domain import Handoff
from handoff.service import HandoffService, HomeView, utcnow


def _title(h: Handoff) -> str:
    return f"{SEVERITY_EMOJI[h.severity]} *{t.link(h.card_url, h.ref)}* {t.fit(h.summary, 300)}"


def _button(label: str, action: ActionId, h: Handoff, style: str | None = None, *, queues: bool) -> ButtonElement:
    """A button as the card's: with several queues it carries the escalation's, so a claim from Home
    is gated by that queue's seniors (and told if it moved)."""
    return ButtonElement(
        text=PlainTextObject(text=label),
        action_id=action,
        value=CardAction(h=h.id, v=h.version, q=h.queue_id if queues else None).dump(),
        style=style,
    )


def home_blocks(
    view: HomeView,
    user: str,
    *,
    notice: str | None = None,
    names: dict[int, str] | None = None,
    claimable: set[int] | None = None,
) -> list[Block]:
    """The Home tab. Where the workspace has several queues (`names`), each open escalation names its
    queue, and those in the queues the viewer may claim in (`claimable`) come first."""
    now = utcnow()
    open_ones = view.open
    if names and claimable is not None:
        open_ones = sorted(view.open, key=lambda h: h.queue_id not in claimable)  # stable: severity, age
    blocks: list[Block] = [HeaderBlock(text=PlainTextObject(text="Escalations"))]
    if notice:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=f":information_source: {notice}")))
    blocks.append(SectionBlock(text=MarkdownTextObject(text=f"*Open, waiting for a senior* ({view.open_total})")))
    if not view.open:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text="Nothing is waiting. :tada:")]))
    for h in open_ones:
        waited = ago_phrase(h.created_at, now)
        queue = f" · {t.fit(names.get(h.queue_id or 0, ''), 60)}" if names else ""
        line = f"{_title(h)}\n{h.severity.label}{queue} · from {t.user(h.requester_id)} · opened {waited}"
        accessory = (
            None if h.requester_id == user else _button("Claim", ActionId.CLAIM, h, "primary", queues=bool(names))
        )
        blocks.append(SectionBlock(text=MarkdownTextObject(text=line), accessory=accessory))
    if view.open_total > len(view.open):
        more = view.open_total - len(view.open)
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=f"…and {more} more, newer or less severe.")]))

    blocks += [DividerBlock(), SectionBlock(text=MarkdownTextObject(text="*My escalations*"))]
    if not view.mine:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text="None open. Run `/escalate` to ask for help.")]))
    for h in view.mine:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=f"{_title(h)}\n{status_line(h)}")))

    blocks += [DividerBlock(), SectionBlock(text=MarkdownTextObject(text="*My claims*"))]
    if not view.claims:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text="You hold no escalations.")]))
    for h in view.claims:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=f"{_title(h)}\n{status_line(h)}")))
        # An actions block per claim: a section has room for one button only.
        blocks.append(
            ActionsBlock(
                elements=[
                    _button("Resolve", ActionId.RESOLVE, h, "primary", queues=bool(names)),
                    _button("Release", ActionId.RELEASE, h, queues=bool(names)),
                ]
            )
        )
    return blocks


async def publish_home(
    client: AsyncWebClient,
    service: HandoffService,
    workspace_id: int,
    user: str,
    *,
    notice: str | None = None,
    queue: tuple[list[Handoff], int] | None = None,
    workspaces: SlackWorkspaces | None = None,
) -> None:
    view = await service.home(workspace_id, user, queue=queue)
    names: dict[int, str] | None = None
    claimable: set[int] | None = None
    queues = await service.queues(workspace_id)
    if len(queues) > 1:
        names = {q.id: q.name for q in queues}
        if workspaces is not None:
            claimable = set()
            for q in queues:
                if await (await workspaces.seniors(workspace_id, q)).may_claim(client, user):
                    claimable.add(q.id)
    blocks = home_blocks(view, user, notice=notice, names=names, claimable=claimable)
    await client.views_publish(user_id=user, view=View(type="home", blocks=blocks).to_dict())
