"""Soak: one `escalation-bot serve` for minutes at a steady rate, with Slack failing now and then.

Each escalation goes the whole way: submitted, its card posted, claimed, a thread reply from the
senior, one in five released and claimed again by someone else, then resolved (Resolve opens its
form, the form is submitted). The fake Slack (its own process) fails a share of the bot's Web API
calls: clean refusals (500, 429 with Retry-After) and the ambiguous kind (applied, then 500 or a
dropped connection), so the outbox's look-before-resending is exercised all the time.

Prints the bot's RSS after the warm-up and at the end (growth target <= 10%), the event loop's
lag (p99 from the bot's own /metrics histogram, after the warm-up), dead outbox rows (target 0),
and whether every card was posted exactly once.

    python bench/soak.py [--seconds 600] [--rate 20] [--fail 0.05] [--db sqlite|pg] [--warmup 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import CHANNEL, SECRET, TEAM, drop_pg, fresh_pg, percentile, slack_bot_env, start_fake_slack
from bot.sandbox.process import ServeProcess
from bot.sandbox.simulator import SlackSimulator
from bot.slack.ids import ResolveMeta
from bot.slack.modals import escalate_modal

FORM = {"severity": "P3", "tried": "Restarted it", "details": "", "customer": ""}
# The calls the bot makes on this path, and how they fail (as bot.sandbox.faults.Fail, by JSON).
CHAOS_METHODS = [
    "chat.postMessage",
    "chat.update",
    "chat.getPermalink",
    "conversations.open",
    "conversations.history",
    "conversations.replies",
    "views.open",
    "views.publish",
]
FAILURES = [
    {"status": 500},
    {"status": 429, "retry_after": 1},
    {"status": 500, "applied": True},
    {"applied": True, "reset": True},
]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def lag_buckets(metrics_text: str) -> dict[float, float]:
    """Cumulative counts of escalation_bot_event_loop_lag_seconds by upper bound."""
    out: dict[float, float] = {}
    for line in metrics_text.splitlines():
        if line.startswith("escalation_bot_event_loop_lag_seconds_bucket{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            out[float("inf") if le == "+Inf" else float(le)] = float(line.rsplit(" ", 1)[1])
    return out


def bucket_percentile(before: dict[float, float], after: dict[float, float], p: float) -> float:
    """The upper bound of the bucket holding the p-th percentile of what was observed in between."""
    counts = {le: after[le] - before.get(le, 0.0) for le in sorted(after)}
    total = counts[float("inf")]
    for le, n in counts.items():
        if total and n >= total * p / 100:
            return le
    return float("nan")


class Soak:
    def __init__(self, url: str, fake_url: str, session: aiohttp.ClientSession):
        self.sim = SlackSimulator(url, SECRET, team_id=TEAM, session=session, response_base=fake_url)
        self.fake_url, self.session = fake_url, session
        self.cards: dict[str, dict[str, Any]] = {}
        self.card_count: Counter[str] = Counter()
        self.replies: dict[str, list[str]] = defaultdict(list)
        self.arrived: dict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self._cursor = self._reply_cursor = 0
        self.done = 0
        self.problems: Counter[str] = Counter()
        self.submit_to_card: list[float] = []

    async def collect_forever(self) -> None:
        while True:
            try:
                await self.collect()
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)

    async def collect(self) -> None:
        query = f"/_fake/state?since={self._cursor}&replies_since={self._reply_cursor}"
        async with self.session.get(self.fake_url + query) as r:
            state = await r.json()
        self._cursor += len(state["messages"])
        self._reply_cursor += len(state["replies"])
        for m in state["messages"]:
            if m["channel"] != CHANNEL or m["thread_ts"]:
                continue
            for word in m["text"].replace(")", " ").split():
                if word.startswith("VSOAK"):
                    self.card_count[word] += 1
                    self.cards.setdefault(word, m)
                    self.arrived[word].set()
        for reply in state["replies"]:
            self.replies[reply["user"]].append(reply["text"])
            self.arrived["reply:" + reply["user"]].set()

    async def _reply(self, user: str, timeout: float = 60) -> str:
        await asyncio.wait_for(self.arrived["reply:" + user].wait(), timeout)
        self.arrived["reply:" + user].clear()
        return self.replies[user][-1]

    async def _ok(self, what: str, answer: Any) -> None:
        if answer.status != 200:
            self.problems[f"{what}: HTTP {answer.status}"] += 1

    async def one(self, n: int) -> None:
        vid = f"VSOAK{n:06d}"
        junior, senior, other = f"UJ{n:06d}", f"US{n:06d}", f"UO{n:06d}"
        view = escalate_modal().to_dict()
        view["id"] = vid
        sent = time.monotonic()
        for _ in range(20):
            answer = await self.sim.submit(junior, view, {**FORM, "summary": f"Soak problem {vid}"})
            if answer.status == 200 and "press the button again" not in answer.body:
                break
            self.problems["submit asked to press again"] += 1
            await asyncio.sleep(0.5)
        await asyncio.wait_for(self.arrived[vid].wait(), 120)
        self.submit_to_card.append(time.monotonic() - sent)
        card = self.cards[vid]

        class _M:  # what the simulator needs of a message
            channel, ts, text, blocks = card["channel"], card["ts"], card["text"], card["blocks"]

        value = next(
            el["value"]
            for b in card["blocks"]
            if b["type"] == "actions"
            for el in b["elements"]
            if el["action_id"] == "claim"
        )
        hid = json.loads(value)["h"]
        await self._ok("claim", await self.sim.click(senior, _M, "claim", value=value))
        if not (await self._reply(senior)).startswith("You claimed"):
            self.problems["claim not won"] += 1
            return
        thread_reply = {
            "type": "message",
            "channel": CHANNEL,
            "user": senior,
            "text": "Looking at it now",
            "ts": f"{time.time():.6f}",
            "thread_ts": card["ts"],
        }
        await self._ok("thread reply", await self.sim.event(thread_reply))
        holder = senior
        if n % 5 == 0:
            await self._ok("release", await self.sim.click(senior, _M, "release", value=value))
            await self._reply(senior)
            await self._ok("claim again", await self.sim.click(other, _M, "claim", value=value))
            if not (await self._reply(other)).startswith("You claimed"):
                self.problems["second claim not won"] += 1
                return
            holder = other
        await self._ok("resolve click", await self.sim.click(holder, _M, "resolve", value=value))
        form = {
            "type": "modal",
            "callback_id": "resolve_note",
            "private_metadata": ResolveMeta(h=hid, channel=CHANNEL).dump(),
            "blocks": [
                {"type": "input", "block_id": "note", "element": {"type": "plain_text_input", "action_id": "value"}}
            ],
        }
        answer = await self.sim.submit(holder, form, {"note": "Cleared the cache"})
        await self._ok("resolve", answer)
        if answer.body:
            self.problems["resolve refused"] += 1
        self.done += 1


async def dead_rows(url: str) -> tuple[int, int]:
    """(dead, still pending) outbox rows."""
    sql = (
        "SELECT sum(CASE WHEN status = 'dead' THEN 1 ELSE 0 END), "
        "sum(CASE WHEN status = 'pending' THEN 1 ELSE 0 END) FROM outbox"
    )
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        with sqlite3.connect(u.database or "") as conn:
            dead, pending = conn.execute(sql).fetchone()
    else:
        conn = await asyncpg.connect(host=u.host, port=u.port or 5432, user=u.username, database=u.database)
        try:
            dead, pending = await conn.fetchrow(sql)
        finally:
            await conn.close()
    return int(dead or 0), int(pending or 0)


async def run(seconds: float, rate: float, fail: float, db: str, warmup: float) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="soak-"))
    fake = start_fake_slack(tmp)
    await fake.wait("/_fake/state")
    pg_name = None
    if db == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp / f'soak-{uuid.uuid4().hex[:6]}.db'}"
    else:
        url, pg_name = await fresh_pg("eb_soak")
    bot = ServeProcess(slack_bot_env(url, fake, "ERROR"), cwd=tmp, log_path=tmp / "serve.log").start()
    try:
        await bot.wait_ready()
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:
            async with session.post(
                fake.url + "/_fake/chaos", json={"rate": fail, "methods": CHAOS_METHODS, "failures": FAILURES}
            ) as r:
                assert r.status == 200
            soak = Soak(bot.url, fake.url, session)
            collector = asyncio.create_task(soak.collect_forever())
            tasks: list[asyncio.Task[None]] = []
            t0 = time.monotonic()
            total = int(rate * seconds)
            rss_start = lag_start = None
            next_report = t0 + 60
            for i in range(total):
                await asyncio.sleep(max(0.0, t0 + i / rate - time.monotonic()))
                tasks.append(asyncio.create_task(soak.one(i)))
                now = time.monotonic()
                if rss_start is None and now - t0 >= warmup:
                    rss_start = rss_mb(bot.proc.pid)
                    async with session.get(bot.url + "/metrics") as r:
                        lag_start = lag_buckets(await r.text())
                if now >= next_report:
                    next_report += 60
                    print(
                        f"  {now - t0:4.0f} s: {i + 1} submitted, {soak.done} resolved, "
                        f"RSS {rss_mb(bot.proc.pid):.0f} MB",
                        file=sys.stderr,
                        flush=True,
                    )
            results = await asyncio.gather(*tasks, return_exceptions=True)
            failures = Counter(type(r).__name__ for r in results if isinstance(r, BaseException))
            # Let the outbox finish what the failures pushed back (retries wait out their backoff).
            async with session.post(fake.url + "/_fake/calm") as r:
                assert r.status == 200
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                dead, pending = await dead_rows(url)
                if not pending:
                    break
                await asyncio.sleep(1)
            await soak.collect()
            collector.cancel()
            rss_end = rss_mb(bot.proc.pid)
            async with session.get(bot.url + "/metrics") as r:
                lag_end = lag_buckets(await r.text())
            async with session.get(fake.url + "/_fake/state?since=999999999&replies_since=999999999&calls=1") as r:
                calls = (await r.json())["calls"]
        dead, pending = await dead_rows(url)
    finally:
        bot.stop()
        fake.stop()
        if pg_name:
            await drop_pg(pg_name)

    failed_calls = sum(c["failed"] for c in calls.values())
    all_calls = sum(c["ok"] + c["failed"] for c in calls.values())
    twice = sum(1 for c in soak.card_count.values() if c > 1)
    missing = total - len(soak.card_count)
    rss_start = rss_start if rss_start is not None else float("nan")
    growth = (rss_end - rss_start) / rss_start
    lag99 = bucket_percentile(lag_start or {}, lag_end, 99)
    lag50 = bucket_percentile(lag_start or {}, lag_end, 50)
    print(
        f"soak: {seconds:.0f} s at {rate:.0f} escalations/s on {db}; {fail:.0%} of Slack calls failing "
        f"({failed_calls} of {all_calls} calls failed)"
    )
    print(f"escalations: {total} submitted, {soak.done} claimed, replied to and resolved; task errors {dict(failures)}")
    print(f"problems people would have seen: {dict(soak.problems) or 'none'}")
    print(
        f"submission -> card: p50 {percentile(soak.submit_to_card, 50) * 1000:.0f} ms, "
        f"p99 {percentile(soak.submit_to_card, 99) * 1000:.0f} ms"
    )
    print(
        f"RSS after {warmup:.0f} s warm-up {rss_start:.1f} MB, at the end {rss_end:.1f} MB: growth {growth:+.1%} "
        f"({'MET' if growth <= 0.10 else 'NOT MET'}: <= 10%)"
    )
    print(
        f"event loop lag after warm-up (bucket upper bounds): p50 <= {lag50 * 1000:.1f} ms, "
        f"p99 <= {lag99 * 1000:.1f} ms"
    )
    print(f"outbox: {dead} dead rows ({'MET' if dead == 0 else 'NOT MET'}: 0), {pending} still pending")
    exact = twice == 0 and missing == 0
    print(
        f"cards: {len(soak.card_count)} of {total} posted, {twice} posted more than once, {missing} missing "
        f"({'MET' if exact else 'NOT MET'}: each exactly once)"
    )
    return 0 if exact and dead == 0 and not failures else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--rate", type=float, default=20)
    parser.add_argument("--fail", type=float, default=0.05)
    parser.add_argument("--db", choices=["sqlite", "pg"], default="sqlite")
    parser.add_argument("--warmup", type=float, default=60)
    a = parser.parse_args()
    sys.exit(asyncio.run(run(a.seconds, a.rate, a.fail, a.db, a.warmup)))
