"""The leads' page's rows: one-time sign-in links, sessions, measured manual handoffs.

Links and sessions are stored by the SHA-256 of their secret: a copy of the database signs nobody
in. A link is used by a compare-and-set (the first request wins; a second gets nothing).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.tables import baseline_measurements, dashboard_links, dashboard_sessions


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def add_link(
    conn: AsyncConnection, token: str, workspace_id: int, user_id: str, now: datetime, expires: datetime
) -> None:
    await conn.execute(
        insert(dashboard_links).values(
            token_hash=digest(token), workspace_id=workspace_id, user_id=user_id, created_at=now, expires_at=expires
        )
    )


async def use_link(conn: AsyncConnection, token: str, now: datetime) -> tuple[int, str] | None:
    """(workspace, user) of a link never used and not expired, now used; None for any other."""
    row = (
        await conn.execute(
            update(dashboard_links)
            .where(
                dashboard_links.c.token_hash == digest(token),
                dashboard_links.c.used_at.is_(None),
                dashboard_links.c.expires_at > now,
            )
            .values(used_at=now)
            .returning(dashboard_links.c.workspace_id, dashboard_links.c.user_id)
        )
    ).first()
    return (int(row[0]), str(row[1])) if row is not None else None


async def add_session(
    conn: AsyncConnection, session_id: str, csrf: str, workspace_id: int, user_id: str, now: datetime, expires: datetime
) -> None:
    await conn.execute(
        insert(dashboard_sessions).values(
            id_hash=digest(session_id),
            workspace_id=workspace_id,
            user_id=user_id,
            csrf=csrf,
            created_at=now,
            expires_at=expires,
        )
    )


async def session(conn: AsyncConnection, session_id: str, now: datetime) -> dict[str, Any] | None:
    row = (
        await conn.execute(
            select(dashboard_sessions).where(
                dashboard_sessions.c.id_hash == digest(session_id), dashboard_sessions.c.expires_at > now
            )
        )
    ).first()
    return dict(row._mapping) if row is not None else None


async def end_session(conn: AsyncConnection, session_id: str) -> None:
    await conn.execute(delete(dashboard_sessions).where(dashboard_sessions.c.id_hash == digest(session_id)))


async def prune(conn: AsyncConnection, now: datetime, limit: int) -> int:
    """Up to `limit` links and sessions past their time (used links stay until theirs is up)."""
    gone = 0
    for table in (dashboard_links, dashboard_sessions):
        key = next(iter(table.primary_key.columns))
        due = select(key).where(table.c.expires_at <= now).limit(limit - gone)
        ids = [r[0] for r in (await conn.execute(due)).all()]
        if ids:
            gone += int((await conn.execute(delete(table).where(key.in_(ids)))).rowcount or 0)
        if gone >= limit:
            break
    return gone


async def add_measurement(
    conn: AsyncConnection, workspace_id: int, user_id: str, minutes: float, now: datetime
) -> None:
    await conn.execute(
        insert(baseline_measurements).values(
            workspace_id=workspace_id, user_id=user_id, minutes=minutes, created_at=now
        )
    )


async def measurements(conn: AsyncConnection, workspace_id: int) -> list[float]:
    rows = await conn.execute(
        select(baseline_measurements.c.minutes)
        .where(baseline_measurements.c.workspace_id == workspace_id)
        .order_by(baseline_measurements.c.created_at)
    )
    return [float(r[0]) for r in rows.all()]


CSV_COLUMNS = ["number", "opened_at", "severity", "queue", "status", "requester_id", "claimed_by", "claimed_at",
               "time_to_claim_seconds", "first_action_at", "claim_to_first_action_seconds", "resolved_by",
               "resolved_at", "time_to_resolve_seconds", "cancelled_at", "contested", "moves"]  # fmt: skip
CSV_TEXT = ["summary", "customer", "tried", "details", "resolution"]


async def period_rows(
    conn: AsyncConnection, workspace_id: int, start: datetime, end: datetime, queue_id: int | None, with_text: bool
) -> tuple[list[str], list[list[Any]]]:
    """The escalations opened in [start, end) (one queue's with `queue_id`), oldest first, for the CSV:
    the weekly report's own per-escalation facts (time to claim from arrival in the queue, claim to
    first action, to resolve, contested) with their numbers and times, and what people typed only
    `with_text`. Through (workspace_id, created_at). Returns the column names and the rows."""
    from storage.reports import fact_rows, in_scope
    from storage.tables import handoffs, queues

    facts = (await fact_rows(conn, workspace_id, start, end, queue_id)).by_id()
    h = handoffs.c
    typed = [h.summary, h.customer, h.tried, h.details, h.resolution] if with_text else []
    stmt = (
        select(
            h.id,
            h.number,
            h.created_at,
            h.severity,
            queues.c.name,
            h.status,
            h.requester_id,
            h.claimed_by,
            h.claimed_at,
            h.first_action_at,
            h.resolved_by,
            h.resolved_at,
            h.cancelled_at,
            h.moves,
            *typed,
        )
        .select_from(handoffs.outerjoin(queues, queues.c.id == h.queue_id))
        .where(in_scope(workspace_id, queue_id), h.created_at >= start, h.created_at < end)
        .order_by(h.created_at, h.number)
    )
    out = []
    for hid, *row in (await conn.execute(stmt)).all():
        to_claim, to_action, to_resolve, contested = facts.get(hid, (None, None, None, 0))
        # number … claimed_at, time to claim, first action, claim to first action, resolved by and at,
        # time to resolve, cancelled, contested, moves, and what was typed: CSV_COLUMNS' order.
        out.append([*row[:8], to_claim, row[8], to_action, row[9], row[10], to_resolve, row[11], contested, *row[12:]])
    return [*CSV_COLUMNS, *(CSV_TEXT if with_text else [])], out
