"""Queries on workspaces, handoffs and their audit events.

Every state change is one conditional UPDATE on the state it expects (a
compare-and-set). The caller learns from the number of rows it changed whether
it won; nothing here reads a row and then writes based on what it read.
"""

from __future__ import annotations

import functools
from datetime import date, datetime
from typing import Any

from sqlalchemy import Integer, Row, Text, and_, any_, bindparam, case, cast, exists, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.tables import handoff_events, handoffs, processed_events, weekly_reports, workspaces


def insert_ignore(conn: AsyncConnection, table: Any, conflict_cols: list[str]) -> Any:
    """INSERT … ON CONFLICT (cols) DO NOTHING for the connection's dialect."""
    return insert_ignore_for(conn.dialect.name, table, tuple(conflict_cols))


@functools.cache
def insert_ignore_for(dialect: str, table: Any, conflict_cols: tuple[str, ...]) -> Any:
    """The same, for a dialect by name; built once per table (statements are immutable: `.values()`
    and `.returning()` give new ones)."""
    insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
    return insert(table).on_conflict_do_nothing(index_elements=list(conflict_cols))


# ---- workspaces -----------------------------------------------------------


async def ensure_workspace(
    conn: AsyncConnection, platform: str, external_id: str, now: datetime, name: str | None = None
) -> int:
    found = await conn.scalar(
        select(workspaces.c.id).where(workspaces.c.platform == platform, workspaces.c.external_id == external_id)
    )
    if found is not None:
        return int(found)
    await conn.execute(
        insert_ignore(conn, workspaces, ["platform", "external_id"]).values(
            platform=platform, external_id=external_id, name=name, created_at=now
        )
    )
    found = await conn.scalar(
        select(workspaces.c.id).where(workspaces.c.platform == platform, workspaces.c.external_id == external_id)
    )
    assert found is not None
    return int(found)


async def get_workspace(conn: AsyncConnection, workspace_id: int) -> Row[Any] | None:
    return (await conn.execute(select(workspaces).where(workspaces.c.id == workspace_id))).first()


# The statements of the path every escalation takes are built once: building one (and its cache
# key) cost SQLAlchemy more than running it.
_GET = select(handoffs).where(handoffs.c.id == bindparam("id"), handoffs.c.workspace_id == bindparam("ws"))
_ADD_EVENT = handoff_events.insert()
_SET_CARD = (
    update(handoffs)
    .where(
        handoffs.c.id == bindparam("h_id"),
        handoffs.c.workspace_id == bindparam("ws"),
        handoffs.c.card_ref.is_(None),
    )
    .values(card_channel=bindparam("channel"), card_ref=bindparam("ref"), card_url=bindparam("url"))
)
_SET_CARD_AND_SIMILAR = _SET_CARD.values(similar=bindparam("h_similar", type_=handoffs.c.similar.type))


@functools.cache
def set_card_statement(with_similar: bool, if_unmoved: bool) -> Any:
    """The UPDATE that records a card's place (and its similar resolutions), only while none is
    recorded. `if_unmoved`: only while the escalation is still where the card was drawn — a move
    between the post and its record (a quick senior) makes the place of the card it left stale."""
    stmt = _SET_CARD_AND_SIMILAR if with_similar else _SET_CARD
    return stmt.where(handoffs.c.moves == bindparam("drawn_moves")) if if_unmoved else stmt


def set_card_params(
    workspace_id: int,
    handoff_id: int,
    channel: str,
    ref: str,
    url: str | None,
    similar: list[dict[str, Any]] | None,
    moves: int | None,
) -> dict[str, Any]:
    """The parameters of `set_card_statement(similar is not None, moves is not None)`."""
    params: dict[str, Any] = {"h_id": handoff_id, "ws": workspace_id, "channel": channel, "ref": ref, "url": url}
    if similar is not None:
        params["h_similar"] = similar
    if moves is not None:
        params["drawn_moves"] = moves
    return params


async def get(conn: AsyncConnection, workspace_id: int, handoff_id: int) -> Row[Any] | None:
    return (await conn.execute(_GET, {"id": handoff_id, "ws": workspace_id})).first()


