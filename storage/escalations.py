"""New escalations stored together, however many arrive at once.

Storing one is: take the workspace's next number (unless the form was stored already), insert the
escalation, its `created` event, the messages it owes (its card, the requester's note) and, when
someone looked at their Home tab lately, a refresh of those tabs. As separate statements that is
seven round trips (BEGIN, five, COMMIT) on two connections, each with its ping; as data-modifying
WITHs it is one, in autocommit: the counter row stays locked only while the statement runs, never
across a round trip. Submissions to one workspace that arrive together share the statement (their
columns go in as arrays): one lock of the counter, one commit, for the lot. On SQLite (no
data-modifying WITH) they share one write transaction and a statement per table instead.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Integer, bindparam, insert, select, text, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.directory import home_viewers_since
from storage.handoffs import add_events
from storage.outbox import enqueue_many
from storage.tables import handoffs, workspaces

# The columns a new escalation is given (its number comes from the counter; its workspace and the
# form's key are given apart), with the PostgreSQL type of each column's array.
_GIVEN = {
    "status": "text",
    "severity": "text",
    "category": "text",
    "summary": "text",
    "details": "text",
    "tried": "text",
    "customer": "text",
    "links": "json",
    "transcript": "json",
    "source": "json",
    "requester_id": "text",
    "requested_senior_id": "text",
    "origin_channel": "text",
    "version": "integer",
    "queue_id": "integer",
    "queue_arrived_at": "timestamptz",
    "moves": "integer",
    "created_at": "timestamptz",
    "updated_at": "timestamptz",
}


@dataclass(frozen=True)
class Owed:
    """What every escalation stored together is owed: its event (`event_kind`; the requester its
    actor, its creation its time), the `messages` it owes (kind, and a dedupe key in which `{id}`
    stands for its id), and, if anyone opened their Home tab since `home_since`, the refresh `home`
    (an outbox row: kind, dedupe_key, due). `now`: when the messages were queued."""

    event_kind: str
    messages: list[tuple[str, str]]
    home: dict[str, Any]
    home_since: datetime
    now: datetime


@dataclass(frozen=True)
class NewEscalation:
    key: str  # the form's idempotency key
    values: dict[str, Any]  # the columns in _GIVEN
    event_data: dict[str, Any]  # the data of its event
    payloads: list[dict[str, Any]]  # the payload of each message it owes, in the order of `messages`


# The parameters that are one value for the whole statement, typed once.
_SCALARS = {
    "ws": "integer",
    "now": "timestamptz",
    "event_kind": "text",
    "home_kind": "text",
    "home_key": "text",
    "home_due": "timestamptz",
    "home_since": "timestamptz",
}


@functools.cache
def _statement(messages: int) -> Any:
    scalars = {**_SCALARS, **{f"m{i}_{part}": "text" for i in range(messages) for part in ("kind", "before", "after")}}
    given = ["key", *_GIVEN, "event_data", *(f"m{i}_payload" for i in range(messages))]
    kinds = {"key": "text", **_GIVEN, "event_data": "json", **{f"m{i}_payload": "json" for i in range(messages)}}
    # Every array goes in as text[] and is cast here: asyncpg knows text[] without asking, but for an
    # integer[] or timestamptz[] parameter it asks the server about the type (one introspection query,
    # ~5 ms of PostgreSQL's planning) on every connection the statement is first prepared on: 35 times
    # in one bench/intake.py run of three replicas. JSON stays text and is cast row by row.
    arrays = ", ".join(
        f"CAST(:a_{n} AS text[])" if kinds[n] in ("text", "json") else f"CAST(CAST(:a_{n} AS text[]) AS {kinds[n]}[])"
        for n in given
    )
    values = ", ".join(f'CAST(f."{n}" AS json)' if k == "json" else f'f."{n}"' for n, k in _GIVEN.items())
    columns = ", ".join(f'"{c.name}"' for c in handoffs.c)
    outbox_columns = (
        "workspace_id, handoff_id, handoff_version, kind, payload, dedupe_key, status, attempts, next_attempt_at, "
        "created_at"
    )
    owed = "\n        UNION ALL ".join(
        f"""SELECT new.workspace_id, new.id, new.version, p.m{i}_kind, CAST(f.m{i}_payload AS json),
               p.m{i}_before || new.id || p.m{i}_after, 'pending', 0, p.now, p.now
        FROM new JOIN fresh f ON f.key = new.idempotency_key CROSS JOIN p"""
        for i in range(messages)
    )
    sql = f"""
    WITH p AS (SELECT {", ".join(f"CAST(:{n} AS {t}) AS {n}" for n, t in scalars.items())}),
    given AS (
        SELECT * FROM unnest({arrays}) WITH ORDINALITY AS g({", ".join(f'"{n}"' for n in given)}, ord)
    ),
    fresh AS (  -- not stored already, and the first of a key given twice; numbered in arrival order
        SELECT g.*, row_number() OVER (ORDER BY g.ord) AS rn FROM given g, p
        WHERE NOT EXISTS (SELECT 1 FROM handoffs h WHERE h.workspace_id = p.ws AND h.idempotency_key = g.key)
          AND NOT EXISTS (SELECT 1 FROM given e WHERE e.key = g.key AND e.ord < g.ord)
    ),
    number AS (  -- the counter, locked until this statement commits
        UPDATE workspaces SET next_number = next_number + (SELECT count(*) FROM fresh)
        FROM p WHERE workspaces.id = p.ws AND EXISTS (SELECT 1 FROM fresh)
        RETURNING next_number - (SELECT count(*) FROM fresh) AS before
    ),
    new AS (
        INSERT INTO handoffs (workspace_id, idempotency_key, number, {", ".join(f'"{n}"' for n in _GIVEN)})
        SELECT p.ws, f.key, number.before + f.rn, {values}
        FROM fresh f CROSS JOIN number CROSS JOIN p
        ON CONFLICT (workspace_id, idempotency_key) DO NOTHING
        RETURNING {columns}
    ),
    event AS (
        INSERT INTO handoff_events (handoff_id, workspace_id, kind, actor, at, data)
        SELECT new.id, new.workspace_id, p.event_kind, new.requester_id, new.created_at, CAST(f.event_data AS json)
        FROM new JOIN fresh f ON f.key = new.idempotency_key CROSS JOIN p
    ),
    owed AS (
        INSERT INTO outbox ({outbox_columns})
        {owed}
        ON CONFLICT (dedupe_key) DO NOTHING
    ),
    homes AS (
        INSERT INTO outbox ({outbox_columns})
        SELECT p.ws, NULL, NULL, p.home_kind, CAST('{{}}' AS json), p.home_key, 'pending', 0, p.home_due, p.now
        FROM p
        WHERE EXISTS (SELECT 1 FROM new)
          AND EXISTS (SELECT 1 FROM home_viewers v WHERE v.workspace_id = p.ws AND v.opened_at >= p.home_since)
        ON CONFLICT (dedupe_key) DO NOTHING
    )
    SELECT {columns} FROM new
    """
    stamps = [bindparam(n, type_=handoffs.c.created_at.type) for n in ("now", "home_due", "home_since")]
    return text(sql).bindparams(*stamps).columns(*handoffs.c)


async def store(
    conn: AsyncConnection, workspace_id: int, items: list[NewEscalation], owed: Owed
) -> dict[str, Row[Any]]:
    """Store new escalations of one workspace, numbered in the order given, each with what it is
    `owed` (see Owed). Returns the rows stored, by key; a key stored already (or given twice: the
    first is stored) is not among them.

    PostgreSQL: one statement, in autocommit (a key that a submission on another replica stores at
    the same moment uses up a number). SQLite: inside the caller's write transaction, which holds
    the file's write lock, so numbers stay dense."""
    if conn.dialect.name == "postgresql":
        return await _store_postgresql(conn, workspace_id, items, owed)
    return await _store_in_transaction(conn, workspace_id, items, owed)


