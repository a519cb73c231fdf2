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


async def prune(conn: AsyncConnection, now: datetime) -> int:
    """Links and sessions past their time."""
    gone = 0
    for table in (dashboard_links, dashboard_sessions):
        gone += int((await conn.execute(delete(table).where(table.c.expires_at <= now))).rowcount or 0)
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
