"""Teams commands for one's own work, as Slack's `/escalate mine|stats|help` and App Home:
`queue` (the open escalations, most severe then oldest, each with the same race-safe Claim as the
card's), `mine`, `stats [queue]` and `help`."""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from microsoft_agents.activity import Activity
from microsoft_agents.hosting.core import TurnContext

from bot.dashboard import chat
from bot.phrases import ago_phrase
from bot.teams import cards
from bot.teams.cards import cut, rich, run
from bot.teams.replies import TRY_AGAIN, Bot, who
from bot.teams.text import plain
from handoff.domain import Closed, Done, Handoff, NotAllowed, Status
from handoff.report import WeeklyReport, as_text
from storage.db import StorageUnavailable

if TYPE_CHECKING:
    from handoff.service import HandoffService

StatsFor = Callable[[int, int | None], Awaitable[WeeklyReport]]

HELP = (
    "Send me **escalate** (optionally with a one-line summary, or **escalate billing: …** to pick the "
    "Billing queue) to ask a senior for help. **queue** shows what is waiting, with a Claim button on each; "
    "**mine** lists your open escalations; **cancel ESC-12** withdraws one of yours; **stats** (or "
    "**stats billing**) shows this week so far. "
    "A lead sets me up by mentioning me with **setup** in the escalation channel, **setup leads** in the "
    "leads channel, and **setup queue NAME** / **setup leads NAME** for a queue's channels."
)


def queue_card(
    open_ones: list[Handoff], total: int, names: dict[str, str], queue_names: dict[int, str], now: Any
) -> dict[str, Any]:
    """The open queue as a card: each escalation with its own Claim (Action.Execute, as on its card)."""
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": f"Open, waiting for a senior ({total})",
            "weight": "Bolder",
            "size": "Medium",
            "wrap": True,
        }
    ]
    if not open_ones:
        body.append(rich(run("Nothing is waiting. 🎉")))
    for h in open_ones:
        value: dict[str, Any] = {"h": h.id, "v": h.version, "from": "queue"}
        queue = ""
        if len(queue_names) > 1 and h.queue_id is not None:
            value["q"] = h.queue_id
            queue = f" · {cut(queue_names.get(h.queue_id, ''), 60)}"
        body.append(
            {
                "type": "Container",
                "separator": True,
                "items": [
                    rich(
                        run(f"{cards.SEVERITY_DOT[h.severity]} {h.ref} ", weight="Bolder"),
                        run(cut(h.summary, 200)),
                    ),
                    rich(
                        run(
                            f"{h.severity.label}{queue} · from {cut(names.get(h.requester_id, 'someone'), 80)}"
                            f" · opened {ago_phrase(h.created_at, now)}",
                            isSubtle=True,
                        ),
                        spacing="None",
                    ),
                    {
                        "type": "ActionSet",
                        "actions": [{"type": "Action.Execute", "title": "Claim", "verb": "claim", "data": value}],
                    },
                ],
            }
        )
    if total > len(open_ones):
        body.append(rich(run(f"…and {total - len(open_ones)} more, newer or less severe.", isSubtle=True)))
    return cards.card(body, fallback=f"{total} escalation(s) waiting for a senior.")


def mine_text(handoffs: list[Handoff], names: dict[str, str]) -> str:
    if not handoffs:
        return "You have no open escalations. Send me **escalate** when you need a senior."
    lines = [f"Your open escalations ({len(handoffs)}):"]
    for h in handoffs:
        state = (
            f"claimed by {plain(names.get(h.claimed_by or '', 'someone'))}"
            if h.status == Status.CLAIMED
            else "waiting for a senior"
        )
        lines.append(f"- {h.ref} {plain(cut(h.summary, 200))} · {h.severity.value} · {state}")
    return "\n\n".join(lines)


async def stats_text(service: HandoffService, stats_for: StatsFor | None, ws: int, queue_name: str) -> str:
    if stats_for is None:
        return "Stats are not available here."
    queue_id = None
    if queue_name:
        found = next((q for q in await service.queues(ws) if q.answers_to(queue_name)), None)
        if found is None:
            return f"There is no queue called {plain(cut(queue_name, 80))}."
        queue_id = found.id
    report = await stats_for(ws, queue_id)
    lines = [line for line in as_text(report).splitlines() if not set(line) <= {"="}]
    return "This week so far:\n\n" + "\n\n".join(plain(line) for line in lines)


