"""Pieces the benchmarks share: child processes, signed storms, percentiles."""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import aiohttp
import asyncpg
from sqlalchemy.engine import make_url

from bot.sandbox.process import free_port, wait_until_answering

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-signing-secret"
TOKEN = "xoxb-bench-token"
TEAM = "T0BENCH"
CHANNEL = "C0ESCALATE"
SLACK_LIMIT = 3.0


PG = os.environ.get("BENCH_DATABASE_URL") or os.environ.get(
    "TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)


async def _pg_admin(statement: str) -> None:
    base = make_url(PG)
    conn = await asyncpg.connect(host=base.host, port=base.port or 5432, user=base.username, database=base.database)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def fresh_pg(prefix: str = "eb_bench") -> tuple[str, str]:
    """A new empty PostgreSQL database on the benchmark server: its URL and name."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    await _pg_admin(f'CREATE DATABASE "{name}"')
    return make_url(PG).set(database=name).render_as_string(hide_password=False), name


async def drop_pg(name: str) -> None:
    await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def percentile(values: Sequence[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms"


class Child:
    """A helper process (fake Slack, bare Bolt) on a port of its own."""

    def __init__(self, args: list[str], port: int, log: Path):
        self.port = port
        self._log = open(log, "ab")
        self.proc = subprocess.Popen([sys.executable, *args], stdout=self._log, stderr=subprocess.STDOUT, cwd=ROOT)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def wait(self, path: str, timeout: float = 30) -> None:
        await wait_until_answering(self.url + path, self.proc, f"{self.proc.args}", timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._log.close()


def start_fake_slack(log_dir: Path) -> Child:
    """The fake Slack, with the escalation channel (the bot in it). Its rate limits are raised a
    thousandfold: the benches measure the bot, and Slack would pace hundreds of cards a minute to
    one channel to about one a second."""
    port = free_port()
    return Child(
        [
            "-m",
            "bot.sandbox.fake_slack",
            "--port",
            str(port),
            "--token",
            TOKEN,
            "--team",
            TEAM,
            "--channel",
            CHANNEL,
            "--rate-scale",
            "1000",
        ],
        port,
        log_dir / "fake_slack.log",
    )


def slack_bot_env(database_url: str, fake: Child, log_level: str = "WARNING") -> dict[str, str]:
    """The environment of an `escalation-bot serve` that talks to the bench's fake Slack."""
    return {
        "DATABASE_URL": database_url,
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_BASE_URL": fake.url + "/api/",
        "SLACK_ESCALATION_CHANNEL": CHANNEL,
        "LOG_LEVEL": log_level,
    }


async def fake_state(session: aiohttp.ClientSession, fake: Child) -> dict:
    async with session.get(fake.url + "/_fake/state") as r:
        return await r.json()


async def storm(
    session: aiohttp.ClientSession, url: str, requests: list[tuple[bytes, dict[str, str]]]
) -> tuple[list[float], list[int], list[float]]:
    """Send all requests at once; return each one's time to a complete answer, the statuses, and
    when each was sent (time.monotonic(): the clock the fakes stamp arrivals with, system-wide)."""

    async def one(body: bytes, headers: dict[str, str]) -> tuple[float, int, float]:
        sent = time.monotonic()
        t0 = time.perf_counter()
        async with session.post(url, data=body, headers=headers) as resp:
            await resp.read()
            return time.perf_counter() - t0, resp.status, sent

    results = await asyncio.gather(*(one(b, h) for b, h in requests))
    return [r[0] for r in results], [r[1] for r in results], [r[2] for r in results]


def summary(values: list[float]) -> tuple[float, float, float]:
    return percentile(values, 50), percentile(values, 99), max(values) if values else float("nan")


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


TICK = os.sysconf("SC_CLK_TCK")


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = fields[3] + fields[4]
    return (sum(fields) - idle) / TICK, sum(fields) / TICK


def process_cpu(pids: Sequence[int]) -> float:
    """User + system CPU seconds used so far by these processes (those that still exist) and by their
    children that have ended: a PostgreSQL backend whose connection closed during a run is counted in
    the postmaster's, which reaps it (without this, a pool that opens and closes connections looked
    cheaper to PostgreSQL than one that keeps them)."""
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        total += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    return total / TICK


def postgres_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


class CpuMeter:
    """CPU seconds used by named groups of processes, and the machine, between start() and stop()."""

    def __init__(self, groups: dict[str, Sequence[int] | None]):
        # None means "PostgreSQL": its backends come and go, so they are listed at each reading.
        self.groups = groups
        self.used: dict[str, float] = {}

    def _read(self) -> dict[str, float]:
        pg = postgres_pids()
        values = {name: process_cpu(pg if pids is None else pids) for name, pids in self.groups.items()}
        values["bench (this process)"] = sum(os.times()[:2])
        busy, total = machine_cpu()
        values["machine busy"], values["machine total"] = busy, total
        return values

    def start(self) -> None:
        self._before = self._read()

    def stop(self) -> None:
        after = self._read()
        self.used = {k: after[k] - self._before[k] for k in after}

    def per_item_ms(self, count: int) -> dict[str, float]:
        return {k: v / count * 1000 for k, v in self.used.items() if not k.startswith("machine")}

    def report(self, count: int) -> str:
        total = self.used.pop("machine total")
        busy = self.used.pop("machine busy")
        parts = [f"{name} {secs / count * 1000:.1f}" for name, secs in self.used.items()]
        return (
            f"CPU ms per escalation: {', '.join(parts)}; machine busy {busy / total:.0%} of {os.cpu_count()} cores "
            f"({busy / count * 1000:.1f} ms per escalation in all)"
        )
