"""Teams commands for one's own work, as Slack's `/escalate mine|stats|help` and App Home:
`queue` (the open escalations, most severe then oldest, each with the same race-safe Claim as the
card's), `mine`, `stats [queue]` and `help`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from bot.phrases import ago_phrase
from bot.teams import cards
from bot.teams.cards import cut, rich, run
from bot.teams.text import plain
from handoff.domain import Handoff, Status
from handoff.report import WeeklyReport, as_text

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
