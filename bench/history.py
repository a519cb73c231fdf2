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
from sqlalchemy import and_, update
from sqlalchemy.engine import make_url

from bench.report_scale import E_COLS, H_COLS, WORKSPACES, YEAR_START, _naive, generate, make_workspaces
from storage.db import Database
from storage.tables import handoffs, outbox

O_COLS = ["id", "workspace_id", "handoff_id", "handoff_version", "kind", "payload", "dedupe_key", "status",
          "attempts", "next_attempt_at", "created_at", "sent_at"]  # fmt: skip
NEXT_NUMBERS = (
    "UPDATE workspaces SET next_number = (SELECT max(number) FROM handoffs WHERE workspace_id = workspaces.id)"
)
IN_MOTION = 40  # escalations still open or claimed when the bench runs (the newest)


def _outbox(handoffs: list[tuple], first_id: int) -> list[tuple]:  # type: ignore[type-arg]
    """Each escalation's card and its requester's note, both sent a second after it was made."""
    rows = []
    oid = first_id * 2
    for h in handoffs:
        hid, ws, created = h[0], h[1], h[20]
        for kind in ("post_card", "notify_requester"):
            oid += 1
            sent = created + timedelta(seconds=1)
            rows.append((oid, ws, hid, 1, kind, "{}", f"{kind}:{hid}", "sent", 1, created, created, sent))
    return rows


def _seed_sqlite(path: Path, count: int) -> None:
    con = sqlite3.connect(path)
    con.execute("PRAGMA synchronous=OFF")
    numbers: dict[int, int] = {}
    chunk = 100_000
    for start in range(1, count + 1, chunk):
        n = min(chunk, count + 1 - start)
        h, e = generate(start, n, numbers, seed=start)
        o = _outbox(h, start)
        for table, cols, rows in (("handoffs", H_COLS, h), ("handoff_events", E_COLS, e), ("outbox", O_COLS, o)):
            con.executemany(
                f"INSERT INTO {table} ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})",
                [tuple(_naive(v) for v in row) for row in rows],
            )
        con.commit()
    con.execute(
        "UPDATE workspaces SET next_number = (SELECT max(number) FROM handoffs WHERE workspace_id = workspaces.id)"
    )
    con.commit()
    con.close()


async def _seed_pg(url: str, count: int) -> None:
    u = make_url(url)
    con = await asyncpg.connect(host=u.host, port=u.port or 5432, user=u.username, database=u.database)
    numbers: dict[int, int] = {}
    chunk = 100_000
    try:
        for start in range(1, count + 1, chunk):
            n = min(chunk, count + 1 - start)
            h, e = generate(start, n, numbers, seed=start)
            await con.copy_records_to_table("handoffs", records=h, columns=H_COLS)
            await con.copy_records_to_table("handoff_events", records=e, columns=E_COLS)
            await con.copy_records_to_table("outbox", records=_outbox(h, start), columns=O_COLS)
        await con.execute(NEXT_NUMBERS)
        for table in ("handoffs", "handoff_events", "outbox"):
            await con.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
    finally:
        await con.close()


async def seed_history(url: str, count: int) -> float:
    """`count` escalations over a year on the migrated, empty database at `url`, all done but the
    newest IN_MOTION, and their sent outbox rows; a few rows pending and dead. Returns the seconds
    it took."""
    started = time.perf_counter()
    db = Database(url)
    try:
        await make_workspaces(db)
    finally:
        await db.dispose()
    if make_url(url).get_backend_name() == "sqlite":
        await asyncio.to_thread(_seed_sqlite, Path(make_url(url).database or ""), count)
    else:
        await _seed_pg(url, count)
    # What is in motion: the newest few open or claimed, the rest closed; some messages not yet out.
    now = datetime.now(UTC)
    db = Database(url)
    try:
        async with db.write() as conn:
            await conn.execute(
                update(handoffs)
                .where(and_(handoffs.c.status.in_(("open", "claimed")), handoffs.c.id <= count - IN_MOTION))
                .values(status="cancelled", cancelled_at=handoffs.c.created_at)
            )
            await conn.execute(
                update(handoffs)
                .where(handoffs.c.id > count - IN_MOTION)
                .values(status="open", created_at=now - timedelta(minutes=5), claimed_by=None, claimed_at=None)
            )
            await conn.execute(
                update(outbox)
                .where(outbox.c.id.in_([2 * count + 1, 2 * count + 2, 2 * count]))
                .values(status="pending", sent_at=None, next_attempt_at=now)
            )
            await conn.execute(update(outbox).where(outbox.c.id == 2 * count - 1).values(status="dead", sent_at=None))
        async with db.write() as conn:
            await conn.exec_driver_sql("ANALYZE")
    finally:
        await db.dispose()
    return time.perf_counter() - started


__all__ = ["IN_MOTION", "WORKSPACES", "YEAR_START", "seed_history"]