async def own_work(bot: Bot, context: TurnContext) -> None:
    me = who(context)
    word = (context.activity.text or "").strip().split()[0].lower()
    if word == "help":
        await context.send_activity(HELP)
        return
    try:
        ws = await bot.service.workspace_id("teams", me.tenant)
        await bot._remember_chat(context, ws, me)
        if word == "mine":
            own = await bot.service.mine(ws, me.user_id)
            ids = [h.claimed_by for h in own if h.claimed_by]
            await context.send_activity(mine_text(own, await bot.service.names(ws, ids)))
            return
        open_ones, total = await bot.service.open_queue(ws)
        names = await bot.service.names(ws, [h.requester_id for h in open_ones])
        queue_names = {q.id: q.name for q in await bot.service.queues(ws)}
        content = queue_card(open_ones, total, names, queue_names, bot.service.clock())
    except StorageUnavailable:
        await context.send_activity(TRY_AGAIN)
        return
    await context.send_activity(Activity(type="message", attachments=[cards.attachment(content)]))


async def cancel(bot: Bot, context: TurnContext) -> None:
    me = who(context)
    ref = re.sub(r"^\s*cancel\b", "", context.activity.text or "", flags=re.IGNORECASE)
    try:
        ws = await bot.service.workspace_id("teams", me.tenant)
        h = await bot.service.by_ref(ws, ref)
        outcome = await bot.service.cancel(ws, h.id, me.user_id) if h is not None else None
    except StorageUnavailable:
        await context.send_activity(TRY_AGAIN)
        return
    if h is None or outcome is None:
        text = "Say which: **cancel ESC-12** (only the person who escalated it can)."
    elif isinstance(outcome, Done):
        text = f"{h.ref} is cancelled; its card says so and whoever held it is told in its replies."
    elif isinstance(outcome, NotAllowed):
        text = f"Only the person who escalated {h.ref} can cancel it."
    elif isinstance(outcome, Closed):
        text = f"{h.ref} is already {outcome.handoff.status.value}."
    else:
        text = "I can't find that escalation in this organisation."
    await context.send_activity(text)


async def stats(bot: Bot, context: TurnContext) -> None:
    me = who(context)
    queue_name = re.sub(r"^\s*stats\b", "", context.activity.text or "", flags=re.IGNORECASE).strip()
    try:
        ws = await bot.service.workspace_id("teams", me.tenant)
        if bot.leads and me.user_id not in bot.leads:
            text = "The week's figures are for the leads (TEAMS_LEAD_USER_IDS); they get them every week."
        else:
            text = await stats_text(bot.service, bot.stats_for, ws, queue_name)
    except StorageUnavailable:
        text = TRY_AGAIN
    await context.send_activity(text)


class Greeter:
    """Installed for a person, or added to a team: say how to use it, once. Teams announces one
    install twice (an installationUpdate and a conversationUpdate with the bot among the members
    added; the Agents Playground does the same), so a conversation greeted within the last
    WINDOW seconds is not greeted again. A conversationUpdate for other people joining says nothing."""

    WINDOW = 600.0

    def __init__(self) -> None:
        self._greeted: dict[str, float] = {}

    async def greet_if_added(self, context: TurnContext, added: list[str]) -> None:
        bot_id = context.activity.recipient.id if context.activity.recipient else None
        conversation = context.activity.conversation.id if context.activity.conversation else None
        if not bot_id or bot_id not in added or not conversation:
            return
        now = time.monotonic()
        self._greeted = {c: t for c, t in self._greeted.items() if now - t < self.WINDOW}
        if conversation in self._greeted:
            return
        self._greeted[conversation] = now
        await _greet(context)


async def _greet(context: TurnContext) -> None:
    kind = (context.activity.conversation.conversation_type or "personal") if context.activity.conversation else ""
    if kind == "personal":
        await context.send_activity('Hi! I turn "can someone help?" into a claimable handoff. ' + HELP)
        return
    await context.send_activity(
        "Thanks for adding me. A lead: mention me with **setup** in the channel that should get the escalation "
        "cards, and **setup leads** in the leads' channel. Then anyone can send me **escalate** to ask a senior."
    )


async def leads_page(bot: Bot, context: TurnContext) -> None:
    """`dashboard` (a private link to the leads' page) and `baseline N`, in a personal chat only: in a
    channel, a sign-in link would be everyone's."""
    me = who(context)
    typed = (context.activity.text or "").strip()
    word = typed.split()[0].lower() if typed else ""
    if (context.activity.conversation.conversation_type or "personal") != "personal":
        await context.send_activity(f"Ask me for **{word}** in a personal chat: the answer is yours alone.")
        return
    try:
        ws = await bot.service.workspace_id("teams", me.tenant)
        if word == "dashboard":
            text = await chat.sign_in_reply(
                bot.service, bot.access, bot.settings.public_url, ws, me.user_id, lambda url, label: f"[{label}]({url})"
            )
        else:
            text = await chat.baseline_reply(
                bot.service, bot.access, ws, me.user_id, typed[len(word) :], "**baseline 25**"
            )
    except StorageUnavailable:
        text = TRY_AGAIN
    await context.send_activity(text)