async def _store_postgresql(
    conn: AsyncConnection, workspace_id: int, items: list[NewEscalation], owed: Owed
) -> dict[str, Row[Any]]:
    params: dict[str, Any] = {"ws": workspace_id, "now": owed.now, "event_kind": owed.event_kind}
    params["a_key"] = [i.key for i in items]
    for name, kind in _GIVEN.items():
        column = [i.values[name] for i in items]
        params[f"a_{name}"] = [json.dumps(v) for v in column] if kind == "json" else _as_text(column, kind)
    params["a_event_data"] = [json.dumps(i.event_data) for i in items]
    for m, (kind, template) in enumerate(owed.messages):
        before, after = template.split("{id}")
        params.update({f"m{m}_kind": kind, f"m{m}_before": before, f"m{m}_after": after})
        params[f"a_m{m}_payload"] = [json.dumps(i.payloads[m]) for i in items]
    params.update(
        home_kind=owed.home["kind"],
        home_key=owed.home["dedupe_key"],
        home_due=owed.home["due"],
        home_since=owed.home_since,
    )
    rows = (await conn.execute(_statement(len(owed.messages)), params)).all()
    return {r._mapping["idempotency_key"]: r for r in rows}


def _as_text(column: list[Any], kind: str) -> list[Any]:
    """Values for a text[] parameter that the statement casts to `kind` (see _statement)."""
    if kind == "text":
        return column
    if kind == "timestamptz":  # ISO 8601 with its offset: the same instant whatever the session's TimeZone
        if any(v is not None and v.tzinfo is None for v in column):
            raise ValueError("naive datetime given to a UTC column")  # as tables.UTCDateTime says
        return [None if v is None else v.astimezone(UTC).isoformat() for v in column]
    return [None if v is None else str(int(v)) for v in column]


