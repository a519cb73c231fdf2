"""The outbox: messages owed to a chat platform, written in the same transaction
as the state change that caused them, and sent later by the delivery worker.

Rows are leased, not locked for the length of a send: a replica that dies
mid-send leaves a lease that runs out, and another replica takes the row.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Integer,
    bindparam,
    exists,
    func,
    literal,
    literal_column,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.handoffs import insert_ignore_for
from storage.tables import handoffs, outbox, workspaces

# The last_error of a row that is waiting (for its card, for a channel to be set up): not a failure.
WAITING = "waiting: "
# The last_error of a row that died with the card it needed.
CARD_NEVER_POSTED = "card never posted"


@dataclass(frozen=True)
class OutboxItem:
    id: int
    workspace_id: int
    handoff_id: int | None
    handoff_version: int | None
    kind: str
    payload: dict[str, Any]
    dedupe_key: str
    attempts: int
    created_at: datetime
    last_error: str | None = None
    status: str = "pending"
    next_attempt_at: datetime | None = None
    sent_at: datetime | None = None

    @property
    def tried_before(self) -> bool:
        """An earlier attempt may have gone through: it failed in some way after it had started, or an
        operator re-queued the row (`outbox retry` keeps the last error). Such a send is looked for
        before it is made again. Waiting for the card does not count: nothing was sent then."""
        return self.attempts > 1 or bool(self.last_error and not self.last_error.startswith(WAITING))

    @classmethod
    def from_row(cls, row: Any) -> OutboxItem:
        m = row._mapping
        return cls(
            id=m["id"],
            workspace_id=m["workspace_id"],
            handoff_id=m["handoff_id"],
            handoff_version=m["handoff_version"],
            kind=m["kind"],
            payload=m["payload"] or {},
            dedupe_key=m["dedupe_key"],
            attempts=m["attempts"],
            created_at=m["created_at"],
            last_error=m["last_error"],
            status=m["status"],
            next_attempt_at=m["next_attempt_at"],
            sent_at=m["sent_at"],
        )


async def enqueue(
    conn: AsyncConnection,
    *,
    workspace_id: int,
    kind: str,
    dedupe_key: str,
    now: datetime,
    payload: dict[str, Any] | None = None,
    handoff_id: int | None = None,
    handoff_version: int | None = None,
) -> bool:
    """Queue a message once per dedupe key. True if this call queued it."""
    row = {
        "workspace_id": workspace_id,
        "kind": kind,
        "dedupe_key": dedupe_key,
        "payload": payload,
        "handoff_id": handoff_id,
        "handoff_version": handoff_version,
    }
    return await enqueue_many(conn, [row], now) == 1


async def enqueue_many(conn: AsyncConnection, rows: list[dict[str, Any]], now: datetime) -> int:
    """Queue several messages in one statement (each once per dedupe key). Returns how many were new.

    A row may carry `due`: not to be sent before then (default: at once)."""
    values = [
        {
            "workspace_id": r["workspace_id"],
            "handoff_id": r.get("handoff_id"),
            "handoff_version": r.get("handoff_version"),
            "kind": r["kind"],
            "payload": r.get("payload") or {},
            "dedupe_key": r["dedupe_key"],
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": r.get("due") or now,
            "created_at": now,
        }
        for r in rows
    ]
    # Many rows, one compiled statement (SQLAlchemy batches them into one INSERT … VALUES at run
    # time): `.values(list)` would be compiled afresh each time, which cost more than running it.
    result = await conn.execute(_enqueue_statement(conn.dialect.name), values)
    return len(result.all())


@functools.cache
def _enqueue_statement(dialect: str) -> Any:
    """INSERT … ON CONFLICT (dedupe_key) DO NOTHING RETURNING id: the ids back are the rows queued now."""
    return insert_ignore_for(dialect, outbox, ("dedupe_key",)).returning(outbox.c.id)


# Written into the statement, not sent as a parameter: only then may the database use the partial
# index of pending rows (ix_outbox_pending_lanes) for the lane checks, whatever the plan.
_PENDING = literal_column("'pending'")


def _lease_statement() -> Any:
    earlier = outbox.alias("earlier")
    card = outbox.alias("card")
    now = bindparam("now", type_=outbox.c.next_attempt_at.type)
    due = (
        select(outbox.c.id)
        .where(
            outbox.c.status == "pending",
            outbox.c.next_attempt_at <= now,
            or_(outbox.c.leased_until.is_(None), outbox.c.leased_until < now),
            # One lane per handoff and kind, first in first out: the requester hears
            # "claimed" before "released" even when the first try of "claimed" failed.
            # A lookup per candidate row (a scalar subquery with LIMIT 1 is never made a join):
            # as an anti-join, PostgreSQL's planner, misled by a table that grows by the second,
            # read every pending row once per candidate, a lease costing the square of the backlog.
            select(literal(1))
            .where(
                earlier.c.handoff_id == outbox.c.handoff_id,
                earlier.c.kind == outbox.c.kind,
                earlier.c.status == _PENDING,
                earlier.c.id < outbox.c.id,
            )
            .limit(1)
            .scalar_subquery()
            .is_(None),
            # Everything about a handoff waits for its card to be posted: updates need its
            # place, and the requester's confirmation carries its link.
            or_(
                outbox.c.kind == "post_card",
                outbox.c.handoff_id.is_(None),
                ~exists().where(
                    card.c.handoff_id == outbox.c.handoff_id,
                    card.c.kind == "post_card",
                    card.c.status == _PENDING,
                ),
            ),
        )
        .order_by(outbox.c.next_attempt_at, outbox.c.id)
        .limit(bindparam("limit", type_=Integer))
        .with_for_update(skip_locked=True)
    )
    # One statement, so on PostgreSQL the rows are locked only while it runs: a busy replica
    # never sits on rows the others could be sending.
    return (
        update(outbox)
        .where(outbox.c.id.in_(due.scalar_subquery()), outbox.c.status == "pending")
        .values(
            lease_owner=bindparam("owner"),
            leased_until=bindparam("until", type_=outbox.c.leased_until.type),
            attempts=outbox.c.attempts + 1,
        )
        .returning(*outbox.c)
    )


# Built once: the worker runs it many times a second, and building it is most of its cost.
_LEASE = _lease_statement()


async def lease(
    conn: AsyncConnection, *, owner: str, now: datetime, lease_for: timedelta, limit: int
) -> list[OutboxItem]:
    """Take up to `limit` due rows for `owner`. Counts an attempt on each.

    On PostgreSQL, FOR UPDATE SKIP LOCKED lets replicas lease side by side
    without waiting on each other; on SQLite the write transaction is already
    exclusive.
    """
    params = {"now": now, "until": now + lease_for, "owner": owner, "limit": limit}
    rows = (await conn.execute(_LEASE, params)).all()
    return sorted((OutboxItem.from_row(r) for r in rows), key=lambda i: i.id)


_COMPLETE = (
    update(outbox)
    .where(
        outbox.c.id == bindparam("item_id"),
        outbox.c.lease_owner == bindparam("owner"),
        outbox.c.status == "pending",
    )
    .values(status="sent", sent_at=bindparam("now"), leased_until=None, last_error=bindparam("note"))
)


async def complete(conn: AsyncConnection, item_id: int, owner: str, now: datetime, note: str | None = None) -> bool:
    """Mark a row sent. `note`: what did not go out with it (a chart Slack refused), kept for operators."""
    result = await conn.execute(_COMPLETE, {"item_id": item_id, "owner": owner, "now": now, "note": note})
    return result.rowcount == 1


async def complete_many(conn: AsyncConnection, done: list[tuple[int, str | None]], owner: str, now: datetime) -> None:
    """Mark several rows sent in one statement (each with its note, as `complete`)."""
    if done:
        await conn.execute(_COMPLETE, [{"item_id": i, "owner": owner, "now": now, "note": n} for i, n in done])


async def retry_later(
    conn: AsyncConnection,
    item_id: int,
    owner: str,
    *,
    at: datetime,
    error: str | None,
    count_attempt: bool = True,
) -> bool:
    values: dict[str, Any] = {"next_attempt_at": at, "leased_until": None, "last_error": error}
    if not count_attempt:
        values["attempts"] = outbox.c.attempts - 1
    result = await conn.execute(
        update(outbox)
        .where(outbox.c.id == item_id, outbox.c.lease_owner == owner, outbox.c.status == "pending")
        .values(**values)
    )
    return result.rowcount == 1


async def recheck(conn: AsyncConnection, note: str) -> int:
    """Every pending row: its earlier attempt may have gone through (a database restored from a
    backup, say), so the next attempt looks before it sends. Returns how many."""
    result = await conn.execute(
        update(outbox).where(outbox.c.status == "pending").values(last_error=note, leased_until=None)
    )
    return int(result.rowcount or 0)


HANDED_BACK = "handed back by a replica that stopped mid-send; looked for before it is sent again"


async def hand_back(conn: AsyncConnection, owner: str) -> int:
    """Give up `owner`'s leases on rows it had not finished (a replica stopping): another replica takes
    them at once instead of after the lease. Their attempt may have gone through, so the note makes the
    next one look before it sends."""
    result = await conn.execute(
        update(outbox)
        .where(outbox.c.lease_owner == owner, outbox.c.status == "pending", outbox.c.leased_until.is_not(None))
        .values(leased_until=None, last_error=HANDED_BACK)
    )
    return int(result.rowcount or 0)


async def give_up(conn: AsyncConnection, item_id: int, owner: str, error: str) -> bool:
    result = await conn.execute(
        update(outbox)
        .where(outbox.c.id == item_id, outbox.c.lease_owner == owner, outbox.c.status == "pending")
        .values(status="dead", leased_until=None, last_error=error)
    )
    return result.rowcount == 1


async def give_up_dependants(conn: AsyncConnection, handoff_id: int, reason: str) -> int:
    """The card of this handoff will not be posted: what needed it dies with it, saying why, instead
    of waiting for ever. `outbox retry` of the card brings them back (see `requeue`)."""
    result = await conn.execute(
        update(outbox)
        .where(outbox.c.handoff_id == handoff_id, outbox.c.status == "pending", outbox.c.kind != "post_card")
        .values(status="dead", leased_until=None, last_error=f"{CARD_NEVER_POSTED}: {reason}"[:2000])
    )
    return result.rowcount or 0


async def card_failure(conn: AsyncConnection, handoff_id: int) -> str | None:
    """Why this handoff's card will not be posted (its post_card row is dead), or None."""
    return await conn.scalar(
        select(outbox.c.last_error).where(
            outbox.c.handoff_id == handoff_id, outbox.c.kind == "post_card", outbox.c.status == "dead"
        )
    )


