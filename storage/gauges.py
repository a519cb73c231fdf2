"""What `/metrics` reads from the database when it is scraped: a few statements that stay cheap
however long the history is, each reading only what is still in motion (open escalations, unsent
messages) through an index that leads with the status, never the millions of rows already done."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.tables import IN_MOTION, handoffs, outbox

_IN_MOTION = ("pending", "dead")


@dataclass(frozen=True)
class OutboxState:
    pending: int
    dead: int
    oldest_pending: datetime | None


# outbox (status, next_attempt_at) index: pending and dead rows only, however many were sent.
_OUTBOX = (
    select(outbox.c.status, func.count(), func.min(outbox.c.created_at))
    .where(outbox.c.status.in_(_IN_MOTION))
    .group_by(outbox.c.status)
)


async def outbox_state(conn: AsyncConnection) -> OutboxState:
    found = {row[0]: (int(row[1]), row[2]) for row in (await conn.execute(_OUTBOX)).all()}
    pending, oldest = found.get("pending", (0, None))
    return OutboxState(pending=pending, dead=found.get("dead", (0, None))[0], oldest_pending=oldest)


# ix_handoffs_in_motion, the partial index of the open and claimed ones (a few dozen rows). One row per workspace,
# queue, severity and status, with how many and the earliest arrival in the queue.
_OPEN = (
    select(
        handoffs.c.workspace_id,
        handoffs.c.queue_id,
        handoffs.c.severity,
        handoffs.c.status,
        func.count(),
        func.min(func.coalesce(handoffs.c.queue_arrived_at, handoffs.c.created_at)),
    )
    .where(text(IN_MOTION))
    .group_by(handoffs.c.workspace_id, handoffs.c.queue_id, handoffs.c.severity, handoffs.c.status)
)


async def open_escalations(conn: AsyncConnection) -> list[tuple[int, int | None, str, str, int, datetime]]:
    """(workspace, queue id, severity, status, how many, earliest arrival) for what is not done."""
    return [
        (int(ws), queue, str(sev), str(status), int(n), earliest)
        for ws, queue, sev, status, n, earliest in (await conn.execute(_OPEN)).all()
    ]


_SENT_AT = select(outbox.c.dedupe_key, outbox.c.sent_at).where(
    outbox.c.dedupe_key.in_(bindparam("keys", expanding=True))
)


async def sent_at(conn: AsyncConnection, keys: list[str]) -> dict[str, Any]:
    """When each of these messages (by dedupe key, the unique index) went out; None if not yet."""
    if not keys:
        return {}
    return {key: when for key, when in (await conn.execute(_SENT_AT, {"keys": keys})).all()}
