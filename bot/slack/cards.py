"""The escalation card in Block Kit: a pure function of a handoff.

Every piece of typed text goes through `text.fit` (escaped, cut with …); the
only mentions on a card are of user ids Slack itself gave us.
"""

from __future__ import annotations

from datetime import UTC, datetime

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

from bot.phrases import after_phrase
from bot.slack import text as t
from bot.slack.ids import ActionId, CardAction
from handoff.domain import Handoff, Severity, Status

SEVERITY_EMOJI = {
    Severity.P1: ":red_circle:",
    Severity.P2: ":large_orange_circle:",
    Severity.P3: ":large_yellow_circle:",
    Severity.P4: ":white_circle:",
}


def _section(title: str, body: str | None, empty: str) -> SectionBlock:
    head = f"*{title}*\n"
    content = t.fit(body, t.SECTION_TEXT_MAX - len(head)) if body else f"_{empty}_"
    return SectionBlock(text=MarkdownTextObject(text=head + content))


def status_line(h: Handoff) -> str:
    if h.status == Status.CLAIMED and h.claimed_at is not None:
        after = after_phrase(h.created_at, h.claimed_at)
        return f":raised_hand: Claimed by {t.user(h.claimed_by)} · {after} after escalation"
    if h.status == Status.RESOLVED and h.resolved_at is not None:
        after = after_phrase(h.created_at, h.resolved_at)
        return f":white_check_mark: Resolved by {t.user(h.resolved_by)} · {after} after escalation"
    if h.status == Status.CANCELLED:
        by = f" by {t.user(h.cancelled_by)}" if h.cancelled_by else ""
        after = f" · {after_phrase(h.created_at, h.cancelled_at)} after escalation" if h.cancelled_at else ""
        return f":no_entry_sign: Cancelled{by}{after}"
    return ":hourglass_flowing_sand: Open · waiting for a senior to claim it"


TRANSCRIPT_LINES = 8
TRANSCRIPT_LINE_MAX = 300


def thread_section(h: Handoff) -> SectionBlock | None:
    """An escalation made from a message: the thread as a short timeline, or a link when it was not copied."""
    source = h.source or {}
    if not source:
        return None
    url = source.get("permalink")
    head = "*What's been tried in the thread*\n"
    if not h.transcript:
        why = " (I couldn't read it)" if source.get("thread") == "linked" else ""
        where = t.link(url, "the original message")
        return SectionBlock(text=MarkdownTextObject(text=f"{head}_The thread is linked, not copied{why}:_ {where}"))
    lines = []
    shown = h.transcript[-TRANSCRIPT_LINES:]
    for m in shown:
        try:
            at = datetime.fromtimestamp(float(m.get("ts") or 0), UTC)
            when = f"<!date^{int(at.timestamp())}^{{time}}|{at:%H:%M} UTC>"
        except (TypeError, ValueError, OverflowError):
            when = ""
        said = " ".join(str(m.get("text") or "").split())
        lines.append(f"• {when} {t.user(m.get('user'))}: {t.fit(said, TRANSCRIPT_LINE_MAX)}")
    more = len(h.transcript) - len(shown)
    tail = (f"_…and {more} earlier message{'s' if more != 1 else ''}_ · " if more > 0 else "") + (
        t.link(url, "open the thread") if url else ""
    )
    body = "\n".join(lines)
    room = t.SECTION_TEXT_MAX - len(head) - len(tail) - 1
    if len(body) > room:
        body = body[: room - 1].rsplit("\n", 1)[0] + "\n…"
    return SectionBlock(text=MarkdownTextObject(text=f"{head}{body}\n{tail}".rstrip()))


def similar_section(h: Handoff) -> SectionBlock | None:
    if not h.similar:
        return None
    lines = []
    for s in h.similar[:3]:
        ref = t.link(s.get("url"), f"ESC-{s.get('number')}")
        note = " ".join(str(s.get("resolution") or "").split())
        lines.append(
            f"• {ref} {t.fit(str(s.get('summary') or ''), 150)}\n"
            f"    _Fixed:_ {t.fit(note, 400)} · resolved by {t.user(s.get('resolved_by'))}"
        )
    return SectionBlock(text=MarkdownTextObject(text="*Similar resolved escalations*\n" + "\n".join(lines)))


def handover_blocks(h: Handoff) -> list[Block]:
    """Where it came from, at the top of the card: the last hand-over's note and, when the holder
    escalated further, what they tried."""
    if not h.handovers:
        return []
    last = h.handovers[-1]
    note = " ".join(str(last.get("note") or "").split())
    said = f": {t.fit(note, 1500)}" if note else ""
    source = t.fit(str(last.get("from") or ""), 80)
    came = f":leftwards_arrow_with_hook: *Moved here from {source}* by {t.user(last.get('by'))}{said}"
    blocks: list[Block] = [SectionBlock(text=MarkdownTextObject(text=came))]
    if last.get("tried"):
        blocks.append(_section(f"What {t.user(last.get('by'))} tried", str(last.get("tried")), ""))
    return blocks