def _wake_statement(which: Any) -> Any:
    """Make the rows matching `which` that were waiting (not failing) due now (bind :now)."""
    now = bindparam("now", type_=outbox.c.next_attempt_at.type)
    return (
        update(outbox)
        .where(
            which,
            outbox.c.status == "pending",
            outbox.c.next_attempt_at > now,
            outbox.c.last_error.like(WAITING + "%"),
        )
        .values(next_attempt_at=now)
    )


# Built once: every card posted wakes what waited for it.
_WAKE_WORKSPACE = _wake_statement(outbox.c.workspace_id == bindparam("key"))
_WAKE_WAITING = _wake_statement(outbox.c.handoff_id == bindparam("key"))


@dataclass(frozen=True)
class PostedCard:
    """A card that went out, to be recorded (see `record_cards_posted`)."""

    workspace_id: int
    handoff_id: int
    channel: str
    ref: str
    url: str | None
    similar: list[dict[str, Any]] | None
    moves: int | None


# PostgreSQL: record where each card went (once: `handoffs.set_card`), its `posted` event, and wake
# the rows that waited for it (`wake_waiting`), for many cards in one statement (the same statement
# however many), their values as text[] arrays (asyncpg knows that type without asking the server).
_CARDS_POSTED = text(
    f"""
    WITH g AS (
        SELECT * FROM unnest(CAST(:ids AS text[]), CAST(:wss AS text[]), CAST(:channels AS text[]),
                             CAST(:refs AS text[]), CAST(:urls AS text[]), CAST(:similars AS text[]),
                             CAST(:moves AS text[]), CAST(:datas AS text[]))
            WITH ORDINALITY AS g(id, ws, channel, ref, url, sim, moves, data, ord)
    ),
    card AS (
        UPDATE handoffs h
        SET card_channel = g.channel, card_ref = g.ref, card_url = g.url,
            "similar" = CASE WHEN g.sim IS NULL THEN h."similar" ELSE CAST(g.sim AS json) END
        FROM g
        WHERE h.id = CAST(g.id AS integer) AND h.workspace_id = CAST(g.ws AS integer) AND h.card_ref IS NULL
          AND (g.moves IS NULL OR h.moves = CAST(g.moves AS integer))
        RETURNING h.id, h.workspace_id, g.ord, g.data
    ),
    event AS (
        INSERT INTO handoff_events (handoff_id, workspace_id, kind, actor, at, data)
        SELECT card.id, card.workspace_id, 'posted', NULL, :now, CAST(card.data AS json) FROM card
    ),
    woken AS (
        UPDATE outbox SET next_attempt_at = :now
        WHERE outbox.handoff_id IN (SELECT id FROM card) AND outbox.status = 'pending'
          AND outbox.next_attempt_at > :now AND outbox.last_error LIKE '{WAITING}%'
    )
    SELECT ord FROM card
    """
).bindparams(bindparam("now", type_=outbox.c.next_attempt_at.type))