_STORED_KEYS = select(handoffs.c.idempotency_key).where(
    handoffs.c.workspace_id == bindparam("ws"), handoffs.c.idempotency_key.in_(bindparam("keys", expanding=True))
)
_TAKE_NUMBERS = (
    update(workspaces)
    .where(workspaces.c.id == bindparam("ws"))
    .values(next_number=workspaces.c.next_number + bindparam("count", type_=Integer))
    .returning(workspaces.c.next_number)
)
_INSERT = insert(handoffs).returning(*handoffs.c)  # many rows: one INSERT … VALUES (…), (…) at run time


async def _store_in_transaction(
    conn: AsyncConnection, workspace_id: int, items: list[NewEscalation], owed: Owed
) -> dict[str, Row[Any]]:
    stored = set((await conn.execute(_STORED_KEYS, {"ws": workspace_id, "keys": [i.key for i in items]})).scalars())
    fresh: dict[str, NewEscalation] = {}
    for item in items:
        if item.key not in stored:
            fresh.setdefault(item.key, item)
    if not fresh:
        return {}
    last = await conn.scalar(_TAKE_NUMBERS, {"ws": workspace_id, "count": len(fresh)})
    if last is None:
        return {}  # no such workspace
    first = int(last) - len(fresh) + 1
    given = [
        {**item.values, "workspace_id": workspace_id, "idempotency_key": key, "number": first + n}
        for n, (key, item) in enumerate(fresh.items())
    ]
    rows = {r._mapping["idempotency_key"]: r for r in (await conn.execute(_INSERT, given)).all()}
    await add_events(
        conn,
        [
            {
                "workspace_id": workspace_id,
                "handoff_id": r._mapping["id"],
                "kind": owed.event_kind,
                "actor": r._mapping["requester_id"],
                "at": r._mapping["created_at"],
                "data": fresh[key].event_data,
            }
            for key, r in rows.items()
        ],
    )
    outgoing = [
        {
            "workspace_id": workspace_id,
            "handoff_id": r._mapping["id"],
            "handoff_version": r._mapping["version"],
            "kind": kind,
            "dedupe_key": template.format(id=r._mapping["id"]),
            "payload": fresh[key].payloads[m],
        }
        for key, r in rows.items()
        for m, (kind, template) in enumerate(owed.messages)
    ]
    if await home_viewers_since(conn, workspace_id, owed.home_since, 1):
        outgoing.append(owed.home)
    await enqueue_many(conn, outgoing, owed.now)
    return rows
