"""A workspace's queues, and moving an escalation from one to another (a compare-and-set on the
state the mover saw, so a move and a claim made at the same moment leave exactly one outcome)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.handoffs import insert_ignore
from storage.tables import handoffs, queues

DEFAULT_QUEUE = "General"  # as migration 0007 names it


async def ensure_default(conn: AsyncConnection, workspace_id: int, now: datetime) -> int:
    """The workspace's default queue, made if it has none (a workspace created after 0007)."""
    found = await conn.scalar(
        select(queues.c.id).where(queues.c.workspace_id == workspace_id, queues.c.is_default.is_(True))
    )
    if found is not None:
        return int(found)
    await conn.execute(
        insert_ignore(conn, queues, ["workspace_id", "name"]).values(
            workspace_id=workspace_id,
            name=DEFAULT_QUEUE,
            aliases=[DEFAULT_QUEUE.lower()],
            is_default=True,
            settings={},
            created_at=now,
        )
    )
    found = await conn.scalar(
        select(queues.c.id).where(queues.c.workspace_id == workspace_id, queues.c.is_default.is_(True))
    )
    if found is None:  # a queue of that name exists and is not the default: make it the default
        await conn.execute(
            update(queues)
            .where(queues.c.workspace_id == workspace_id, queues.c.name == DEFAULT_QUEUE)
            .values(is_default=True)
        )
        return await ensure_default(conn, workspace_id, now)
    return int(found)


async def of_workspace(conn: AsyncConnection, workspace_id: int) -> list[Row[Any]]:
    """The default queue first, then by name."""
    stmt = (
        select(queues)
        .where(queues.c.workspace_id == workspace_id)
        .order_by(queues.c.is_default.desc(), func.lower(queues.c.name))
    )
    return list((await conn.execute(stmt)).all())


async def of_workspaces(conn: AsyncConnection, workspace_ids: list[int]) -> list[Row[Any]]:
    """Several workspaces' queues in one statement: by workspace, each's default first, then by name."""
    if not workspace_ids:
        return []
    stmt = (
        select(queues)
        .where(queues.c.workspace_id.in_(workspace_ids))
        .order_by(queues.c.workspace_id, queues.c.is_default.desc(), func.lower(queues.c.name))
    )
    return list((await conn.execute(stmt)).all())


async def add(conn: AsyncConnection, workspace_id: int, values: dict[str, Any], now: datetime) -> int | None:
    """A new queue; None if the workspace already has one of that name."""
    result = await conn.execute(
        insert_ignore(conn, queues, ["workspace_id", "name"])
        .values(workspace_id=workspace_id, is_default=False, created_at=now, **values)
        .returning(queues.c.id)
    )
    row = result.first()
    return int(row[0]) if row is not None else None


async def change(conn: AsyncConnection, workspace_id: int, queue_id: int, values: dict[str, Any]) -> bool:
    result = await conn.execute(
        update(queues).where(queues.c.id == queue_id, queues.c.workspace_id == workspace_id).values(**values)
    )
    return result.rowcount == 1


async def remove(conn: AsyncConnection, workspace_id: int, queue_id: int) -> bool:
    """Remove a queue that holds no open or claimed escalation (the caller moves them first)."""
    busy = await conn.scalar(
        select(func.count())
        .select_from(handoffs)
        .where(
            handoffs.c.workspace_id == workspace_id,
            handoffs.c.queue_id == queue_id,
            handoffs.c.status.in_(("open", "claimed")),
        )
    )
    if busy:
        return False
    result = await conn.execute(
        delete(queues).where(
            queues.c.id == queue_id, queues.c.workspace_id == workspace_id, queues.c.is_default.is_(False)
        )
    )
    return result.rowcount == 1


_MOVE = (
    update(handoffs)
    .where(
        handoffs.c.id == bindparam("h_id"),
        handoffs.c.workspace_id == bindparam("ws"),
        handoffs.c.version == bindparam("expected_version"),
        handoffs.c.status.in_(("open", "claimed")),
    )
    .values(
        queue_id=bindparam("to_queue"),
        queue_arrived_at=bindparam("now", type_=handoffs.c.queue_arrived_at.type),
        moves=handoffs.c.moves + 1,
        handovers=bindparam("handovers", type_=handoffs.c.handovers.type),
        status="open",
        claimed_by=None,
        claimed_at=None,
        first_action_at=None,
        card_channel=None,
        card_ref=None,
        card_url=None,
        version=handoffs.c.version + 1,
        updated_at=bindparam("now", type_=handoffs.c.updated_at.type),
    )
    .returning(*handoffs.c)
)


async def move(
    conn: AsyncConnection,
    workspace_id: int,
    handoff_id: int,
    to_queue: int,
    expected_version: int,
    now: datetime,
    handovers: list[dict[str, Any]],
) -> Row[Any] | None:
    """Move an open or claimed escalation to `to_queue`, if it is still as the mover saw it (its
    version; so `handovers`, the list as it was then plus this one, loses nothing). It is open
    there, with no card yet (the new one is posted), and arrived now."""
    params = {"h_id": handoff_id, "ws": workspace_id, "to_queue": to_queue, "expected_version": expected_version}
    return (await conn.execute(_MOVE, {**params, "now": now, "handovers": handovers})).first()


async def open_in(conn: AsyncConnection, workspace_id: int, queue_id: int) -> list[Row[Any]]:
    """The open and claimed escalations of a queue (oldest first)."""
    stmt = (
        select(handoffs)
        .where(
            handoffs.c.workspace_id == workspace_id,
            handoffs.c.queue_id == queue_id,
            handoffs.c.status.in_(("open", "claimed")),
        )
        .order_by(handoffs.c.id)
    )
    return list((await conn.execute(stmt)).all())


async def shortest_minutes(conn: AsyncConnection, event: str) -> list[int]:
    """The reminder (`reminded`) or lead-alert (`lead_alerted`) minutes the queues set, where set."""
    key = "reminder_minutes" if event == "reminded" else "lead_alert_minutes"
    rows = await conn.execute(select(queues.c.settings).where(queues.c.settings.is_not(None)))
    return [int(m) for (s,) in rows.all() if isinstance(s, dict) and isinstance(m := s.get(key), int) and m > 0]