async def record_cards_posted(conn: AsyncConnection, cards: list[PostedCard], now: datetime) -> list[bool]:
    """PostgreSQL only: `handoffs.set_card`, the `posted` event and `wake_waiting` for each of
    `cards`, in one statement (the SQLite path does them in one transaction per card). True for each
    card whose place this recorded (its first post); not if the escalation moved since the card
    was drawn (`moves`), as `set_card`."""
    params = {
        "ids": [str(c.handoff_id) for c in cards],
        "wss": [str(c.workspace_id) for c in cards],
        "channels": [c.channel for c in cards],
        "refs": [c.ref for c in cards],
        "urls": [c.url for c in cards],
        "similars": [None if c.similar is None else json.dumps(c.similar) for c in cards],
        "moves": [None if c.moves is None else str(c.moves) for c in cards],
        "datas": [json.dumps({"channel": c.channel, "ref": c.ref}) for c in cards],
        "now": now,
    }
    recorded = {r.ord for r in await conn.execute(_CARDS_POSTED, params)}
    return [i + 1 in recorded for i in range(len(cards))]


async def wake_workspace(conn: AsyncConnection, workspace_id: int, now: datetime) -> int:
    """Make every row of a workspace that was waiting (for a channel to be set up) due now."""
    result = await conn.execute(_WAKE_WORKSPACE, {"key": workspace_id, "now": now})
    return result.rowcount or 0


