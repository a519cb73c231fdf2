"""The cost of a Prometheus scrape: `GET /metrics` with an empty database, then with a year of
history (1,000,000 escalations, their events and 2,000,000 sent outbox rows), on SQLite and
PostgreSQL. Each scrape is made to read the database (as one does every 5 s); scrapes answered from
the kept reading are timed too. Target: p99 <= 20 ms with the history.

    python bench/scrape.py [--escalations 1000000] [--scrapes 200] [--only sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import drop_pg, fresh_pg, percentile
from bench.history import seed_history
from bot.config import Settings
from bot.sandbox.watch import serve_on_loopback
from bot.server import RUNTIME, make_web_app
from storage import migrate
from storage.db import Database

TARGET_MS = 20.0


async def time_scrapes(url: str, scrapes: int) -> tuple[list[float], list[float], int]:
    """(scrapes that read the database, scrapes from the kept reading) in seconds, and the body size."""
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=url,
        slack_bot_token="xoxb-bench",
        slack_signing_secret="bench",
        slack_escalation_channel="C0BENCH",
        slack_api_base_url="http://127.0.0.1:9/api/",  # never called: no worker, no scheduler
        log_level="WARNING",
    )
    app = make_web_app(settings, run_worker=False, run_scheduler=False, connect_socket=False)
    runner, port = await serve_on_loopback(app)
    reading, kept = [], []
    size = 0
    try:
        async with aiohttp.ClientSession() as session:
            for i in range(scrapes + 10):
                app[RUNTIME].metrics._readings.clear()  # as the first scrape after the 5 s are up
                t0 = time.perf_counter()
                async with session.get(f"http://127.0.0.1:{port}/metrics") as r:
                    body = await r.read()
                took = time.perf_counter() - t0
                if i >= 10:  # the first few warm the connections up
                    reading.append(took)
                t0 = time.perf_counter()
                async with session.get(f"http://127.0.0.1:{port}/metrics") as r:
                    await r.read()
                if i >= 10:
                    kept.append(time.perf_counter() - t0)
                size = len(body)
    finally:
        await runner.cleanup()
    return reading, kept, size


async def run(kind: str, escalations: int, scrapes: int, tmp: Path) -> list[tuple[str, int, float, float, float, int]]:
    if kind == "sqlite":
        url, name = f"sqlite+aiosqlite:///{tmp / 'scrape.db'}", None
    else:
        url, name = await fresh_pg("eb_scrape")
    rows = []
    try:
        db = Database(url)
        await migrate.upgrade(db)
        await db.dispose()
        reading, kept, size = await time_scrapes(url, scrapes)
        rows.append((kind, 0, percentile(reading, 50), percentile(reading, 99), percentile(kept, 99), size))
        seeded = await seed_history(url, escalations)
        print(f"  {kind}: seeded {escalations:,} escalations in {seeded:.0f} s", file=sys.stderr, flush=True)
        reading, kept, size = await time_scrapes(url, scrapes)
        rows.append((kind, escalations, percentile(reading, 50), percentile(reading, 99), percentile(kept, 99), size))
    finally:
        if name:
            await drop_pg(name)
    return rows


async def main(escalations: int, scrapes: int, only: str | None) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="scrape-"))
    rows = []
    for kind in ("sqlite", "postgresql"):
        if not only or kind == only:
            rows += await run(kind, escalations, scrapes, tmp)
    print(f"GET /metrics, {scrapes} scrapes each; 'reading' scrapes read the database, 'kept' ones do not")
    print(f"{'database':<11} {'history':>10} {'reading p50':>12} {'p99':>8} {'kept p99':>9} {'body':>8}")
    met = True
    for kind, n, p50, p99, kept99, size in rows:
        print(f"{kind:<11} {n:>10,} {p50 * 1000:9.2f} ms {p99 * 1000:5.2f} ms {kept99 * 1000:6.2f} ms {size:>7,}B")
    for kind in ("sqlite", "postgresql"):
        mine = [r for r in rows if r[0] == kind]
        if len(mine) == 2:
            empty, full = mine
            ok = full[3] * 1000 <= TARGET_MS
            met = met and ok
            print(
                f"target: {kind}, {full[1]:,} escalations: scrape p99 {full[3] * 1000:.1f} ms "
                f"({full[3] / empty[3]:.2f}x an empty database) <= {TARGET_MS:.0f} ms: {'MET' if ok else 'NOT MET'}"
            )
    return 0 if met else 1


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--escalations", type=int, default=1_000_000)
    p.add_argument("--scrapes", type=int, default=200)
    p.add_argument("--only", choices=["sqlite", "postgresql"])
    a = p.parse_args()
    sys.exit(asyncio.run(main(a.escalations, a.scrapes, a.only)))
