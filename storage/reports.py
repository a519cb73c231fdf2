"""The weekly figures, computed in SQL on SQLite and PostgreSQL alike.

One workspace and one week is a range scan on (workspace_id, created_at) plus indexed
look-ups of each escalation's events, so it stays fast however many years of history the
table holds. Medians and percentiles are computed with window functions and integer
arithmetic that both databases evaluate the same way (linear interpolation between the
two nearest values, like PostgreSQL's percentile_cont).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Float, and_, case, exists, func, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement

from storage.tables import handoff_events, handoffs


class epoch(FunctionElement[float]):
    """Seconds since the epoch of a timestamp column, in each dialect's own terms."""

    type = Float()
    inherit_cache = True


@compiles(epoch, "postgresql")
def _epoch_pg(element: epoch, compiler: Any, **kw: Any) -> str:
    return f"EXTRACT(EPOCH FROM {compiler.process(element.clauses, **kw)})"


@compiles(epoch, "sqlite")
def _epoch_sqlite(element: epoch, compiler: Any, **kw: Any) -> str:
    return f"((julianday({compiler.process(element.clauses, **kw)}) - 2440587.5) * 86400.0)"


def _first_event_at(kind: str, end: datetime, since: Any = None) -> Any:
    e = handoff_events.alias(f"e_{kind}")
    conditions = [e.c.handoff_id == handoffs.c.id, e.c.kind == kind, e.c.at < end]
    if since is not None:
        conditions.append(e.c.at >= since)
    return select(func.min(e.c.at)).where(*conditions).correlate(handoffs).scalar_subquery()


def arrival(end: datetime) -> Any:
    """When an escalation arrived in the queue it is in (if that was before `end`; else when it was
    opened): time to claim is counted from there, in the queue that claimed it."""
    arrived = handoffs.c.queue_arrived_at
    return case((and_(arrived.is_not(None), arrived < end), arrived), else_=handoffs.c.created_at)


def in_scope(workspace_id: int, queue_id: int | None) -> Any:
    """The escalations a report covers: the workspace's, or one queue's (where they are now)."""
    scope = handoffs.c.workspace_id == workspace_id
    return scope if queue_id is None else and_(scope, handoffs.c.queue_id == queue_id)


def facts(workspace_id: int, start: datetime, end: datetime, queue_id: int | None = None) -> Any:
    """One row per escalation opened in [start, end) (in one queue, with `queue_id`): what had
    happened to it by `end`."""
    arrived = arrival(end)
    first_claim = _first_event_at("claimed", end, since=arrived)
    first_action = _first_event_at("first_action", end)
    c = handoff_events.alias("c")
    claim_before_action = (
        select(func.max(c.c.at))
        .where(c.c.handoff_id == handoffs.c.id, c.c.kind == "claimed", c.c.at <= first_action)
        .correlate(handoffs)
        .scalar_subquery()
    )
    x = handoff_events.alias("x")
    contested = exists().where(x.c.handoff_id == handoffs.c.id, x.c.kind == "claim_conflict", x.c.at < end)
    resolved_at = case((handoffs.c.resolved_at < end, handoffs.c.resolved_at), else_=None)
    cancelled = case((handoffs.c.cancelled_at < end, 1), else_=0)
    return (
        select(
            handoffs.c.id,
            handoffs.c.severity,
            handoffs.c.customer,
            handoffs.c.created_at,
            handoffs.c.claimed_by,
            (epoch(first_claim) - epoch(arrived)).label("to_claim"),
            (epoch(first_action) - epoch(claim_before_action)).label("to_action"),
            (epoch(resolved_at) - epoch(handoffs.c.created_at)).label("to_resolve"),
            case((contested, 1), else_=0).label("contested"),
            cancelled.label("cancelled"),
        )
        .where(in_scope(workspace_id, queue_id), handoffs.c.created_at >= start, handoffs.c.created_at < end)
        .subquery("facts")
    )


