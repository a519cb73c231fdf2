"""The leads' weekly report: what it says, computed for one workspace and one week.

The hours-recovered figure is an estimate: for every escalation whose claimer took a
first action, the manual baseline (minutes a senior spent getting context before the bot,
an input) minus the measured minutes from claim to first action. It is always shown with
its baseline beside it.
"""

from __future__ import annotations

import unicodedata
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo

from handoff.recovered import PILOT_WEEKS, Baseline, Recovered, baseline_from, hours, recovered
from handoff.schedule import day_bounds, iso_week, local_midnight, week_bounds, week_start_of
from storage import dashboard as measured
from storage.db import Database
from storage.reports import Facts, Opened, WeekFigures, facts_as_of, per_queue, read_opened, week_figures


@dataclass
class WeeklyReport:
    workspace_id: int
    week_start: date
    timezone: str
    baseline_minutes: int
    this: WeekFigures
    last: WeekFigures
    hours_recovered: float | None = None
    hours_recovered_last: float | None = None
    notes: list[str] = field(default_factory=list)
    queue: str | None = None  # one queue's report; None: the whole workspace
    # The workspace's report, where it has several queues: (queue, opened, claimed, median to claim).
    per_queue: list[tuple[str, int, int, float | None]] = field(default_factory=list)
    # The baseline the hours are counted against (measured by leads, or assumed), and the last four
    # weeks' hours a week against the line a pilot is judged by.
    baseline: Baseline | None = None
    pilot: Recovered | None = None

    @property
    def week(self) -> str:
        return iso_week(self.week_start)

    @property
    def empty(self) -> bool:
        return self.this.opened == 0

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["week"] = self.week
        out["week_start"] = self.week_start.isoformat()
        out["this"]["top_customers"] = [list(x) for x in self.this.top_customers]
        out["last"]["top_customers"] = [list(x) for x in self.last.top_customers]
        return out


def baseline_note(r: WeeklyReport) -> str:
    """What the hours are counted against, said plainly: measured by the leads, or assumed."""
    b = r.baseline
    if b is not None and b.measured:
        span = ""
        if b.low is not None and b.high is not None and r.this.first_actions:
            low, high = hours(r.this, b.low), hours(r.this, b.high)
            span = f"; 90% interval {b.low:g}–{b.high:g} min, so {low:.1f}–{high:.1f} h"
        return (
            f"Measured from {b.measured_from} handoffs: a handoff without the bot took {b.minutes:g} min "
            f"(the median the leads recorded{span}), minus the measured time from claim to first action."
        )
    return (
        f"An estimate, not a measurement: a baseline of {r.baseline_minutes} min of manual handoff per escalation "
        "(MANUAL_BASELINE_MINUTES, assumed; leads can measure it with /escalate baseline N), minus the measured "
        "time from claim to first action."
    )


def pilot_note(r: WeeklyReport) -> str | None:
    """Whether the last four weeks beat the line a pilot is judged by (None before any first action)."""
    return r.pilot.verdict() if r.pilot is not None else None


def recovered_hours(w: WeekFigures, baseline_minutes: float) -> float | None:
    return hours(w, baseline_minutes)


async def baseline_of(conn: Any, workspace_id: int, assumed_minutes: int) -> Baseline:
    """The workspace's baseline: the median of its leads' measured handoffs (five or more), else the
    admin's assumed MANUAL_BASELINE_MINUTES."""
    return baseline_from(await measured.measurements(conn, workspace_id), assumed_minutes)


