"""Forgetting one person: their id and name leave every table of their workspaces, and what they
typed is erased. The escalations they asked for, claimed or resolved stay for the figures, with a
pseudonym where they were. Run once, it finds nothing the second time.

First what they typed is erased (their escalations' text, their resolution notes, their move notes,
their messages in thread transcripts); then what is only theirs goes (their name in the directory,
their Home tab, their chat with the bot, their place in seniors' and leads' lists); last, every
text and JSON column of every table is read for their id and their name, and each is replaced by
the pseudonym, wherever it is (a mention in someone else's text, an id inside a card's data).
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String, Table, Text, cast, delete, or_, select, update
from sqlalchemy import MetaData as _MetaData
from sqlalchemy.ext.asyncio import AsyncConnection

from storage import retention
from storage.tables import (
    conversation_refs,
    dashboard_links,
    dashboard_sessions,
    handoff_events,
    handoffs,
    home_viewers,
    metadata,
    outbox,
    people,
    queues,
    workspaces,
)

# JSON keys that name a person, and keys that hold what that person typed next to them.
PERSON_KEYS = ("by", "user", "actor", "resolved_by", "requester", "author_id", "released", "claimed_by")
TYPED = retention.TYPED_KEYS


def _replace(value: Any, find: list[tuple[str, str]]) -> Any:
    """`value` with every (old, new) substring replaced, inside JSON too."""
    if isinstance(value, str):
        for old, new in find:
            value = value.replace(old, new)
        return value
    if isinstance(value, dict):
        return {_replace(k, find): _replace(v, find) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace(v, find) for v in value]
    return value


def _their_typing_erased(value: Any, user_id: str) -> Any:
    """JSON where each object naming `user_id` as its person has its typed text emptied (a transcript
    message of theirs, a handover they wrote, a similar resolution they gave)."""
    if isinstance(value, list):
        return [_their_typing_erased(v, user_id) for v in value]
    if not isinstance(value, dict):
        return value
    theirs = any(value.get(k) == user_id for k in PERSON_KEYS)
    return {
        k: ("" if theirs and k in TYPED and isinstance(v, str) else _their_typing_erased(v, user_id))
        for k, v in value.items()
    }


async def _erase_their_typing(conn: AsyncConnection, ws: list[int], user_id: str, now: datetime) -> Counter[str]:
    done: Counter[str] = Counter()
    mine = (
        await conn.execute(
            select(handoffs.c.id).where(handoffs.c.workspace_id.in_(ws), handoffs.c.requester_id == user_id)
        )
    ).all()
    ids = [int(r[0]) for r in mine]
    if ids:
        await conn.execute(update(handoffs).where(handoffs.c.id.in_(ids)).values(erased_at=None))  # erase again
        done["escalations they asked for, text erased"] += await retention.erase_text(conn, ids, now)
        gone = await conn.execute(
            delete(outbox).where(
                outbox.c.handoff_id.in_(ids), outbox.c.status == "pending", outbox.c.kind == "notify_requester"
            )
        )
        done["messages still to send them, dropped"] += int(gone.rowcount or 0)
    result = await conn.execute(
        update(handoffs)
        .where(handoffs.c.workspace_id.in_(ws), handoffs.c.resolved_by == user_id, handoffs.c.resolution.is_not(None))
        .values(resolution="")
    )
    done["resolution notes they wrote, erased"] += int(result.rowcount or 0)
    for table, key, columns in (
        (handoffs, handoffs.c.id, (handoffs.c.handovers, handoffs.c.transcript, handoffs.c.source, handoffs.c.similar)),
        (handoff_events, handoff_events.c.id, (handoff_events.c.data,)),
        (outbox, outbox.c.id, (outbox.c.payload,)),
    ):
        for column in columns:
            rows = (
                await conn.execute(
                    select(key, column).where(
                        table.c.workspace_id.in_(ws), cast(column, Text).contains(user_id, autoescape=True)
                    )
                )
            ).all()
            for pk, value in rows:
                cleaned = _their_typing_erased(value, user_id)
                if cleaned != value:
                    await conn.execute(update(table).where(key == pk).values({column.name: cleaned}))
                    done[f"{table.name}.{column.name}: their words erased"] += 1
    return done


async def _remove_theirs(conn: AsyncConnection, ws: list[int], user_id: str) -> Counter[str]:
    done: Counter[str] = Counter()
    for table, cond in (
        (people, people.c.user_id == user_id),
        (home_viewers, home_viewers.c.user_id == user_id),
        (conversation_refs, conversation_refs.c.key == f"user:{user_id}"),
        (dashboard_links, dashboard_links.c.user_id == user_id),  # signed out of the leads' page
        (dashboard_sessions, dashboard_sessions.c.user_id == user_id),
    ):
        result = await conn.execute(delete(table).where(table.c.workspace_id.in_(ws), cond))
        if result.rowcount:
            done[f"{table.name} rows deleted"] += int(result.rowcount)
    # Out of the seniors' and leads' lists (a list without them, not a pseudonym in their place).
    for table, key, where in (
        (workspaces, workspaces.c.id, workspaces.c.id.in_(ws)),
        (queues, queues.c.id, queues.c.workspace_id.in_(ws)),
    ):
        for pk, settings in (await conn.execute(select(key, table.c.settings).where(where))).all():
            if not isinstance(settings, dict):
                continue
            trimmed = {k: ([x for x in v if x != user_id] if isinstance(v, list) else v) for k, v in settings.items()}
            if trimmed != settings:
                await conn.execute(update(table).where(key == pk).values(settings=trimmed))
                done[f"{table.name}: taken off seniors or leads"] += 1
    return done


def _text_columns(table: Table) -> list[Any]:
    return [c for c in table.columns if isinstance(c.type, String | Text | JSON) or c.type.__class__.__name__ == "JSON"]


async def _replace_everywhere(
    conn: AsyncConnection, ws: list[int], teams: list[str], found: list[str], find: list[tuple[str, str]]
) -> Counter[str]:
    """Every text and JSON column of every table, the bot's and slack_sdk's, in these workspaces:
    each occurrence of `found` replaced as `find` says."""
    done: Counter[str] = Counter()
    reflected = _MetaData()
    await conn.run_sync(lambda sync: reflected.reflect(sync, only=lambda name, _m: name.startswith("slack_")))
    for table in [*metadata.sorted_tables, *reflected.sorted_tables]:
        keys = list(table.primary_key.columns)
        columns = _text_columns(table)
        if not keys or not columns:
            continue
        if "workspace_id" in table.c:
            scope = table.c.workspace_id.in_(ws)
        elif table.name == "workspaces":
            scope = table.c.id.in_(ws)
        elif "team_id" in table.c:
            scope = table.c.team_id.in_(teams)
        else:
            scope = None  # tables of no workspace (processed event ids, the schema's own)
        matches = or_(*(cast(c, Text).contains(word, autoescape=True) for c in columns for word in found))
        stmt = select(*keys, *columns).where(matches if scope is None else scope & matches)
        for row in (await conn.execute(stmt)).all():
            pk = dict(zip((k.name for k in keys), row[: len(keys)], strict=True))
            changed = {}
            for column, value in zip(columns, row[len(keys) :], strict=True):
                new = _replace(value, find)
                if new != value:
                    changed[column.name] = new
            if changed:
                await conn.execute(update(table).where(*(table.c[k] == v for k, v in pk.items())).values(changed))
                done[f"{table.name}: id or name replaced"] += 1
    return done


async def names_of(conn: AsyncConnection, ws: list[int], user_id: str) -> set[str]:
    rows = (
        await conn.execute(select(people.c.name).where(people.c.workspace_id.in_(ws), people.c.user_id == user_id))
    ).all()
    return {str(r[0]) for r in rows if r[0]}


async def forget(
    conn: AsyncConnection, ws: list[int], teams: list[str], user_id: str, pseudonym: str, now: datetime
) -> Counter[str]:
    """Forget `user_id` in the workspaces `ws` (whose platform ids are `teams`). Returns what changed."""
    names = await names_of(conn, ws, user_id)
    done = await _erase_their_typing(conn, ws, user_id, now)
    done += await _remove_theirs(conn, ws, user_id)
    # Longest first, so a name inside another (Ana in "Ana Ivanova") does not split it.
    words = sorted({user_id, *names}, key=len, reverse=True)
    find = [(w, pseudonym) for w in words]
    done += await _replace_everywhere(conn, ws, teams, words, find)
    return done


SLACK_USER = re.compile(r"[UW][A-Z0-9]{2,30}")