async def percentile(
    conn: AsyncConnection, rows: Any, column: str, num: int, den: int, group: Any = None
) -> dict[Any, float]:
    """The num/den quantile of rows.<column> (NULLs ignored), per group (or {None: value})."""
    value = rows.c[column]
    grp = group if group is not None else literal(0)
    ranked = (
        select(
            grp.label("grp"),
            value.label("v"),
            (func.row_number().over(partition_by=grp, order_by=value) - 1).label("i"),
            func.count().over(partition_by=grp).label("n"),
        )
        .where(value.is_not(None))
        .subquery("ranked")
    )
    pos = literal(num) * (ranked.c.n - 1)
    lo_i = pos // den  # integer division, the same on both databases
    rem = pos % den
    hi_i = lo_i + case((rem > 0, 1), else_=0)
    per_group = (
        select(
            ranked.c.grp,
            func.max(case((ranked.c.i == lo_i, ranked.c.v))).label("lo"),
            func.max(case((ranked.c.i == hi_i, ranked.c.v))).label("hi"),
            func.max(rem).label("rem"),
        )
        .group_by(ranked.c.grp)
        .subquery("q")
    )
    stmt = select(per_group.c.grp, per_group.c.lo + (per_group.c.hi - per_group.c.lo) * per_group.c.rem / float(den))
    out = {}
    for g, v in (await conn.execute(stmt)).all():
        out[None if group is None else g] = float(v)
    return out


@dataclass
class WeekFigures:
    opened: int = 0
    claimed: int = 0
    resolved: int = 0
    still_open: int = 0
    cancelled: int = 0
    contested: int = 0
    to_claim_median: float | None = None  # seconds
    to_claim_p90: float | None = None
    to_action_median: float | None = None
    to_resolve_median: float | None = None
    first_actions: int = 0
    action_seconds_total: float = 0.0  # Σ claim → first action over those with one
    by_severity: dict[str, int] = field(default_factory=dict)
    top_customers: list[tuple[str, int]] = field(default_factory=list)
    claims_by: dict[str, int] = field(default_factory=dict)
    resolves_by: dict[str, int] = field(default_factory=dict)
    # Per bucket of the `buckets` asked for (the days of a week; the weeks of a trend).
    per_day_opened: list[int] = field(default_factory=list)
    per_day_claim_median: list[float | None] = field(default_factory=list)
    per_day_by_severity: dict[str, list[int]] = field(default_factory=dict)
    # Per senior holding it: the median from their claim to their first action.
    action_median_by: dict[str, float] = field(default_factory=dict)
    oldest_open_at: datetime | None = None  # the oldest of these still not resolved or cancelled
    # Hand-overs during the week: (from queue, to queue) -> how many; in a queue's report, those into
    # or out of it.
    moves: list[tuple[str, str, int]] = field(default_factory=list)


