"""PostgreSQL: a new escalation stored in one statement.

Storing one is: take the workspace's next number (unless the form was stored already), insert the
escalation, its `created` event, the messages it owes (its card, the requester's note) and, when
someone looked at their Home tab lately, a refresh of those tabs. As separate statements that is
seven round trips (BEGIN, five, COMMIT) on two connections, each with its ping; as data-modifying
WITHs it is one, in autocommit: the counter row stays locked only while the statement runs, never
across a round trip, so replicas do not queue on it.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String, bindparam, cast, exists, literal, null, select, union_all
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.handoffs import TAKE_NUMBER_IF_NEW
from storage.tables import handoff_events, handoffs, home_viewers, outbox

# The escalation's own values (its number comes from the counter; the workspace and the form's key
# are the `ws` and `key` the counter statement is asked with).
_GIVEN = (
    "status",
    "severity",
    "category",
    "summary",
    "details",
    "tried",
    "customer",
    "links",
    "transcript",
    "source",
    "requester_id",
    "requested_senior_id",
    "origin_channel",
    "version",
    "queue_id",
    "queue_arrived_at",
    "moves",
    "created_at",
    "updated_at",
)
_OUTBOX_COLUMNS = [
    "workspace_id",
    "handoff_id",
    "handoff_version",
    "kind",
    "payload",
    "dedupe_key",
    "status",
    "attempts",
    "next_attempt_at",
    "created_at",
]


def _now() -> Any:
    return bindparam("now", type_=outbox.c.created_at.type)


@functools.cache
def _statement(messages: int) -> Any:
    number = TAKE_NUMBER_IF_NEW.cte("number")
    new = (
        postgresql.insert(handoffs)
        .from_select(
            ["number", "workspace_id", "idempotency_key", *_GIVEN],
            select(
                number.c.next_number,
                bindparam("ws", type_=Integer),
                bindparam("key", type_=String),
                *(bindparam(f"h_{name}", type_=handoffs.c[name].type) for name in _GIVEN),
            ),
        )
        .on_conflict_do_nothing(index_elements=["workspace_id", "idempotency_key"])
        .returning(*handoffs.c)
        .cte("new")
    )
    event = (
        postgresql.insert(handoff_events)
        .from_select(
            ["handoff_id", "workspace_id", "kind", "actor", "at", "data"],
            select(
                new.c.id,
                new.c.workspace_id,
                bindparam("event_kind", type_=String),
                new.c.requester_id,
                new.c.created_at,
                bindparam("event_data", type_=handoff_events.c.data.type),
            ),
        )
        .cte("event")
    )
    owed = (
        postgresql.insert(outbox)
        .from_select(
            _OUTBOX_COLUMNS,
            union_all(
                *(
                    select(
                        new.c.workspace_id,
                        new.c.id,
                        new.c.version,
                        bindparam(f"m{i}_kind", type_=String),
                        bindparam(f"m{i}_payload", type_=outbox.c.payload.type),
                        bindparam(f"m{i}_before", type_=String)
                        + cast(new.c.id, String)
                        + bindparam(f"m{i}_after", type_=String),
                        literal("pending"),
                        literal(0),
                        _now(),
                        _now(),
                    )
                    for i in range(messages)
                )
            ),
        )
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .cte("owed")
    )
    homes = (
        postgresql.insert(outbox)
        .from_select(
            _OUTBOX_COLUMNS,
            select(
                new.c.workspace_id,
                null(),
                null(),
                bindparam("home_kind", type_=String),
                bindparam("home_payload", type_=outbox.c.payload.type),
                bindparam("home_key", type_=String),
                literal("pending"),
                literal(0),
                bindparam("home_due", type_=outbox.c.next_attempt_at.type),
                _now(),
            ).where(
                exists().where(
                    home_viewers.c.workspace_id == new.c.workspace_id,
                    home_viewers.c.opened_at >= bindparam("home_since", type_=home_viewers.c.opened_at.type),
                )
            ),
        )
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .cte("homes")
    )
    # The event, messages and refresh are read by nothing: add_cte renders (and so runs) them anyway.
    return select(new).add_cte(event, owed, homes)


async def store(
    conn: AsyncConnection,
    workspace_id: int,
    key: str,
    values: dict[str, Any],
    *,
    event: tuple[str, dict[str, Any]],
    messages: list[dict[str, Any]],
    home: dict[str, Any],
    home_since: datetime,
    now: datetime,
) -> Row[Any] | None:
    """Store a new escalation (`values`: the columns named in _GIVEN), its event
    (kind, data; the requester is its actor, its creation its time), the `messages` it owes (kind,
    payload, and a dedupe key in which `{id}` stands for the new escalation's id) and the Home refresh
    `home` (an outbox row: kind, dedupe_key, due) if anyone opened their Home since `home_since`.
    Returns the new row, or None when this key is stored already (or the workspace is not there):
    then nothing was written, and no number was used unless a same-key submission raced this one."""
    params: dict[str, Any] = {"ws": workspace_id, "key": key, "now": now}
    params.update({f"h_{name}": values[name] for name in _GIVEN})
    params.update(event_kind=event[0], event_data=event[1])
    for i, m in enumerate(messages):
        before, after = m["dedupe_key"].split("{id}")
        params.update({f"m{i}_kind": m["kind"], f"m{i}_payload": m.get("payload") or {}})
        params.update({f"m{i}_before": before, f"m{i}_after": after})
    params.update(home_kind=home["kind"], home_payload={}, home_key=home["dedupe_key"], home_due=home["due"])
    params["home_since"] = home_since
    return (await conn.execute(_statement(len(messages)), params)).first()
