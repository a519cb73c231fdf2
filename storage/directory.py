"""Conversation references and display names: what a platform adapter needs to write later."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Integer, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.tables import conversation_refs, home_viewers, people, workspaces


def _upsert(conn: AsyncConnection, table: Any, keys: list[str], values: dict[str, Any]) -> Any:
    dialect = sqlite if conn.dialect.name == "sqlite" else postgresql
    stmt = dialect.insert(table).values(**values)
    return stmt.on_conflict_do_update(index_elements=keys, set_={k: v for k, v in values.items() if k not in keys})


async def save_reference(
    conn: AsyncConnection, workspace_id: int, key: str, reference: dict[str, Any], now: datetime
) -> None:
    await conn.execute(
        _upsert(
            conn,
            conversation_refs,
            ["workspace_id", "key"],
            {"workspace_id": workspace_id, "key": key, "reference": reference, "updated_at": now},
        )
    )


async def reference(conn: AsyncConnection, workspace_id: int, key: str) -> dict[str, Any] | None:
    return await conn.scalar(
        select(conversation_refs.c.reference).where(
            conversation_refs.c.workspace_id == workspace_id, conversation_refs.c.key == key
        )
    )


async def save_person(conn: AsyncConnection, workspace_id: int, user_id: str, name: str, now: datetime) -> None:
    await conn.execute(
        _upsert(
            conn,
            people,
            ["workspace_id", "user_id"],
            {"workspace_id": workspace_id, "user_id": user_id, "name": name[:200], "updated_at": now},
        )
    )


async def names(conn: AsyncConnection, workspace_id: int, user_ids: list[str]) -> dict[str, str]:
    if not user_ids:
        return {}
    rows = await conn.execute(
        select(people.c.user_id, people.c.name).where(
            people.c.workspace_id == workspace_id, people.c.user_id.in_(user_ids)
        )
    )
    return {u: n for u, n in rows.all()}


# ---- App Home viewers -------------------------------------------------------


async def home_opened(conn: AsyncConnection, workspace_id: int, user_id: str, now: datetime) -> None:
    await conn.execute(
        _upsert(
            conn,
            home_viewers,
            ["workspace_id", "user_id"],
            {"workspace_id": workspace_id, "user_id": user_id, "opened_at": now},
        )
    )


_HOME_VIEWERS = (
    select(home_viewers.c.user_id)
    .where(
        home_viewers.c.workspace_id == bindparam("ws"),
        home_viewers.c.opened_at >= bindparam("since", type_=home_viewers.c.opened_at.type),
    )
    .order_by(home_viewers.c.opened_at.desc())
    .limit(bindparam("limit", type_=Integer))
)  # built once: every escalation asks


async def home_viewers_since(conn: AsyncConnection, workspace_id: int, since: datetime, limit: int) -> list[str]:
    rows = await conn.execute(_HOME_VIEWERS, {"ws": workspace_id, "since": since, "limit": limit})
    return [r[0] for r in rows]


# ---- per-workspace configuration (Slack's `/escalate config`) -----------------


async def save_workspace_config(
    conn: AsyncConnection,
    workspace_id: int,
    *,
    escalation_channel: str | None,
    leads_channel: str | None,
    settings: dict[str, Any],
) -> None:
    await conn.execute(
        update(workspaces)
        .where(workspaces.c.id == workspace_id)
        .values(escalation_channel=escalation_channel, leads_channel=leads_channel, settings=settings)
    )
