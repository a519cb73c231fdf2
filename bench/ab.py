"""A/B: the bot's CPU per escalation at another revision and in this working tree, side by side.

On this 2-core machine one run of `bench/intake.py` moves by ±30% from run to run (its bare-Bolt
baseline too), which is larger than most single changes. This runs the same load against two
`escalation-bot serve` processes — one from a checkout of REV (a temporary git worktree, put first
on PYTHONPATH), one from the working tree — alternating which goes first, several rounds, and
prints each round and the medians. Use it to tell whether a change to the hot path helped.

    python bench/ab.py [--rev HEAD] [--db sqlite|pg] [--n 600] [--rounds 4]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, Child, drop_pg, fresh_pg, slack_bot_env, start_fake_slack
from bench.intake import throughput
from bot.sandbox.process import ServeProcess


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(code: Path | None, db: str, fake: Child, tmp: Path, n: int, tag: str) -> tuple[float, float]:
    """Bot CPU ms per escalation and escalations/s for `n` escalations, 64 in flight."""
    pg_name = None
    if db == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp / f'ab-{uuid.uuid4().hex[:6]}.db'}"
    else:
        url, pg_name = await fresh_pg("eb_ab")
    env = slack_bot_env(url, fake)
    if code is not None:
        env["PYTHONPATH"] = str(code)
    proc = ServeProcess(env, cwd=tmp, log_path=tmp / f"{tag}.log").start()
    try:
        await proc.wait_ready()
        assert proc.proc is not None
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
            await throughput([proc.url], fake, s, 100, f"W{tag}")  # warm-up
            before = cpu_seconds(proc.proc.pid)
            rate = await throughput([proc.url], fake, s, n, f"T{tag}")
            used = cpu_seconds(proc.proc.pid) - before
        return used * 1000 / n, rate
    finally:
        proc.stop()
        if pg_name:
            await drop_pg(pg_name)


async def run(rev: str, worktree: Path, db: str, n: int, rounds: int) -> int:
    tmp = worktree.parent
    fake = start_fake_slack(tmp)
    results: dict[str, list[float]] = {rev: [], "working tree": []}
    try:
        await fake.wait("/_fake/state")
        for r in range(rounds):
            order = [(rev, worktree), ("working tree", None)]
            for label, code in order if r % 2 == 0 else reversed(order):
                ms, rate = await measure(code, db, fake, tmp, n, f"{r}{uuid.uuid4().hex[:4]}")
                results[label].append(ms)
                print(f"round {r + 1}: {label:<14} {ms:6.2f} ms CPU per escalation, {rate:5.0f}/s", flush=True)
    finally:
        fake.stop()
    old, new = (statistics.median(results[k]) for k in (rev, "working tree"))
    print(f"{db}, {n} escalations x {rounds} rounds, medians: {rev} {old:.2f} ms, working tree {new:.2f} ms")
    print(
        f"working tree / {rev}: {new / old:.2f}x "
        f"(spread of each side: {spread(results[rev])}, {spread(results['working tree'])})"
    )
    return 0


def spread(values: list[float]) -> str:
    return f"{min(values):.1f}–{max(values):.1f} ms"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rev", default="HEAD", help="the revision to compare with (default HEAD)")
    parser.add_argument("--db", choices=("sqlite", "pg"), default="sqlite")
    parser.add_argument("--n", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=4)
    a = parser.parse_args()
    tree = Path(tempfile.mkdtemp(prefix="ab-")) / "rev"
    subprocess.run(["git", "worktree", "add", "--detach", "-q", str(tree), a.rev], cwd=ROOT, check=True)
    try:
        code = asyncio.run(run(a.rev, tree, a.db, a.n, a.rounds))
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False)
    sys.exit(code)