async def week_figures(
    conn: AsyncConnection,
    workspace_id: int,
    start: datetime,
    end: datetime,
    days: list[tuple[datetime, datetime]],
    queue_id: int | None = None,
) -> WeekFigures:
    f = facts(workspace_id, start, end, queue_id)
    totals = (
        await conn.execute(
            select(
                func.count(),
                func.count(f.c.to_claim),
                func.count(f.c.to_resolve),
                func.coalesce(func.sum(f.c.contested), 0),
                func.count(f.c.to_action),
                func.coalesce(func.sum(f.c.to_action), 0.0),
                func.coalesce(func.sum(f.c.cancelled), 0),
            )
        )
    ).one()
    w = WeekFigures(
        opened=int(totals[0]),
        claimed=int(totals[1]),
        resolved=int(totals[2]),
        contested=int(totals[3]),
        first_actions=int(totals[4]),
        action_seconds_total=float(totals[5]),
        cancelled=int(totals[6]),
    )
    w.still_open = w.opened - w.resolved - w.cancelled  # withdrawn by the requester: not waiting for anyone
    n = len(days)
    if w.opened == 0:
        w.per_day_opened = [0] * n
        w.per_day_claim_median = [None] * n
    else:
        w.to_claim_median = (await percentile(conn, f, "to_claim", 1, 2)).get(None)
        w.to_claim_p90 = (await percentile(conn, f, "to_claim", 9, 10)).get(None)
        w.to_action_median = (await percentile(conn, f, "to_action", 1, 2)).get(None)
        w.to_resolve_median = (await percentile(conn, f, "to_resolve", 1, 2)).get(None)
        sev = await conn.execute(select(f.c.severity, func.count()).group_by(f.c.severity))
        w.by_severity = {s: int(n) for s, n in sev.all()}
        cust = await conn.execute(
            select(f.c.customer, func.count().label("n"))
            .where(f.c.customer != "")
            .group_by(f.c.customer)
            .order_by(func.count().desc(), f.c.customer)
            .limit(5)
        )
        w.top_customers = [(c, int(n)) for c, n in cust.all()]
        day_of = case(*[(and_(f.c.created_at >= a, f.c.created_at < b), i) for i, (a, b) in enumerate(days)], else_=-1)
        counted = (await conn.execute(select(day_of, f.c.severity, func.count()).group_by(day_of, f.c.severity))).all()
        for day, severity, count in counted:
            if 0 <= day < n:
                w.per_day_by_severity.setdefault(severity, [0] * n)[day] += int(count)
        w.per_day_opened = [sum(per[i] for per in w.per_day_by_severity.values()) for i in range(n)]
        medians = await percentile(conn, f, "to_claim", 1, 2, group=day_of)
        w.per_day_claim_median = [medians.get(i) for i in range(n)]
        by_holder = await percentile(conn, f, "to_action", 1, 2, group=f.c.claimed_by)
        w.action_median_by = {str(k): v for k, v in sorted(by_holder.items()) if k is not None}
        w.oldest_open_at = (
            await conn.execute(select(func.min(f.c.created_at)).where(f.c.to_resolve.is_(None), f.c.cancelled == 0))
        ).scalar()
    # Who claimed and resolved what during the week (whenever the escalation was opened).
    of_queue = (
        []
        if queue_id is None
        else [handoff_events.c.handoff_id.in_(select(handoffs.c.id).where(in_scope(workspace_id, queue_id)))]
    )
    for kind, target in (("claimed", w.claims_by), ("resolved", w.resolves_by)):
        rows = await conn.execute(
            select(handoff_events.c.actor, func.count())
            .where(
                handoff_events.c.workspace_id == workspace_id,
                handoff_events.c.kind == kind,
                handoff_events.c.at >= start,
                handoff_events.c.at < end,
                *of_queue,
            )
            .group_by(handoff_events.c.actor)
            .order_by(func.count().desc(), handoff_events.c.actor)
        )
        target.update({a: int(n) for a, n in rows.all()})
    w.moves = await moves(conn, workspace_id, start, end, queue_id)
    return w


async def moves(
    conn: AsyncConnection, workspace_id: int, start: datetime, end: datetime, queue_id: int | None = None
) -> list[tuple[str, str, int]]:
    """The week's hand-overs between queues, most first: (from, to, how many). With `queue_id`, those
    into or out of that queue."""
    rows = await conn.execute(
        select(handoff_events.c.data).where(
            handoff_events.c.workspace_id == workspace_id,
            handoff_events.c.kind == "moved",
            handoff_events.c.at >= start,
            handoff_events.c.at < end,
        )
    )
    counted: dict[tuple[str, str], int] = {}
    for (data,) in rows.all():
        if not isinstance(data, dict) or (queue_id is not None and queue_id not in (data.get("from"), data.get("to"))):
            continue
        pair = (str(data.get("from_name") or "?"), str(data.get("to_name") or "?"))
        counted[pair] = counted.get(pair, 0) + 1
    return sorted(((a, b, n) for (a, b), n in counted.items()), key=lambda x: (-x[2], x[0], x[1]))
