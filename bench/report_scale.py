"""Report at scale: how long the weekly report takes with a year of history.

Seeds 100,000 and then 1,000,000 escalations (with their events: created, posted, claimed,
lost claims, first actions, resolves) spread over a year in 50 workspaces, on SQLite and on
PostgreSQL, then times one workspace-week report and the all-workspaces weekly run, and
prints how the times grow from 100k to 1M, with the query plan of the main query.

    python bench/report_scale.py [--small 100000] [--large 1000000] [--only sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import asyncpg
from sqlalchemy import select
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import drop_pg, fresh_pg
from handoff.report import build_report
from handoff.schedule import week_bounds
from storage import migrate
from storage.db import Database
from storage.reports import RAW
from storage.tables import handoffs

WORKSPACES = 50
YEAR_START = datetime(2025, 11, 24, tzinfo=UTC)  # a Monday
WEEK = date(2026, 6, 15)  # a Monday in the middle of the year
H_COLS = [
    "id", "workspace_id", "number", "status", "severity", "summary", "details", "tried", "customer",
    "requester_id", "claimed_by", "claimed_at", "first_action_at", "resolved_by", "resolution", "resolved_at",
    "version", "card_channel", "card_ref", "idempotency_key", "created_at", "updated_at",
]  # fmt: skip
E_COLS = ["id", "handoff_id", "workspace_id", "kind", "actor", "at"]
CUSTOMERS = [f"Customer {i}" for i in range(40)] + [""] * 10


def generate(first_id: int, count: int, numbers: dict[int, int], seed: int, workspaces: int = WORKSPACES):  # type: ignore[no-untyped-def]
    """Rows for `count` escalations starting at id `first_id` in the first `workspaces`, and their events."""
    rng = random.Random(seed)
    span = 365 * 24 * 3600
    handoffs, events = [], []
    eid = first_id * 8
    for hid in range(first_id, first_id + count):
        ws = rng.randrange(1, workspaces + 1)
        numbers[ws] = numbers.get(ws, 0) + 1
        created = YEAR_START + timedelta(seconds=rng.randrange(span))
        claimed = resolved = first = None
        claimer = f"USEN{rng.randrange(12):02d}"
        ev = [("created", "UJUN", created), ("posted", None, created + timedelta(seconds=1))]
        if rng.random() < 0.9:
            claimed = created + timedelta(seconds=rng.randrange(30, 3600))
            ev.append(("claimed", claimer, claimed))
            if rng.random() < 0.2:
                ev.append(("claim_conflict", "USEN99", claimed + timedelta(seconds=2)))
            if rng.random() < 0.75:
                first = claimed + timedelta(seconds=rng.randrange(20, 2400))
                ev.append(("first_action", claimer, first))
                if rng.random() < 0.8:
                    resolved = first + timedelta(seconds=rng.randrange(60, 7200))
                    ev.append(("resolved", claimer, resolved))
        status = "resolved" if resolved else "claimed" if claimed else "open"
        handoffs.append(
            (
                hid, ws, numbers[ws], status, f"P{rng.randrange(1, 5)}",
                "Something broke", "", "Restarted it", rng.choice(CUSTOMERS), "UJUN",
                claimer if claimed else None, claimed, first, claimer if resolved else None,
                "Fixed" if resolved else None, resolved, 1, "C1", f"{created.timestamp():.6f}", f"k{hid}", created,
                resolved or first or claimed or created,
            )
        )  # fmt: skip
        for kind, actor, at in ev:
            eid += 1
            events.append((eid, hid, ws, kind, actor, at))
    return handoffs, events


def _naive(v):  # type: ignore[no-untyped-def]
    # The text SQLAlchemy's SQLite DateTime stores: always with microseconds.
    return v.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(v, datetime) else v


def seed_sqlite(path: Path, first_id: int, count: int, numbers: dict[int, int]) -> None:
    con = sqlite3.connect(path)
    con.execute("PRAGMA synchronous=OFF")
    chunk = 100_000
    for start in range(first_id, first_id + count, chunk):
        n = min(chunk, first_id + count - start)
        h, e = generate(start, n, numbers, seed=start)
        con.executemany(
            f"INSERT INTO handoffs ({','.join(H_COLS)}) VALUES ({','.join('?' * len(H_COLS))})",
            [tuple(_naive(v) for v in row) for row in h],
        )
        con.executemany(
            f"INSERT INTO handoff_events ({','.join(E_COLS)}) VALUES ({','.join('?' * len(E_COLS))})",
            [tuple(_naive(v) for v in row) for row in e],
        )
        con.commit()
    con.execute("ANALYZE")
    con.commit()
    con.close()


async def seed_pg(url: str, first_id: int, count: int, numbers: dict[int, int]) -> None:
    u = make_url(url)
    con = await asyncpg.connect(host=u.host, port=u.port or 5432, user=u.username, database=u.database)
    chunk = 100_000
    for start in range(first_id, first_id + count, chunk):
        n = min(chunk, first_id + count - start)
        h, e = generate(start, n, numbers, seed=start)
        await con.copy_records_to_table("handoffs", records=h, columns=H_COLS)
        await con.copy_records_to_table("handoff_events", records=e, columns=E_COLS)
    await con.execute("ANALYZE")
    await con.close()


async def make_workspaces(db: Database, count: int = WORKSPACES) -> None:
    from storage.tables import workspaces

    async with db.write() as conn:
        await conn.execute(
            workspaces.insert(),
            [
                {"id": i, "platform": "slack", "external_id": f"T{i:04d}", "created_at": YEAR_START, "next_number": 0}
                for i in range(1, count + 1)
            ],
        )


async def time_reports(db: Database) -> tuple[float, float]:
    one = []
    for _ in range(7):
        t0 = time.perf_counter()
        await build_report(db, 7, WEEK, timezone="Europe/Berlin", baseline_minutes=30)
        one.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    for ws in range(1, WORKSPACES + 1):
        await build_report(db, ws, WEEK, timezone="Europe/Berlin", baseline_minutes=30)
    return statistics.median(one[1:]), time.perf_counter() - t0


async def explain(db: Database) -> str:
    """The plan of the report's one read: the escalations opened in the week and the weeks before."""
    from zoneinfo import ZoneInfo

    start, end = week_bounds(WEEK, ZoneInfo("Europe/Berlin"))
    stmt = select(*RAW).where(handoffs.c.workspace_id == 7, handoffs.c.created_at >= start, handoffs.c.created_at < end)
    async with db.read() as conn:
        sql = str(stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
        prefix = "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF)" if db.is_postgres else "EXPLAIN QUERY PLAN"
        rows = (await conn.exec_driver_sql(f"{prefix} {sql}")).all()
    if db.is_postgres:
        return "\n".join(r[0] for r in rows)
    return "\n".join(f"{'  ' * (r[1] > 0)}{r[-1]}" for r in rows)


async def run_backend(kind: str, small: int, large: int, tmp: Path) -> list[tuple[str, int, float, float, float]]:
    results = []
    numbers: dict[int, int] = {}
    if kind == "sqlite":
        path = tmp / "scale.db"
        url = f"sqlite+aiosqlite:///{path}"
        name = None
    else:
        url, name = await fresh_pg("eb_scale")
    db = Database(url)
    try:
        await migrate.upgrade(db)
        await make_workspaces(db)
        seeded = 0
        plan = ""
        for target in (small, large):
            t0 = time.perf_counter()
            if kind == "sqlite":
                await asyncio.to_thread(seed_sqlite, path, seeded + 1, target - seeded, numbers)
            else:
                await seed_pg(url, seeded + 1, target - seeded, numbers)
            seed_s = time.perf_counter() - t0
            seeded = target
            await db.dispose()  # fresh connections see the new statistics
            one, everyone = await time_reports(db)
            results.append((kind, target, seed_s, one, everyone))
            print(
                f"  {kind} {target:>9,}: seeded in {seed_s:.0f} s; one report {one * 1000:.1f} ms; "
                f"all {WORKSPACES} {everyone:.2f} s",
                file=sys.stderr,
                flush=True,
            )
            plan = await explain(db)
        print(f"\nquery plan of the main report query on {kind} at {large:,} escalations:\n{plan}\n")
    finally:
        await db.dispose()
        if name:
            await drop_pg(name)
    return results


async def main(small: int, large: int, only: str | None) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="report-scale-"))
    rows = []
    for kind in ("sqlite", "postgresql"):
        if only and kind != only:
            continue
        rows += await run_backend(kind, small, large, tmp)
    print(f"weekly report for one workspace-week (week of {WEEK}, Europe/Berlin), {WORKSPACES} workspaces, a year")
    print(f"{'database':<11} {'escalations':>11} {'seed':>7} {'one report':>11} {'all 50':>9}")
    for kind, n, seed_s, one, everyone in rows:
        print(f"{kind:<11} {n:>11,} {seed_s:6.0f}s {one * 1000:8.1f} ms {everyone:8.2f}s")
    for kind in ("sqlite", "postgresql"):
        mine = [r for r in rows if r[0] == kind]
        if len(mine) == 2:
            (_, a, _, one_a, all_a), (_, b, _, one_b, all_b) = mine
            print(
                f"{kind}: {b / a:.0f}x the rows -> one report {one_b / one_a:.2f}x, "
                f"all workspaces {all_b / all_a:.2f}x;"
                f" one report at {b:,}: {one_b * 1000:.1f} ms ({'MET' if one_b < 0.2 else 'NOT MET'} < 200 ms)"
            )
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--small", type=int, default=100_000)
    p.add_argument("--large", type=int, default=1_000_000)
    p.add_argument("--only", choices=["sqlite", "postgresql"])
    a = p.parse_args()
    sys.exit(asyncio.run(main(a.small, a.large, a.only)))
