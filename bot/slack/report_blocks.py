"""The leads' weekly post in Block Kit: a pure function of the report."""

from __future__ import annotations

from datetime import timedelta

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from bot.slack import text as t
from handoff.report import WeeklyReport, baseline_note, change, minutes, pilot_note, summary_line


def _field(label: str, value: str) -> MarkdownTextObject:
    return MarkdownTextObject(text=f"*{label}*\n{value}")


def report_blocks(r: WeeklyReport) -> list[Block]:
    w, p = r.this, r.last
    days = f"{r.week_start:%a %d %b} – {r.week_start + timedelta(days=6):%a %d %b %Y}"
    blocks: list[Block] = [
        HeaderBlock(
            text=PlainTextObject(
                text=f"Escalations{' · ' + t.cut_plain(r.queue, 60) if r.queue else ''} · week {r.week}"
            )
        ),
        ContextBlock(elements=[MarkdownTextObject(text=f"{days} · {t.escape(r.timezone)}")]),
    ]
    if r.empty:
        before = f" (the week before: {p.opened})" if p.opened else ""
        blocks.append(SectionBlock(text=MarkdownTextObject(text=f"No escalations were opened this week{before}.")))
        return blocks
    blocks.append(
        SectionBlock(
            fields=[
                _field("Opened", f"{w.opened}{change(w.opened, p.opened)}"),
                _field("Claimed", f"{w.claimed}{change(w.claimed, p.claimed)}"),
                _field("Resolved", f"{w.resolved}{change(w.resolved, p.resolved)}"),
                _field("Still open", str(w.still_open) + (f" ({w.cancelled} cancelled)" if w.cancelled else "")),
            ]
        )
    )
    speed = [
        _field(
            "Time to claim",
            f"median {minutes(w.to_claim_median)}{change(w.to_claim_median, p.to_claim_median, as_minutes=True)}"
            f"\np90 {minutes(w.to_claim_p90)}"
            if w.claimed
            else "nothing opened this week was claimed",
        ),
        _field(
            "Claim to first action",
            f"median {minutes(w.to_action_median)}{change(w.to_action_median, p.to_action_median, as_minutes=True)}"
            if w.to_action_median is not None
            else "no first actions yet",
        ),
        _field("Time to resolve", f"median {minutes(w.to_resolve_median)}"),
        _field("Contested claims", f"{w.contested} (more than one senior clicked Claim)"),
    ]
    blocks.append(SectionBlock(fields=speed))
    if r.hours_recovered is not None:
        verdict = pilot_note(r)
        blocks.append(
            SectionBlock(
                text=MarkdownTextObject(
                    text=f"*Estimated hours recovered: {r.hours_recovered:.1f} h* over {w.first_actions} handoffs\n"
                    f"_{t.escape(baseline_note(r))}_" + (f"\n*Last 4 weeks:* {t.escape(verdict)}" if verdict else "")
                )
            )
        )
    blocks.append(DividerBlock())
    sev = " · ".join(f"{k} {v}" for k, v in sorted(w.by_severity.items()))
    details = [f"*By severity:* {sev}"]
    if w.top_customers:
        details.append("*Busiest customers:* " + " · ".join(f"{t.fit(c, 80)} ({n})" for c, n in w.top_customers))
    if w.claims_by:
        details.append("*Claims:* " + " · ".join(f"{t.user(u)} {n}" for u, n in list(w.claims_by.items())[:15]))
    if w.resolves_by:
        details.append("*Resolves:* " + " · ".join(f"{t.user(u)} {n}" for u, n in list(w.resolves_by.items())[:15]))
    if r.per_queue:
        details.append(
            "*By queue:*\n"
            + "\n".join(
                f"• {t.fit(name, 60)}: opened {opened}, claimed {claimed}, median time to claim {minutes(median)}"
                for name, opened, claimed, median in r.per_queue[:20]
            )
        )
    if w.moves:
        moved = " · ".join(f"{t.fit(a, 40)} → {t.fit(b, 40)} {n}" for a, b, n in w.moves[:10])
        details.append(f"*Moved between queues:* {sum(n for _, _, n in w.moves)} ({moved})")
    blocks.append(SectionBlock(text=MarkdownTextObject(text=t.cut_plain("\n".join(details), t.SECTION_TEXT_MAX))))
    return blocks


def report_fallback(r: WeeklyReport) -> str:
    """The post's `text` (notifications, and clients that cannot show blocks): Slack reads it as
    mrkdwn, so the queue's name in it is escaped like all text people type."""
    return t.escape(summary_line(r))