@functools.cache
def _get_many_statement(dialect: str) -> Any:
    if dialect == "postgresql":
        # One statement however many are asked for: `IN (…)` is a statement of its own for each count,
        # which every connection prepares (a round trip more) and plans afresh. The ids go in as
        # text[], an array type asyncpg knows without asking the server.
        ids = cast(bindparam("ids", type_=postgresql.ARRAY(Text)), postgresql.ARRAY(Integer))
        return select(handoffs).where(handoffs.c.id == any_(ids))
    return select(handoffs).where(handoffs.c.id.in_(bindparam("ids", expanding=True)))


async def get_many(conn: AsyncConnection, wanted: list[tuple[int, int]]) -> dict[tuple[int, int], Row[Any]]:
    """Several handoffs by (workspace id, handoff id) in one statement; a pair whose handoff belongs
    to another workspace is simply not found (tenant walls)."""
    if not wanted:
        return {}
    ids = sorted({h for _, h in wanted})
    dialect = conn.dialect.name
    given: list[Any] = [str(i) for i in ids] if dialect == "postgresql" else ids
    rows = (await conn.execute(_get_many_statement(dialect), {"ids": given})).all()
    asked = set(wanted)
    return {key: r for r in rows if (key := (r._mapping["workspace_id"], r._mapping["id"])) in asked}


async def get_by_number(conn: AsyncConnection, workspace_id: int, number: int) -> Row[Any] | None:
    stmt = select(handoffs).where(handoffs.c.workspace_id == workspace_id, handoffs.c.number == number)
    return (await conn.execute(stmt)).first()


async def get_by_key(conn: AsyncConnection, workspace_id: int, key: str) -> Row[Any] | None:
    return (
        await conn.execute(
            select(handoffs).where(handoffs.c.workspace_id == workspace_id, handoffs.c.idempotency_key == key)
        )
    ).first()


async def get_by_card(conn: AsyncConnection, workspace_id: int, channel: str, ref: str) -> Row[Any] | None:
    return (
        await conn.execute(
            select(handoffs).where(
                handoffs.c.workspace_id == workspace_id, handoffs.c.card_channel == channel, handoffs.c.card_ref == ref
            )
        )
    ).first()


def _scoped(workspace_id: int, handoff_id: int) -> Any:
    return and_(handoffs.c.id == handoff_id, handoffs.c.workspace_id == workspace_id)


_CLAIM = (
    update(handoffs)
    .where(
        handoffs.c.id == bindparam("h_id"),
        handoffs.c.workspace_id == bindparam("ws"),
        handoffs.c.status == "open",
        handoffs.c.requester_id != bindparam("user"),
    )
    .values(
        status="claimed",
        claimed_by=bindparam("user"),
        claimed_at=bindparam("now", type_=handoffs.c.claimed_at.type),
        version=handoffs.c.version + 1,
        updated_at=bindparam("now", type_=handoffs.c.updated_at.type),
    )
    .returning(*handoffs.c)
)  # built once: a storm of clicks runs it hundreds of times a second
# A click from a queue's card: only while the escalation is still in that queue.
_CLAIM_IN_QUEUE = _CLAIM.where(handoffs.c.queue_id == bindparam("queue"))


async def claim(
    conn: AsyncConnection, workspace_id: int, handoff_id: int, user: str, now: datetime, queue_id: int | None = None
) -> Row[Any] | None:
    """The one claim statement. A row back means this user won; None means they did not. With
    `queue_id`, only while the escalation is in that queue (a move and a claim: one wins)."""
    params: dict[str, Any] = {"h_id": handoff_id, "ws": workspace_id, "user": user, "now": now}
    if queue_id is None:
        return (await conn.execute(_CLAIM, params)).first()
    return (await conn.execute(_CLAIM_IN_QUEUE, {**params, "queue": queue_id})).first()


