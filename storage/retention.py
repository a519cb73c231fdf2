"""Data with a lifetime: erasing closed escalations' free text, pruning what was delivered.

Each function does one small batch in the caller's short transaction, so nothing holds a lock for
long and the bot's own writes go between batches. What is erased is what people typed (the
problem, what was tried, details, customer, the thread's transcript, notes); what stays is the
numbers the reports count (times, severity, queue, who asked, who claimed and resolved).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Text, and_, any_, bindparam, case, cast, delete, or_, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.tables import UNERASED, handoff_events, handoffs, outbox, processed_events

# What an erased escalation's summary reads, where a card or a report shows it.
ERASED = "(erased)"
# Keys of JSON data that hold what someone typed (move notes, what a holder tried).
TYPED_KEYS = ("note", "tried", "text", "resolution", "summary")
# A weekly report's row is kept while it is the latest week's (the metrics say whether it went out).
REPORT_ROWS_KEPT_DAYS = 8

_LOCK = 0x65736372  # "escr": one replica purges at a time (a transaction-scoped lock, pooler-safe)


async def take_turn(conn: AsyncConnection) -> bool:
    """On PostgreSQL, whether this transaction may purge now (another replica's batch is not running);
    SQLite has one writer anyway."""
    if conn.dialect.name != "postgresql":
        return True
    return bool((await conn.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _LOCK})).scalar())


def _due(workspace_id: Any, before: Any) -> Any:
    # UNERASED written out as ix_handoffs_unerased's own condition: with the statuses as parameters,
    # SQLite never used that index and read every closed escalation of the workspace per batch.
    return and_(handoffs.c.workspace_id == workspace_id, text(UNERASED), handoffs.c.updated_at < before)


async def closed_before(conn: AsyncConnection, workspace_id: int, before: datetime, limit: int) -> list[int]:
    """Ids of the workspace's escalations closed (last changed) before `before` whose text is still
    there: ix_handoffs_unerased, so this reads only them however long the history."""
    stmt = select(handoffs.c.id).where(_due(workspace_id, before)).order_by(handoffs.c.updated_at).limit(limit)
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    return [int(r[0]) for r in (await conn.execute(stmt)).all()]


def _among(conn: AsyncConnection, column: Any, values: list[Any]) -> Any:
    """`column IN values`; on PostgreSQL as one array parameter (`= ANY`), so a batch's statement is
    the same text each time, compiled and prepared once. Rendered with one placeholder per id, each
    batch's four statements took the bot's event loop for 5-20 ms apiece (while the claims it serves
    waited: the retention bench's claim p99 was 1.7x during the purge)."""
    if conn.dialect.name == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
    return column.in_(values)


def _without_typed(value: Any) -> Any:
    """JSON data with what was typed taken out (its shape kept)."""
    if isinstance(value, dict):
        return {k: ("" if k in TYPED_KEYS and isinstance(v, str) else _without_typed(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_typed(v) for v in value]
    return value


async def erase_text(conn: AsyncConnection, ids: list[int], now: datetime) -> int:
    """Erase what people typed in these escalations, their move notes and the messages sent about
    them; keep every number. Returns how many escalations."""
    if not ids:
        return 0
    chosen = _among(conn, handoffs.c.id, ids)
    with_handovers = select(handoffs.c.id, handoffs.c.handovers).where(chosen, handoffs.c.handovers.is_not(None))
    moved = (await conn.execute(with_handovers)).all()
    result = await conn.execute(
        update(handoffs)
        .where(chosen, handoffs.c.erased_at.is_(None))
        .values(
            summary=ERASED,
            details="",
            tried="",
            customer="",
            links=None,
            transcript=None,
            source=None,
            similar=None,
            resolution=case((handoffs.c.resolution.is_(None), None), else_=""),
            erased_at=now,
        )
    )
    for hid, handovers in moved:
        await conn.execute(update(handoffs).where(handoffs.c.id == hid).values(handovers=_without_typed(handovers)))
    events = (
        await conn.execute(
            select(handoff_events.c.id, handoff_events.c.data).where(
                _among(conn, handoff_events.c.handoff_id, ids), handoff_events.c.data.is_not(None)
            )
        )
    ).all()
    for eid, data in events:
        cleaned = _without_typed(data)
        if cleaned != data:
            await conn.execute(update(handoff_events).where(handoff_events.c.id == eid).values(data=cleaned))
    # Only the messages that still carry something (a card's is already empty): an UPDATE that changes
    # nothing still writes a new row and its index entries, and its WAL is what the next claim's
    # commit waits for.
    await conn.execute(
        update(outbox)
        .where(
            _among(conn, outbox.c.handoff_id, ids),
            outbox.c.status != "pending",
            cast(outbox.c.payload, Text) != "{}",
        )
        .values(payload={})
    )
    return int(result.rowcount or 0)


async def prune_delivered(conn: AsyncConnection, before: datetime, reports_before: datetime, limit: int) -> int:
    """Delete up to `limit` outbox rows sent before `before` (a weekly report's only before
    `reports_before`). Through the (status, next_attempt_at) index: a row is due before it is sent."""
    oldest = (
        select(outbox.c.id)
        .where(
            outbox.c.status == "sent",
            outbox.c.next_attempt_at < bindparam("before"),
            outbox.c.sent_at < bindparam("before"),
            or_(outbox.c.kind != "weekly_report", outbox.c.sent_at < bindparam("reports_before")),
        )
        .limit(limit)
    )
    ids = [int(r[0]) for r in (await conn.execute(oldest, {"before": before, "reports_before": reports_before})).all()]
    if not ids:
        return 0
    result = await conn.execute(delete(outbox).where(_among(conn, outbox.c.id, ids), outbox.c.status == "sent"))
    return int(result.rowcount or 0)


async def prune_processed_events(conn: AsyncConnection, before: datetime, limit: int) -> int:
    """Forget platform event ids received before `before` (Slack retries an event for an hour at most)."""
    oldest = (
        select(processed_events.c.source, processed_events.c.event_id)
        .where(processed_events.c.received_at < before)
        .limit(limit)
    )
    rows = (await conn.execute(oldest)).all()
    if not rows:
        return 0
    gone = 0
    for source in {r[0] for r in rows}:
        ids = [r[1] for r in rows if r[0] == source]
        result = await conn.execute(
            delete(processed_events).where(
                processed_events.c.source == source, _among(conn, processed_events.c.event_id, ids)
            )
        )
        gone += int(result.rowcount or 0)
    return gone


async def workspace_retention(conn: AsyncConnection) -> list[tuple[int, int | None]]:
    """Each workspace and the retention its admins set for it (None: the installation's setting)."""
    from storage.tables import workspaces

    rows = (await conn.execute(select(workspaces.c.id, workspaces.c.settings).order_by(workspaces.c.id))).all()
    out = []
    for ws, settings in rows:
        days = (settings or {}).get("retention_days") if isinstance(settings, dict) else None
        out.append((int(ws), int(days) if isinstance(days, int) and days > 0 else None))
    return out