def pilot_window(weeks_end: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The PILOT_WEEKS weeks before `weeks_end` (a Monday)."""
    start, _ = week_bounds(weeks_end - timedelta(days=7 * PILOT_WEEKS), tz)
    end, _ = week_bounds(weeks_end, tz)
    return start, end


async def pilot_check(
    conn: Any,
    workspace_id: int,
    weeks_end: date,
    tz: ZoneInfo,
    baseline: Baseline,
    queue_id: int | None = None,
    opened: Opened | None = None,
) -> Recovered | None:
    """Hours recovered a week over the PILOT_WEEKS weeks before `weeks_end` (a Monday). `opened`: the
    escalations read already, when they cover those weeks."""
    start, end = pilot_window(weeks_end, tz)
    rows = facts_as_of(opened.between(start, end), end) if opened is not None else None
    figures = await week_figures(conn, workspace_id, start, end, [(start, end)], queue_id, rows, people=False)
    return recovered(figures, baseline, PILOT_WEEKS)


async def build_report(
    db: Database,
    workspace_id: int,
    week_start: date,
    *,
    timezone: str,
    baseline_minutes: int,
    queue: tuple[int, str] | None = None,
    queues: list[tuple[int, str]] | None = None,
) -> WeeklyReport:
    """The workspace's report, or with `queue` (its id and name) that queue's: the escalations in it,
    time to claim counted from when they arrived in it. `queues`: the workspace's, for a line each
    on its report (when it has more than one)."""
    tz = ZoneInfo(timezone)
    previous = week_start - timedelta(days=7)
    queue_id = queue[0] if queue is not None else None
    start, end = week_bounds(week_start, tz)
    p_start, p_end = week_bounds(previous, tz)
    pilot_start, _ = pilot_window(week_start + timedelta(days=7), tz)
    async with db.read(snapshot=True, heavy=True) as conn:
        # One read for the week, the week before and the pilot's four weeks (which hold both).
        opened = await read_opened(conn, workspace_id, min(p_start, pilot_start), end, queue_id)
        rows = facts_as_of(opened.between(start, end), end)
        this = await week_figures(conn, workspace_id, start, end, day_bounds(week_start, tz), queue_id, rows)
        last_rows = facts_as_of(opened.between(p_start, p_end), p_end)
        last = await week_figures(conn, workspace_id, p_start, p_end, day_bounds(previous, tz), queue_id, last_rows)
        queue_lines = per_queue(rows, queues) if queue is None and queues and len(queues) > 1 else []
        baseline = await baseline_of(conn, workspace_id, baseline_minutes)
        pilot = await pilot_check(
            conn, workspace_id, week_start + timedelta(days=7), tz, baseline, queue_id, opened=opened
        )
    return WeeklyReport(
        workspace_id=workspace_id,
        week_start=week_start,
        timezone=timezone,
        baseline_minutes=round(baseline.minutes),
        this=this,
        last=last,
        hours_recovered=recovered_hours(this, baseline.minutes),
        hours_recovered_last=recovered_hours(last, baseline.minutes),
        queue=queue[1] if queue is not None else None,
        per_queue=queue_lines,
        baseline=baseline,
        pilot=pilot,
    )


@dataclass
class PeriodReport:
    """Any period's figures (the leads' page): the weekly report's definitions, for [start, end)."""

    workspace_id: int
    start: date
    end: date  # the day after the last
    timezone: str
    this: WeekFigures  # per day
    previous: WeekFigures  # the same number of days just before, per day
    trend_weeks: list[date]  # the Mondays of the trend, oldest first
    trend: WeekFigures  # the weeks up to the period's last, per week
    baseline: Baseline
    hours: Recovered | None
    hours_previous: Recovered | None
    pilot: Recovered | None  # the last four full weeks before today
    queue: str | None = None
    per_queue: list[tuple[str, int, int, float | None]] = field(default_factory=list)

    @cached_property
    def days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days)]

    @property
    def weeks(self) -> float:
        return (self.end - self.start).days / 7


async def build_period(
    db: Database,
    workspace_id: int,
    start: date,
    end: date,
    *,
    timezone: str,
    baseline_minutes: int,
    today: date,
    queue: tuple[int, str] | None = None,
    queues: list[tuple[int, str]] | None = None,
    trend_weeks: int = 13,
) -> PeriodReport:
    """[start, end) in `timezone`, beside the as-long period before it, with a trend of `trend_weeks`
    weeks ending with the period's last; one queue's with `queue`. The same figures, computed the
    same way, as the weekly report's (`week_figures`), only over other dates."""
    tz = ZoneInfo(timezone)
    length = (end - start).days
    queue_id = queue[0] if queue is not None else None
    first_week = week_start_of(end - timedelta(days=1)) - timedelta(days=7 * (trend_weeks - 1))
    mondays = [first_week + timedelta(days=7 * i) for i in range(trend_weeks)]
    span = (local_midnight(start, tz), local_midnight(end, tz))
    before = start - timedelta(days=length)
    before_span = (local_midnight(before, tz), span[0])
    weekly = [week_bounds(m, tz) for m in mondays]
    trend_span = (weekly[0][0], weekly[-1][1])
    pilot_span = pilot_window(week_start_of(today), tz)
    async with db.read(snapshot=True, heavy=True) as conn:
        # One read for every range the page shows: the period, the one before, the trend's weeks
        # and the pilot's four; each range's facts as of its own end.
        spans = (span, before_span, trend_span, pilot_span)
        opened = await read_opened(conn, workspace_id, min(a for a, _ in spans), max(b for _, b in spans), queue_id)

        def facts(a: datetime, b: datetime) -> Facts:
            return facts_as_of(opened.between(a, b), b)

        rows = facts(*span)
        this = await week_figures(conn, workspace_id, *span, day_bounds(start, tz, length), queue_id, rows)
        previous = await week_figures(
            conn, workspace_id, *before_span, day_bounds(before, tz, length), queue_id, facts(*before_span)
        )
        trend = await week_figures(conn, workspace_id, *trend_span, weekly, queue_id, facts(*trend_span), people=False)
        queue_lines = per_queue(rows, queues) if queue is None and queues and len(queues) > 1 else []
        baseline = await baseline_of(conn, workspace_id, baseline_minutes)
        pilot = await pilot_check(conn, workspace_id, week_start_of(today), tz, baseline, queue_id, opened=opened)
    return PeriodReport(
        workspace_id=workspace_id,
        start=start,
        end=end,
        timezone=timezone,
        this=this,
        previous=previous,
        trend_weeks=mondays,
        trend=trend,
        baseline=baseline,
        hours=recovered(this, baseline, length / 7),
        hours_previous=recovered(previous, baseline, length / 7),
        pilot=pilot,
        queue=queue[1] if queue is not None else None,
        per_queue=queue_lines,
    )