def card_blocks(h: Handoff, queue_name: str | None = None) -> list[Block]:
    """The card. `queue_name`: in a workspace with several queues, the one it is in (the card names
    it, and offers to move it)."""
    value = CardAction(h=h.id, v=h.version, q=h.queue_id if queue_name else None).dump()
    in_queue = f" · Queue: *{t.fit(queue_name, 80)}*" if queue_name else ""
    requested = (
        f" · asked for {t.user(h.requested_senior_id)}" if h.requested_senior_id and h.status == Status.OPEN else ""
    )
    epoch = int(h.created_at.timestamp())
    opened = f"<!date^{epoch}^{{date_short_pretty}} at {{time}}|{h.created_at:%Y-%m-%d %H:%M} UTC>"
    blocks: list[Block] = [
        HeaderBlock(
            text=PlainTextObject(text=f"{SEVERITY_EMOJI[h.severity]} {h.severity.label} · {h.ref}", emoji=True)
        ),
        SectionBlock(text=MarkdownTextObject(text="*" + t.fit(h.summary, t.SECTION_TEXT_MAX - 2) + "*")),
        ContextBlock(
            elements=[MarkdownTextObject(text=f"Escalated by {t.user(h.requester_id)} · {opened}{requested}{in_queue}")]
        ),
        *handover_blocks(h),
        _section("Problem", h.details, "No details given beyond the summary."),
        # Escalated from a message with nothing typed here: the thread below says what was tried.
        *([] if h.source and not h.tried else [_section("What was tried", h.tried, "Nothing listed.")]),
        _section("Customer / environment", h.customer, "Not given."),
        *[b for b in (thread_section(h), similar_section(h)) if b is not None],
        DividerBlock(),
        ContextBlock(elements=[MarkdownTextObject(text=status_line(h))]),
    ]
    if h.status == Status.RESOLVED:
        blocks.append(_section("Resolution", h.resolution, "No note."))
    if h.status == Status.OPEN:
        blocks.append(
            ActionsBlock(
                block_id="card_actions",
                elements=[
                    ButtonElement(
                        text=PlainTextObject(text="Claim"),
                        action_id=ActionId.CLAIM,
                        value=value,
                        style="primary",
                    ),
                    *(
                        [ButtonElement(text=PlainTextObject(text="Move"), action_id=ActionId.MOVE, value=value)]
                        if queue_name
                        else []
                    ),
                ],
            )
        )
    elif h.status == Status.CLAIMED:
        blocks.append(
            ActionsBlock(
                block_id="card_actions",
                elements=[
                    ButtonElement(
                        text=PlainTextObject(text="Resolve"),
                        action_id=ActionId.RESOLVE,
                        value=value,
                        style="primary",
                    ),
                    ButtonElement(text=PlainTextObject(text="Release"), action_id=ActionId.RELEASE, value=value),
                    *(
                        [
                            ButtonElement(
                                text=PlainTextObject(text="Escalate further"), action_id=ActionId.MOVE, value=value
                            )
                        ]
                        if queue_name
                        else []
                    ),
                ],
            )
        )
    return blocks


def card_fallback(h: Handoff) -> str:
    """The notification text (and what screen readers and old clients show)."""
    state = {Status.OPEN: "open", Status.CLAIMED: "claimed", Status.RESOLVED: "resolved"}.get(h.status, h.status)
    return t.fit(f"{h.severity.value} {h.ref} ({state}): {h.summary}", 300)


def card_payload(h: Handoff, queue_name: str | None = None) -> dict[str, object]:
    return {"blocks": [b.to_dict() for b in card_blocks(h, queue_name)], "text": card_fallback(h)}


def moved_card_payload(h: Handoff, moved: dict[str, object]) -> dict[str, object]:
    """The card an escalation had in the queue it left: what it was about, where it went, by whom
    and why, a link to its card there, and no buttons."""
    note = " ".join(str(moved.get("note") or "").split())
    said = f": {t.fit(note, 1500)}" if note else ""
    there = f" · {t.link(h.card_url, 'open it there')}" if h.card_url else ""
    to = t.fit(str(moved.get("to") or ""), 80)
    blocks: list[Block] = [
        HeaderBlock(
            text=PlainTextObject(text=f"{SEVERITY_EMOJI[h.severity]} {h.severity.label} · {h.ref}", emoji=True)
        ),
        SectionBlock(text=MarkdownTextObject(text="*" + t.fit(h.summary, t.SECTION_TEXT_MAX - 2) + "*")),
        DividerBlock(),
        SectionBlock(
            text=MarkdownTextObject(
                text=f":arrow_right: *Moved to {to}* by {t.user(str(moved.get('actor') or ''))}{said}{there}"
            )
        ),
    ]
    return {
        "blocks": [b.to_dict() for b in blocks],
        "text": t.fit(f"{h.ref} moved to {moved.get('to')}: {h.summary}", 300),
    }
