"""A year of history for the benches that must show a cost does not grow with it: escalations with
their events (bench/report_scale.py's generator) in 50 workspaces, the outbox rows they sent, and
what a running team has in motion at any moment (a few dozen open escalations, a few messages
pending or dead), on SQLite or PostgreSQL.

    await seed_history(url, 1_000_000)   # on a migrated, empty database
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from bench.report_scale import E_COLS, H_COLS, WORKSPACES, YEAR_START, _naive, generate, make_workspaces
from storage.db import Database

O_COLS = ["id", "workspace_id", "handoff_id", "handoff_version", "kind", "payload", "dedupe_key", "status",
          "attempts", "next_attempt_at", "created_at", "sent_at"]  # fmt: skip
NEXT_NUMBERS = (
    "UPDATE workspaces SET next_number = (SELECT max(number) FROM handoffs WHERE workspace_id = workspaces.id)"
)
IN_MOTION = 40  # escalations still open or claimed when the bench runs (the newest)
FACT_COLS = ["fact_first_claim_at", "fact_queue_claim_at", "fact_last_claim_at", "fact_acted_at",
             "fact_acted_claim_at", "fact_contested_at"]  # fmt: skip
HISTORY_COLS = [*H_COLS, "cancelled_at", *FACT_COLS]
STATUS, CLAIMED_BY, CLAIMED_AT, CREATED, UPDATED = (H_COLS.index(c) for c in
    ("status", "claimed_by", "claimed_at", "created_at", "updated_at"))  # fmt: skip


def _facts(events: list[tuple]) -> dict[int, tuple]:  # type: ignore[type-arg]
    """What migration 0013's triggers would have kept on each row, from its events (written with
    the triggers off: one UPDATE per event would make the seed many times slower)."""
    claims: dict[int, list[datetime]] = {}
    acted: dict[int, datetime] = {}
    contested: dict[int, datetime] = {}
    for _eid, hid, _ws, kind, _actor, at in events:
        if kind == "claimed":
            claims.setdefault(hid, []).append(at)
        elif kind == "first_action":
            acted[hid] = min(at, acted.get(hid, at))
        elif kind == "claim_conflict":
            contested[hid] = min(at, contested.get(hid, at))
    out = {}
    for hid in claims.keys() | acted.keys() | contested.keys():
        mine = sorted(claims.get(hid, []))
        action = acted.get(hid)
        led = max((c for c in mine if action is not None and c <= action), default=None)
        first = mine[0] if mine else None
        out[hid] = (first, first, mine[-1] if mine else None, action, led, contested.get(hid))
    return out


def _in_motion(rows: list[tuple], count: int, now: datetime) -> list[tuple]:  # type: ignore[type-arg]
    """What a running team has: the newest IN_MOTION escalations open since five minutes ago, every
    older one that the generator left open or claimed cancelled (a year-old open escalation is not
    what a team carries). Done here, before the rows are written: an UPDATE over a million rows is
    slower than the whole seed."""
    out = []
    for row in rows:
        r = list(row)
        cancelled = None
        if row[0] > count - IN_MOTION:
            r[STATUS], r[CLAIMED_BY], r[CLAIMED_AT] = "open", None, None
            r[CREATED] = r[UPDATED] = now - timedelta(minutes=5)
        elif row[STATUS] in ("open", "claimed"):
            r[STATUS] = "cancelled"
            cancelled = r[UPDATED]
        out.append((*r, cancelled))
    return out


# What the bot writes for a requester's "your escalation is in" note (handoff/intake.py); the worker
# sends the pending ones when a bot starts on the history.
CREATED_NOTE = '{"what": "created"}'


def _outbox(handoffs: list[tuple], first_id: int, count: int, now: datetime) -> list[tuple]:  # type: ignore[type-arg]
    """Each escalation's card and its requester's note, both sent a second after it was made; of the
    very last ones, three still pending and one dead."""
    rows = []
    oid = first_id * 2
    for h in handoffs:
        hid, ws, created = h[0], h[1], h[CREATED]
        for kind in ("post_card", "notify_requester"):
            oid += 1
            status, sent, next_at = "sent", created + timedelta(seconds=1), created
            if oid in (2 * count, 2 * count + 1, 2 * count + 2):
                status, sent, next_at = "pending", None, now
            elif oid == 2 * count - 1:
                status, sent = "dead", None
            card = kind == "post_card"
            payload, key = ("{}", f"post_card:{hid}") if card else (CREATED_NOTE, f"notify:{hid}:created")
            rows.append((oid, ws, hid, 1, kind, payload, key, status, 1, next_at, created, sent))
    return rows


def _chunks(count: int, now: datetime, shift: timedelta, workspaces: int):  # type: ignore[no-untyped-def]
    numbers: dict[int, int] = {}
    chunk = 100_000
    for start in range(1, count + 1, chunk):
        h, e = generate(start, min(chunk, count + 1 - start), numbers, seed=start, workspaces=workspaces)
        if shift:
            h, e = _shifted(h, shift), _shifted(e, shift)
        facts = _facts(e)
        h = [(*row, *facts.get(row[0], (None,) * 6)) for row in _in_motion(h, count, now)]
        h = [row if row[0] <= count - IN_MOTION else (*row[: -len(FACT_COLS)], *(None,) * 6) for row in h]
        yield h, e, _outbox(h, start, count, now)


def _shifted(rows: list[tuple], by: timedelta) -> list[tuple]:  # type: ignore[type-arg]
    return [tuple(v + by if isinstance(v, datetime) else v for v in row) for row in rows]


def _seed_sqlite(path: Path, count: int, now: datetime, shift: timedelta, workspaces: int) -> None:
    con = sqlite3.connect(path)
    con.execute("PRAGMA synchronous=OFF")
    # Migration 0013's triggers are off while the events go in: their facts come with the rows.
    triggers = con.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'handoff_facts%'")
    kept = triggers.fetchall()
    for name, _sql in kept:
        con.execute(f"DROP TRIGGER {name}")
    for h, e, o in _chunks(count, now, shift, workspaces):
        for table, cols, rows in (("handoffs", HISTORY_COLS, h), ("handoff_events", E_COLS, e), ("outbox", O_COLS, o)):
            con.executemany(
                f"INSERT INTO {table} ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})",
                [tuple(_naive(v) for v in row) for row in rows],
            )
        con.commit()
    for _name, sql in kept:
        con.execute(sql)
    con.execute(NEXT_NUMBERS)
    con.execute("ANALYZE")
    con.commit()
    con.close()


async def _seed_pg(url: str, count: int, now: datetime, shift: timedelta, workspaces: int) -> None:
    u = make_url(url)
    con = await asyncpg.connect(host=u.host, port=u.port or 5432, user=u.username, database=u.database)
    try:
        # Migration 0013's triggers are off for this session (a superuser's): the facts come with the rows.
        await con.execute("SET session_replication_role = replica")
        for h, e, o in _chunks(count, now, shift, workspaces):
            await con.copy_records_to_table("handoffs", records=h, columns=HISTORY_COLS)
            await con.copy_records_to_table("handoff_events", records=e, columns=E_COLS)
            await con.copy_records_to_table("outbox", records=o, columns=O_COLS)
        await con.execute(NEXT_NUMBERS)
        # Rows given their ids: the sequences go on after them (the bot's first new workspace took
        # id 1 and failed, so its first 50 escalations were never stored).
        for table in ("workspaces", "handoffs", "handoff_events", "outbox"):
            await con.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        # What autovacuum does to a year of rows long before anyone reads a report: without the
        # visibility map, PostgreSQL cannot answer from the covering indexes alone and reads a heap
        # page per row (the year's page took 360 ms instead of ~200).
        await con.execute("VACUUM (ANALYZE)")
        # ... and the gigabytes just written go to disk now, not in a checkpoint that stalls the
        # commits of whatever the bench measures next.
        await con.execute("CHECKPOINT")
    finally:
        await con.close()


async def seed_history(url: str, count: int, *, until: datetime | None = None, workspaces: int = WORKSPACES) -> float:
    """`count` escalations over a year on the migrated, empty database at `url` (the year from
    YEAR_START, or the one ending at `until`) in `workspaces` workspaces, all done but the newest
    IN_MOTION, and their sent outbox rows; a few rows pending and dead. Returns the seconds it took."""
    started = time.perf_counter()
    db = Database(url)
    try:
        await make_workspaces(db, workspaces)
    finally:
        await db.dispose()
    now = datetime.now(UTC)
    shift = until - (YEAR_START + timedelta(days=365)) if until is not None else timedelta(0)
    if make_url(url).get_backend_name() == "sqlite":
        await asyncio.to_thread(_seed_sqlite, Path(make_url(url).database or ""), count, now, shift, workspaces)
    else:
        await _seed_pg(url, count, now, shift, workspaces)
    return time.perf_counter() - started


__all__ = ["IN_MOTION", "WORKSPACES", "YEAR_START", "seed_history"]