async def wake_waiting(conn: AsyncConnection, handoff_id: int, now: datetime) -> int:
    """Make rows that were waiting on this handoff (for its card to be posted) due now."""
    result = await conn.execute(_WAKE_WAITING, {"key": handoff_id, "now": now})
    return result.rowcount or 0


async def coalesce_card_updates(conn: AsyncConnection, handoff_id: int, version: int, now: datetime) -> int:
    """Mark as sent the pending card updates that a render of `version` already covers."""
    result = await conn.execute(
        update(outbox)
        .where(
            outbox.c.handoff_id == handoff_id,
            outbox.c.kind == "update_card",
            outbox.c.status == "pending",
            outbox.c.handoff_version <= version,
            or_(outbox.c.leased_until.is_(None), outbox.c.leased_until < now),
        )
        .values(status="sent", sent_at=now, last_error="coalesced into a newer render")
    )
    return result.rowcount or 0


async def list_items(
    conn: AsyncConnection, *, status: str | None = None, limit: int = 100
) -> list[tuple[OutboxItem, str | None, int | None]]:
    """Newest first, each with its workspace's external id and its handoff's number."""
    stmt = (
        select(outbox, workspaces.c.external_id, handoffs.c.number)
        .join(workspaces, workspaces.c.id == outbox.c.workspace_id)
        .outerjoin(handoffs, handoffs.c.id == outbox.c.handoff_id)
        .order_by(outbox.c.id.desc())
        .limit(limit)
    )
    if status:
        stmt = stmt.where(outbox.c.status == status)
    rows = (await conn.execute(stmt)).all()
    return [(OutboxItem.from_row(r), r.external_id, r.number) for r in rows]


async def requeue(conn: AsyncConnection, ids: list[int], now: datetime) -> int:
    """Send dead (or stuck) rows again from a fresh count of attempts. Their last error stays, so the
    deliverer knows an earlier attempt may have gone out and looks before sending. A card brought
    back brings back what died with it ("card never posted"). Returns how many of `ids` were queued."""
    again = {"status": "pending", "attempts": 0, "next_attempt_at": now, "leased_until": None, "lease_owner": None}
    result = await conn.execute(update(outbox).where(outbox.c.id.in_(ids), outbox.c.status != "sent").values(again))
    cards = select(outbox.c.handoff_id).where(outbox.c.id.in_(ids), outbox.c.kind == "post_card").scalar_subquery()
    await conn.execute(
        update(outbox)
        .where(
            outbox.c.handoff_id.in_(cards),
            outbox.c.status == "dead",
            outbox.c.last_error.like(CARD_NEVER_POSTED + "%"),
        )
        .values(again)
    )
    return result.rowcount or 0


async def by_key(conn: AsyncConnection, dedupe_key: str) -> OutboxItem | None:
    row = (await conn.execute(select(outbox).where(outbox.c.dedupe_key == dedupe_key))).first()
    return OutboxItem.from_row(row) if row is not None else None


async def counts(conn: AsyncConnection) -> dict[str, int]:
    rows = (await conn.execute(select(outbox.c.status, func.count()).group_by(outbox.c.status))).all()
    return {r[0]: int(r[1]) for r in rows}