# ---- plain-text rendering (the CLI; the Slack and Teams posts render their own) ----------


def minutes(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = round(seconds, 1)  # the databases' timestamp arithmetic is good to about a millisecond
    m = seconds / 60
    if m < 1:
        return f"{seconds:.0f} s"
    if m < 90:
        return f"{m:.1f} min"
    return f"{m / 60:.1f} h"


def change(now: float | int | None, before: float | int | None, *, as_minutes: bool = False) -> str:
    """' (was 12, +3)' style; nothing when there is nothing to compare."""
    if now is None or before is None:
        return "" if before is None else f" (was {minutes(before) if as_minutes else before})"
    diff = now - before
    if as_minutes:
        sign = "+" if diff > 0 else "−" if diff < 0 else "±"
        return f" (was {minutes(before)}, {sign}{minutes(abs(diff))})"
    return f" (was {before}, {diff:+d})" if isinstance(diff, int) else f" (was {before})"


def one_line(text: object, limit: int = 200) -> str:
    """User text for a line of a plain-text report: line breaks, tabs and every other control or
    formatting character (ANSI escapes, bidi overrides, NEL, U+2028) become a space, so a customer
    name can neither start a line of its own nor repaint the terminal."""
    cleaned = "".join(ch if unicodedata.category(ch)[0] not in "CZ" or ch == " " else " " for ch in str(text))
    cleaned = " ".join(cleaned.split())
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def summary_line(r: WeeklyReport) -> str:
    """The report in one line (a notification, or what a client that cannot show the post shows)."""
    scope = f" · {one_line(r.queue, 80)}" if r.queue else ""
    if r.empty:
        return f"Escalations{scope}, week {r.week}: none opened."
    speed = f", median time to claim {minutes(r.this.to_claim_median)}" if r.this.claimed else ""
    return f"Escalations{scope}, week {r.week}: {r.this.opened} opened, {r.this.claimed} claimed{speed}."


def as_text(r: WeeklyReport) -> str:
    t, p = r.this, r.last
    scope = f" · queue {one_line(r.queue, 80)}" if r.queue else ""
    head = f"Escalations{scope}, week {r.week} (from Monday {r.week_start:%d %b %Y}, {r.timezone})"
    lines = [head, "=" * len(head)]
    if r.empty:
        lines.append("No escalations were opened this week.")
        if p.opened:
            lines.append(f"The week before: {p.opened} opened.")
        return "\n".join(lines)
    lines += [
        f"Opened {t.opened}{change(t.opened, p.opened)} · claimed {t.claimed}{change(t.claimed, p.claimed)}"
        f" · resolved {t.resolved}{change(t.resolved, p.resolved)} · still open {t.still_open}"
        + (f" · cancelled {t.cancelled}" if t.cancelled else ""),
    ]
    if t.claimed:
        lines.append(
            f"Time to claim: median {minutes(t.to_claim_median)}"
            f"{change(t.to_claim_median, p.to_claim_median, as_minutes=True)}, p90 {minutes(t.to_claim_p90)}"
        )
    else:
        lines.append("Nothing opened this week was claimed.")
    if t.to_action_median is not None:
        lines.append(
            f"Claim to first action: median {minutes(t.to_action_median)}"
            f"{change(t.to_action_median, p.to_action_median, as_minutes=True)}"
        )
    if t.to_resolve_median is not None:
        lines.append(f"Time to resolve: median {minutes(t.to_resolve_median)}")
    lines.append(f"Contested claims (someone else clicked too): {t.contested}")
    if r.hours_recovered is not None:
        lines.append(f"Estimated hours recovered: {r.hours_recovered:.1f} h over {t.first_actions} handoffs")
        lines.append(f"  {baseline_note(r)}")
    if (verdict := pilot_note(r)) is not None:
        lines.append(f"Last {PILOT_WEEKS} weeks: {verdict}")
    sev = ", ".join(f"{k} {v}" for k, v in sorted(t.by_severity.items()))
    lines.append(f"By severity: {sev}")
    if t.top_customers:
        lines.append("Busiest customers: " + ", ".join(f"{one_line(c)} ({n})" for c, n in t.top_customers))
    if t.claims_by:
        lines.append("Claims: " + ", ".join(f"{one_line(u)} {n}" for u, n in t.claims_by.items()))
    if t.resolves_by:
        lines.append("Resolves: " + ", ".join(f"{one_line(u)} {n}" for u, n in t.resolves_by.items()))
    for name, opened, claimed, median in r.per_queue:
        lines.append(
            f"  {one_line(name, 80)}: opened {opened}, claimed {claimed}, median time to claim {minutes(median)}"
        )
    if t.moves:
        moved = sum(n for _, _, n in t.moves)
        lines.append(
            f"Moved between queues: {moved} · "
            + ", ".join(f"{one_line(a, 80)} → {one_line(b, 80)} {n}" for a, b, n in t.moves)
        )
    return "\n".join(lines)