async def release(
    conn: AsyncConnection, workspace_id: int, handoff_id: int, user: str, now: datetime
) -> Row[Any] | None:
    stmt = (
        update(handoffs)
        .where(_scoped(workspace_id, handoff_id), handoffs.c.status == "claimed", handoffs.c.claimed_by == user)
        .values(
            status="open",
            claimed_by=None,
            claimed_at=None,
            version=handoffs.c.version + 1,
            updated_at=now,
        )
        .returning(*handoffs.c)
    )
    return (await conn.execute(stmt)).first()


async def resolve(
    conn: AsyncConnection, workspace_id: int, handoff_id: int, user: str, note: str, now: datetime
) -> Row[Any] | None:
    stmt = (
        update(handoffs)
        .where(_scoped(workspace_id, handoff_id), handoffs.c.status == "claimed", handoffs.c.claimed_by == user)
        .values(
            status="resolved",
            resolved_by=user,
            resolution=note,
            resolved_at=now,
            version=handoffs.c.version + 1,
            updated_at=now,
        )
        .returning(*handoffs.c)
    )
    return (await conn.execute(stmt)).first()


async def cancel(
    conn: AsyncConnection, workspace_id: int, handoff_id: int, user: str, now: datetime
) -> Row[Any] | None:
    """Its requester withdraws an open or claimed escalation. A row back means it was cancelled now."""
    stmt = (
        update(handoffs)
        .where(
            _scoped(workspace_id, handoff_id),
            handoffs.c.status.in_(("open", "claimed")),
            handoffs.c.requester_id == user,
        )
        .values(
            status="cancelled",
            cancelled_by=user,
            cancelled_at=now,
            version=handoffs.c.version + 1,
            updated_at=now,
        )
        .returning(*handoffs.c)
    )
    return (await conn.execute(stmt)).first()


async def mark_first_action(
    conn: AsyncConnection, workspace_id: int, handoff_id: int, user: str, now: datetime
) -> bool:
    """Set first_action_at if `user` holds the escalation and nobody set it yet. True if this call set it."""
    result = await conn.execute(
        update(handoffs)
        .where(
            _scoped(workspace_id, handoff_id),
            handoffs.c.status == "claimed",
            handoffs.c.claimed_by == user,
            handoffs.c.first_action_at.is_(None),
        )
        .values(first_action_at=now)
    )
    return result.rowcount == 1


async def set_card(
    conn: AsyncConnection,
    workspace_id: int,
    handoff_id: int,
    channel: str,
    ref: str,
    url: str | None,
    similar: list[dict[str, Any]] | None = None,
    moves: int | None = None,
) -> bool:
    """Record where the card was posted (and the similar resolutions it shows), once: a second
    post can never move it. `moves`: the escalation's move count the card was drawn with; if it
    has moved since, nothing is recorded."""
    stmt = set_card_statement(similar is not None, moves is not None)
    result = await conn.execute(stmt, set_card_params(workspace_id, handoff_id, channel, ref, url, similar, moves))
    return result.rowcount == 1


async def add_event(
    conn: AsyncConnection,
    *,
    workspace_id: int,
    handoff_id: int,
    kind: str,
    actor: str | None,
    at: datetime,
    data: dict[str, Any] | None = None,
) -> None:
    await conn.execute(
        _ADD_EVENT,
        {"workspace_id": workspace_id, "handoff_id": handoff_id, "kind": kind, "actor": actor, "at": at, "data": data},
    )


