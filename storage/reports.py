"""The report's figures, for any range: the weekly report's and the leads' page's alike.

Each escalation's facts (time to claim, to first action, to resolve, contested, cancelled) are
computed in SQL, the same on SQLite and PostgreSQL: one workspace and one range is a range scan on
(workspace_id, created_at) plus indexed look-ups of each escalation's events, so it stays fast
however many years of history the table holds. They are read once per range; the counts, the
buckets and the percentiles (linear interpolation between the two nearest values, like
PostgreSQL's percentile_cont) are computed from those rows here.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Float, and_, func, select
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
    # date_part gives float8; EXTRACT computes a numeric (PostgreSQL 14 and later), which cost 2-3x
    # as much over a year's rows, cast or not.
    return f"date_part('epoch', {compiler.process(element.clauses, **kw)})"


@compiles(epoch, "sqlite")
def _epoch_sqlite(element: epoch, compiler: Any, **kw: Any) -> str:
    return f"((julianday({compiler.process(element.clauses, **kw)}) - 2440587.5) * 86400.0)"


def in_scope(workspace_id: int, queue_id: int | None) -> Any:
    """The escalations a report covers: the workspace's, or one queue's (where they are now)."""
    scope = handoffs.c.workspace_id == workspace_id
    return scope if queue_id is None else and_(scope, handoffs.c.queue_id == queue_id)


@dataclass
class Facts:
    """What had happened by the end of a range to each escalation opened in it, oldest first: one
    list per fact, the i-th entry of each about the same escalation. Times are seconds since the
    epoch; durations are seconds, None for what had not happened."""

    id: list[int]
    severity: list[str]
    customer: list[str]
    created: list[float]
    claimed_by: list[str | None]
    queue_id: list[int | None]
    to_claim: list[float | None]  # from arriving in its queue to its first claim there
    to_action: list[float | None]  # from the claim that led to it to the first action
    to_resolve: list[float | None]  # from opened to resolved
    contested: list[int]  # 1 if someone lost a claim on it
    cancelled: list[int]  # 1 if its requester withdrew it

    def __len__(self) -> int:
        return len(self.id)

    def by_id(self) -> dict[int, tuple[float | None, float | None, float | None, int]]:
        """(to claim, to first action, to resolve, contested) of each escalation."""
        return dict(zip(self.id, zip(self.to_claim, self.to_action, self.to_resolve, self.contested, strict=True),
                        strict=True))  # fmt: skip


MARGIN = timedelta(seconds=1)  # read a little wider: which range a row belongs to is decided below, to the µs


@dataclass(frozen=True)
class Opened:
    """The escalations opened in a range, as read: one tuple per escalation (RAW's order), oldest
    first, and when each was opened (epoch seconds) to find a sub-range's in."""

    rows: list[tuple[Any, ...]]
    created: list[float]

    def between(self, start: datetime, end: datetime) -> list[tuple[Any, ...]]:
        lo, hi = bisect_left(self.created, start.timestamp()), bisect_left(self.created, end.timestamp())
        return self.rows[lo:hi]


h_ = handoffs.c
RAW = (h_.id, h_.severity, h_.customer, epoch(h_.created_at), h_.claimed_by, h_.queue_id, epoch(h_.queue_arrived_at),
       epoch(h_.resolved_at), epoch(h_.cancelled_at), epoch(h_.fact_first_claim_at), epoch(h_.fact_queue_claim_at),
       epoch(h_.fact_acted_at), epoch(h_.fact_acted_claim_at), epoch(h_.fact_contested_at))  # fmt: skip


async def read_opened(
    conn: AsyncConnection, workspace_id: int, start: datetime, end: datetime, queue_id: int | None = None
) -> Opened:
    """The escalations opened in [start, end) (in one queue, with `queue_id`): one range scan on
    (workspace_id, created_at), no event read (their facts are on the row, migration 0013)."""
    result = await conn.execute(
        select(*RAW)
        .where(
            in_scope(workspace_id, queue_id),
            handoffs.c.created_at >= start - MARGIN,
            handoffs.c.created_at < end + MARGIN,
        )
        .order_by(handoffs.c.created_at, handoffs.c.id)
    )
    rows = [tuple(r) for r in result.all()]
    opened = Opened(rows, [r[3] for r in rows])
    kept = opened.between(start, end)
    return Opened(kept, [r[3] for r in kept]) if len(kept) != len(rows) else opened


def facts_as_of(rows: list[tuple[Any, ...]], end: datetime) -> Facts:
    """What had happened to each of these escalations (RAW rows) by `end`."""
    until = end.timestamp()
    if not rows:
        return Facts([], [], [], [], [], [], [], [], [], [], [])
    (ids, severity, customer, created, claimed_by, queue_id, arrived, resolved, cancelled, first_claim, queue_claim,
     acted, acted_claim, contested) = (list(c) for c in zip(*rows, strict=True))  # fmt: skip
    # Time to claim counts from arriving in the queue it is in (if that was before the end) to the
    # first claim there; if it arrived after the end, from when it was opened to its first claim.
    to_claim = [
        (qc - qa if qc is not None and qa <= qc < until else None)
        if qa is not None and qa < until
        else (fc - c if fc is not None and fc < until else None)
        for qa, qc, fc, c in zip(arrived, queue_claim, first_claim, created, strict=True)
    ]
    to_action = [
        a - ac if a is not None and a < until and ac is not None else None
        for a, ac in zip(acted, acted_claim, strict=True)
    ]
    to_resolve = [r - c if r is not None and r < until else None for r, c in zip(resolved, created, strict=True)]
    return Facts(
        id=ids,
        severity=severity,
        customer=customer,
        created=created,
        claimed_by=claimed_by,
        queue_id=queue_id,
        to_claim=to_claim,
        to_action=to_action,
        to_resolve=to_resolve,
        contested=[1 if x is not None and x < until else 0 for x in contested],
        cancelled=[1 if x is not None and x < until else 0 for x in cancelled],
    )


async def fact_rows(
    conn: AsyncConnection, workspace_id: int, start: datetime, end: datetime, queue_id: int | None = None
) -> Facts:
    """The facts of the escalations opened in [start, end) (in one queue, with `queue_id`), oldest
    first, as of `end`."""
    return facts_as_of((await read_opened(conn, workspace_id, start, end, queue_id)).rows, end)


def quantile(values: Sequence[float], num: int, den: int) -> float | None:
    """The num/den quantile, interpolated between the two nearest values (PostgreSQL's
    percentile_cont); None of nothing."""
    if not values:
        return None
    ordered = sorted(values)
    pos = num * (len(ordered) - 1)
    lo_i, rem = divmod(pos, den)
    lo, hi = ordered[lo_i], ordered[lo_i + (1 if rem else 0)]
    return float(lo + (hi - lo) * rem / float(den))


def median(values: Sequence[float]) -> float | None:
    return quantile(values, 1, 2)


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
    rows: Facts | None = None,
    *,
    people: bool = True,
) -> WeekFigures:
    """The figures of [start, end) per bucket of `days` (any number of consecutive buckets); `rows`:
    its facts when the caller has them already. Without `people`, not who claimed and resolved
    what, nor the moves (a trend does not show them)."""
    w = figures_of(rows if rows is not None else await fact_rows(conn, workspace_id, start, end, queue_id), days)
    if not people:
        return w
    # Who claimed and resolved what during the week (whenever the escalation was opened).
    of_queue = (
        []
        if queue_id is None
        else [handoff_events.c.handoff_id.in_(select(handoffs.c.id).where(in_scope(workspace_id, queue_id)))]
    )
    for kind, target in (("claimed", w.claims_by), ("resolved", w.resolves_by)):
        counted = await conn.execute(
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
        target.update({a: int(n) for a, n in counted.all()})
    w.moves = await moves(conn, workspace_id, start, end, queue_id)
    return w


def _present(values: list[float | None]) -> list[float]:
    return [v for v in values if v is not None]


def figures_of(f: Facts, days: list[tuple[datetime, datetime]]) -> WeekFigures:
    """Everything these facts say, per bucket of `days`."""
    claims, actions, resolves = _present(f.to_claim), _present(f.to_action), _present(f.to_resolve)
    w = WeekFigures(
        opened=len(f),
        claimed=len(claims),
        resolved=len(resolves),
        contested=sum(f.contested),
        first_actions=len(actions),
        action_seconds_total=float(sum(actions)),
        cancelled=sum(f.cancelled),
    )
    w.still_open = w.opened - w.resolved - w.cancelled  # withdrawn by the requester: not waiting for anyone
    n = len(days)
    w.per_day_opened = [0] * n
    w.per_day_claim_median = [None] * n
    if not len(f):
        return w
    w.to_claim_median, w.to_claim_p90 = median(claims), quantile(claims, 9, 10)
    w.to_action_median, w.to_resolve_median = median(actions), median(resolves)
    w.by_severity = dict(Counter(f.severity))
    customers = Counter(c for c in f.customer if c)
    w.top_customers = sorted(customers.items(), key=lambda x: (-x[1], x[0]))[:5]
    starts = [a.timestamp() for a, _b in days]
    ends = [b.timestamp() for _a, b in days]
    per_bucket: dict[int, list[float]] = defaultdict(list)
    for created, severity, to_claim in zip(f.created, f.severity, f.to_claim, strict=True):
        i = bisect_right(starts, created) - 1
        if i < 0 or created >= ends[i]:
            continue
        w.per_day_by_severity.setdefault(severity, [0] * n)[i] += 1
        w.per_day_opened[i] += 1
        if to_claim is not None:
            per_bucket[i].append(to_claim)
    w.per_day_claim_median = [median(per_bucket[i]) for i in range(n)]
    by_holder: dict[str, list[float]] = defaultdict(list)
    for holder, to_action in zip(f.claimed_by, f.to_action, strict=True):
        if to_action is not None and holder is not None:
            by_holder[holder].append(to_action)
    w.action_median_by = {k: v for k, v in ((k, median(by_holder[k])) for k in sorted(by_holder)) if v is not None}
    still = [c for c, r, x in zip(f.created, f.to_resolve, f.cancelled, strict=True) if r is None and not x]
    w.oldest_open_at = datetime.fromtimestamp(min(still), UTC) if still else None
    return w


def per_queue(f: Facts, queues: list[tuple[int, str]]) -> list[tuple[str, int, int, float | None]]:
    """(name, opened, claimed, median time to claim) of each queue, from the whole workspace's facts
    (an escalation counts in the queue it is in now, as a queue's own report counts it)."""
    opened: Counter[int | None] = Counter(f.queue_id)
    claims: dict[int | None, list[float]] = defaultdict(list)
    for qid, to_claim in zip(f.queue_id, f.to_claim, strict=True):
        if to_claim is not None:
            claims[qid].append(to_claim)
    return [(name, opened[qid], len(claims[qid]), median(claims[qid])) for qid, name in queues]


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
