"""The weekly report as an Adaptive Card for the Teams leads channel: the figures in FactSets (our
own numbers only), what people typed or chose (customers, names, queue names) in TextRuns, and the
chart inline as a base64 PNG (Teams leaves such images out of a message's size limit)."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

from bot.teams.cards import card, cut, rich, run
from handoff.report import WeeklyReport, baseline_note, change, minutes, pilot_note, summary_line

CHART_ALT = "Escalations per day (bars) and median time to claim per day (line), this week against last"


def _facts(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    return {"type": "FactSet", "facts": [{"title": k, "value": v} for k, v in pairs], "spacing": "Medium"}


def report_card(r: WeeklyReport, names: dict[str, str], chart_png: bytes | None) -> dict[str, Any]:
    w, p = r.this, r.last
    days = f"{r.week_start:%a %d %b} – {r.week_start + timedelta(days=6):%a %d %b %Y}"
    body: list[dict[str, Any]] = [
        rich(
            run("Escalations · ", weight="Bolder", size="Medium"),
            *([run(cut(r.queue, 60) + " · ", weight="Bolder", size="Medium")] if r.queue else []),
            run(f"week {r.week}", weight="Bolder", size="Medium"),
        ),
        rich(run(f"{days} · {r.timezone}", isSubtle=True), spacing="None"),
    ]
    if r.empty:
        before = f" (the week before: {p.opened})" if p.opened else ""
        body.append(rich(run(f"No escalations were opened this week{before}.")))
        return card(body, fallback=summary_line(r))
    body.append(
        _facts(
            [
                ("Opened", f"{w.opened}{change(w.opened, p.opened)}"),
                ("Claimed", f"{w.claimed}{change(w.claimed, p.claimed)}"),
                ("Resolved", f"{w.resolved}{change(w.resolved, p.resolved)}"),
                ("Still open", str(w.still_open) + (f" ({w.cancelled} cancelled)" if w.cancelled else "")),
                (
                    "Time to claim",
                    f"median {minutes(w.to_claim_median)}"
                    f"{change(w.to_claim_median, p.to_claim_median, as_minutes=True)}, p90 {minutes(w.to_claim_p90)}"
                    if w.claimed
                    else "nothing opened this week was claimed",
                ),
                ("Claim to first action", f"median {minutes(w.to_action_median)}"),
                ("Time to resolve", f"median {minutes(w.to_resolve_median)}"),
                ("Contested claims", str(w.contested)),
                ("By severity", " · ".join(f"{k} {v}" for k, v in sorted(w.by_severity.items()))),
            ]
        )
    )
    if r.hours_recovered is not None:
        body.append(
            rich(
                run(f"Estimated hours recovered: {r.hours_recovered:.1f} h", weight="Bolder"),
                run(f" over {w.first_actions} handoffs. "),
                run(baseline_note(r), isSubtle=True),
                *([run(f" Last 4 weeks: {verdict}")] if (verdict := pilot_note(r)) else []),
                spacing="Medium",
            )
        )

    def line(title: str, items: list[str]) -> None:
        if items:
            body.append(rich(run(f"{title}: ", weight="Bolder"), run(" · ".join(items)), spacing="Small"))

    line("Busiest customers", [f"{cut(c, 80)} ({n})" for c, n in w.top_customers])
    line("Claims", [f"{cut(names.get(u, 'someone'), 60)} {n}" for u, n in list(w.claims_by.items())[:15]])
    line("Resolves", [f"{cut(names.get(u, 'someone'), 60)} {n}" for u, n in list(w.resolves_by.items())[:15]])
    line(
        "By queue",
        [f"{cut(q, 60)}: opened {o}, claimed {c}, median to claim {minutes(m)}" for q, o, c, m in r.per_queue[:20]],
    )
    if w.moves:
        line(
            f"Moved between queues ({sum(n for _, _, n in w.moves)})",
            [f"{cut(a, 40)} → {cut(b, 40)} {n}" for a, b, n in w.moves[:10]],
        )
    if chart_png:
        body.append(
            {
                "type": "Image",
                "url": "data:image/png;base64," + base64.b64encode(chart_png).decode("ascii"),
                "altText": CHART_ALT,
                "size": "Stretch",
                "spacing": "Medium",
            }
        )
    return card(body, fallback=summary_line(r))