async def add_events(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    """Several events in one statement: each a dict of add_event's arguments (data included)."""
    if rows:
        await conn.execute(_ADD_EVENT, rows)


async def events(conn: AsyncConnection, workspace_id: int, handoff_id: int) -> list[Row[Any]]:
    return list(
        (
            await conn.execute(
                select(handoff_events)
                .where(handoff_events.c.workspace_id == workspace_id, handoff_events.c.handoff_id == handoff_id)
                .order_by(handoff_events.c.id)
            )
        ).all()
    )


async def is_processed(conn: AsyncConnection, source: str, event_id: str) -> bool:
    found = await conn.scalar(
        select(processed_events.c.event_id).where(
            processed_events.c.source == source, processed_events.c.event_id == event_id
        )
    )
    return found is not None


async def open_without_event(conn: AsyncConnection, *, before: datetime, kind: str) -> list[Row[Any]]:
    """Open escalations that arrived in their queue before `before` and have no `kind` event since
    (oldest first)."""
    e = handoff_events.alias("e")
    arrived = func.coalesce(handoffs.c.queue_arrived_at, handoffs.c.created_at)
    stmt = (
        select(handoffs)
        .where(
            handoffs.c.status == "open",
            handoffs.c.created_at <= before,  # (arrival is never earlier: lets the index narrow it)
            arrived <= before,
            ~exists().where(e.c.handoff_id == handoffs.c.id, e.c.kind == kind, e.c.at > arrived),
        )
        .order_by(handoffs.c.created_at)
        .limit(500)
    )
    return list((await conn.execute(stmt)).all())


async def workspaces_created_before(conn: AsyncConnection, moment: datetime) -> list[int]:
    rows = await conn.execute(select(workspaces.c.id).where(workspaces.c.created_at < moment).order_by(workspaces.c.id))
    return [int(r[0]) for r in rows.all()]


async def claim_weekly_report(conn: AsyncConnection, workspace_id: int, week_start: date, now: datetime) -> bool:
    """True for exactly one caller per workspace and week: that caller queues the post."""
    result = await conn.execute(
        insert_ignore(conn, weekly_reports, ["workspace_id", "week_start"]).values(
            workspace_id=workspace_id, week_start=week_start, queued_at=now
        )
    )
    return result.rowcount == 1


async def mark_processed(conn: AsyncConnection, source: str, event_id: str, now: datetime) -> bool:
    """True the first time an event id is seen, False on every re-delivery."""
    result = await conn.execute(
        insert_ignore(conn, processed_events, ["source", "event_id"]).values(
            source=source, event_id=event_id, received_at=now
        )
    )
    return result.rowcount == 1


async def set_transcript(
    conn: AsyncConnection,
    workspace_id: int,
    handoff_id: int,
    transcript: list[dict[str, Any]] | None,
    source: dict[str, Any],
) -> None:
    await conn.execute(
        update(handoffs).where(_scoped(workspace_id, handoff_id)).values(transcript=transcript, source=source)
    )


# ---- what a person sees: the open queue, their escalations, their claims ----------


_SEVERITY_FIRST = case(
    (handoffs.c.severity == "P1", 1), (handoffs.c.severity == "P2", 2), (handoffs.c.severity == "P3", 3), else_=4
)


async def open_queue(conn: AsyncConnection, workspace_id: int, limit: int) -> tuple[list[Row[Any]], int]:
    """Open escalations, most severe first and oldest first within a severity; and how many in all."""
    where = and_(handoffs.c.workspace_id == workspace_id, handoffs.c.status == "open", handoffs.c.number.is_not(None))
    rows = (
        await conn.execute(
            select(handoffs).where(where).order_by(_SEVERITY_FIRST, handoffs.c.created_at, handoffs.c.id).limit(limit)
        )
    ).all()
    total = await conn.scalar(select(func.count()).select_from(handoffs).where(where))
    return list(rows), int(total or 0)


async def of_person(
    conn: AsyncConnection,
    workspace_id: int,
    *,
    requester: str | None = None,
    claimer: str | None = None,
    statuses: tuple[str, ...],
    limit: int,
) -> list[Row[Any]]:
    """One person's escalations (as requester) or claims (as claimer) in these states, newest first."""
    column, user = (handoffs.c.requester_id, requester) if requester else (handoffs.c.claimed_by, claimer)
    return list(
        (
            await conn.execute(
                select(handoffs)
                .where(
                    handoffs.c.workspace_id == workspace_id,
                    column == user,
                    handoffs.c.status.in_(statuses),
                    handoffs.c.number.is_not(None),
                )
                .order_by(handoffs.c.created_at.desc(), handoffs.c.id.desc())
                .limit(limit)
            )
        ).all()
    )
