"""Several `escalation-bot serve` processes on one PostgreSQL database, under faults.

Real processes, real PostgreSQL, signed requests over HTTP; only Slack is the fake,
failing on demand.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from bot.sandbox.fake_slack import Fail, FakeSlack, Message
from bot.sandbox.process import ServeProcess
from bot.sandbox.simulator import SlackSimulator, button_value
from bot.slack.modals import escalate_modal
from tests.conftest import ESC_CHANNEL, PG_URL, SECRET, TEAM, TOKEN, _drop_pg_database, _fresh_pg_database
from tests.helpers import FORM, card_text

pytestmark = pytest.mark.skipif(not PG_URL, reason="TEST_DATABASE_URL not set: replica tests need PostgreSQL")

CHAOS = [Fail(status=429, retry_after=1), Fail(status=500), Fail(stall=5.0)]
CHAOS_METHODS = ("chat.postMessage", "chat.update", "chat.getPermalink", "conversations.history", "conversations.open")


@dataclass
class Cluster:
    db_url: str
    fake: FakeSlack
    replicas: list[ServeProcess]
    sims: list[SlackSimulator]
    session: aiohttp.ClientSession

    def sim(self, i: int) -> SlackSimulator:
        alive = [s for s, r in zip(self.sims, self.replicas, strict=True) if r.proc and r.proc.poll() is None]
        return alive[i % len(alive)]


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    url, name = await _fresh_pg_database()
    try:
        yield url
    finally:
        await _drop_pg_database(name)


async def start_cluster(pg_url: str, fake: FakeSlack, tmp_path: Path, n: int = 3) -> Cluster:
    env = {
        "DATABASE_URL": pg_url,
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_BASE_URL": fake.base_url,
        "SLACK_ESCALATION_CHANNEL": ESC_CHANNEL,
        "OUTBOX_LEASE_SECONDS": "10",
        "OUTBOX_POLL_SECONDS": "0.5",
        "SLACK_API_TIMEOUT_SECONDS": "8",
        "LOG_LEVEL": "WARNING",
    }
    replicas = [ServeProcess(env, cwd=tmp_path, log_path=tmp_path / f"replica{i}.log").start() for i in range(n)]
    await asyncio.gather(*(r.wait_ready() for r in replicas))
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=60))
    sims = [SlackSimulator(r.url, SECRET, fake=fake, team_id=TEAM, session=session) for r in replicas]
    return Cluster(pg_url, fake, replicas, sims, session)


@pytest.fixture
async def cluster(pg_url: str, fake_slack: FakeSlack, tmp_path: Path) -> AsyncIterator[Cluster]:
    c = await start_cluster(pg_url, fake_slack, tmp_path)
    try:
        yield c
    finally:
        await c.session.close()
        for r in c.replicas:
            r.stop()


def new_view(n: int) -> dict:
    view = escalate_modal().to_dict()
    view["id"] = f"VREPLICA{n:05d}"
    return view


async def submit_with_failover(c: Cluster, n: int, user: str) -> None:
    """Submit escalation n as a load balancer would: to a replica, and to the next if that one is gone."""
    for attempt in range(20):
        try:
            answer = await c.sim(n + attempt).submit(user, new_view(n), {**FORM, "summary": f"Problem {n}"})
        except aiohttp.ClientError:
            await asyncio.sleep(0.2)
            continue
        if answer.status == 200 and "press the button again" in answer.body:
            await asyncio.sleep(0.5)  # overloaded: the person presses Submit again, as the form asks
            continue
        if answer.status == 404 and "unhandled request" in answer.body:
            # No ack inside Slack's 3 s (Bolt gave up waiting on a starved event loop): Slack shows the
            # person an error on the form and they press Submit again. The view id makes that safe.
            await asyncio.sleep(0.5)
            continue
        assert answer.status == 200 and not answer.body, answer.body
        return
    raise AssertionError(f"escalation {n} could not be submitted")


def cards(fake: FakeSlack) -> list[Message]:
    return fake.channel_messages(ESC_CHANNEL)


async def test_claim_storm_across_three_replicas_one_winner_per_card(cluster: Cluster) -> None:
    c, fake = cluster, cluster.fake
    n_cards, clickers = 100, 10
    await asyncio.gather(*(submit_with_failover(c, i, f"U0REQ{i:03d}") for i in range(n_cards)))
    await fake.wait_for(lambda: len(cards(fake)) >= n_cards, timeout=60)
    by_number = {int(re.search(r"ESC-(\d+)", m.text).group(1)): m for m in cards(fake)}  # type: ignore[union-attr]
    assert len(by_number) == n_cards

    clicks = []
    for number, card in by_number.items():
        value = button_value(card, "claim")
        for j in range(clickers):
            user = f"U{number:03d}SENIOR{j}"
            clicks.append(c.sims[(number + j) % 3].click(user, card, "claim", value=value))
    answers = await asyncio.gather(*clicks)
    assert Counter(a.status for a in answers) == {200: n_cards * clickers}
    await fake.wait_for(lambda: len(fake.replies) >= n_cards * clickers, timeout=60)

    for number in by_number:
        replies = [r for r in fake.replies if r.user.startswith(f"U{number:03d}SENIOR")]
        assert len(replies) == clickers
        winners = [r.user for r in replies if r.text.startswith(f"You claimed ESC-{number}")]
        assert len(winners) == 1, (number, [r.text for r in replies])
        for r in replies:
            if r.user != winners[0]:
                assert r.text.startswith(f"Already claimed by <@{winners[0]}>"), r.text
    await fake.wait_for(lambda: all("Claimed by" in card_text(m) for m in by_number.values()), timeout=60)
    for number, card in by_number.items():
        shown = re.findall(r"Claimed by <@(U\w+)>", card_text(card))
        assert len(set(shown)) == 1 and shown[0].startswith(f"U{number:03d}SENIOR")


async def wait_delivered(fake: FakeSlack, n: int, timeout: float) -> None:
    """Every card posted and every requester told (or the timeout), then a pause for any doubles."""

    def done() -> bool:
        return len(cards(fake)) >= n and sum(1 for m in fake.messages if m.to_user) >= n

    await fake.wait_for(done, timeout=timeout)
    await asyncio.sleep(2.0)


def assert_each_once(fake: FakeSlack, n: int) -> None:
    problems = Counter(int(re.search(r"Problem (\d+)", m.text).group(1)) for m in cards(fake))  # type: ignore[union-attr]
    assert sorted(problems) == list(range(n)), "every escalation has a card"
    assert {k: v for k, v in problems.items() if v > 1} == {}, "no card posted twice"
    numbers = Counter(re.search(r"ESC-\d+", m.text).group(0) for m in cards(fake))  # type: ignore[union-attr]
    assert len(numbers) == n, "every escalation has a number of its own"
    told = Counter(m.to_user for m in fake.messages if m.to_user)
    assert len(told) == n and set(told.values()) == {1}, "every requester told exactly once"


async def test_burst_of_500_while_slack_fails_30_percent(cluster: Cluster) -> None:
    c, fake = cluster, cluster.fake
    fake.chaos(0.3, CHAOS_METHODS, CHAOS)
    n = 500
    await asyncio.gather(*(submit_with_failover(c, i, f"U0REQ{i:04d}") for i in range(n)))
    await wait_delivered(fake, n, timeout=180)
    assert_each_once(fake, n)
    failed = Counter(call.status for call in fake.calls if not call.ok)
    assert failed[429] > 20 and failed[500] > 20  # the faults really happened


async def test_a_replica_killed_mid_burst_loses_and_doubles_nothing(cluster: Cluster) -> None:
    c, fake = cluster, cluster.fake
    fake.chaos(0.3, CHAOS_METHODS, CHAOS)
    n = 500
    first = asyncio.gather(*(submit_with_failover(c, i, f"U0REQ{i:04d}") for i in range(n // 2)))
    await first
    # Let replica 0 lease some work (some of it stalled at Slack), then kill it without warning.
    await fake.wait_for(lambda: len(cards(fake)) >= 50, timeout=60)
    c.replicas[0].kill()
    await asyncio.gather(*(submit_with_failover(c, i, f"U0REQ{i:04d}") for i in range(n // 2, n)))
    await wait_delivered(fake, n, timeout=240)
    assert_each_once(fake, n)


async def test_same_event_delivered_to_three_replicas_has_one_effect(cluster: Cluster) -> None:
    c, fake = cluster, cluster.fake
    await submit_with_failover(c, 0, "U0REQ")
    card = (await fake.wait_for(lambda: cards(fake)))[0]
    await c.sims[0].click("U0ANA", card, "claim")
    await fake.wait_for(lambda: "Claimed by" in card_text(card))
    event = {
        "type": "message",
        "channel": card.channel,
        "user": "U0ANA",
        "text": "Looking now",
        "ts": f"{float(card.ts) + 5:.6f}",
        "thread_ts": card.ts,
    }
    answers = await asyncio.gather(
        *(sim.event(event, event_id="Ev0SAME", retry_num=i or None) for i, sim in enumerate(c.sims))
    )
    assert [a.status for a in answers] == [200, 200, 200]
    await asyncio.sleep(1.0)
    duplicates = 0
    for r in c.replicas:
        async with c.session.get(r.url + "/metrics") as resp:
            m = re.search(r'duplicate_events_total\{platform="slack"\} (\d+)', await resp.text())
            duplicates += int(float(m.group(1))) if m else 0
    assert duplicates == 2
    from sqlalchemy import select

    from storage.db import Database
    from storage.tables import handoff_events

    db = Database(c.db_url)
    try:
        async with db.read() as conn:
            kinds = (await conn.execute(select(handoff_events.c.kind))).scalars().all()
    finally:
        await db.dispose()
    assert kinds.count("first_action") == 1


# ---- PostgreSQL itself goes away -------------------------------------------------------


def _pg(action: str) -> None:
    version = os.listdir("/etc/postgresql")[0]
    subprocess.run(
        [
            "pg_ctlcluster",
            "--skip-systemctl-redirect",
            version,
            "main",
            action,
            *(["-m", "fast"] if action == "stop" else []),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )


def _pg_ready() -> bool:
    return subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432"], check=False).returncode == 0


@pytest.mark.skipif(not os.path.isdir("/etc/postgresql"), reason="needs the local PostgreSQL cluster to stop and start")
async def test_database_outage_gets_try_again_and_recovers_without_restart(cluster: Cluster) -> None:
    c, fake = cluster, cluster.fake
    await submit_with_failover(c, 0, "U0BEFORE")
    before = (await fake.wait_for(lambda: cards(fake)))[0]
    value = button_value(before, "claim")
    try:
        await asyncio.to_thread(_pg, "stop")
        t0 = time.monotonic()
        # A click during the outage: acked at once, then told to try again, not left hanging.
        answer = await c.sims[1].click("U0ANA", before, "claim", value=value)
        assert answer.status == 200
        reply = await fake.wait_for(lambda: fake.replies_to("U0ANA"), timeout=10)
        assert "try again" in reply[0].text.lower()
        # A form submitted during the outage stays open with a message; nothing is lost.
        sub = await c.sims[2].submit("U0DURING", new_view(1), {**FORM, "summary": "During the outage"})
        assert sub.status == 200 and sub.json()["response_action"] == "errors"
        assert "press the button again" in next(iter(sub.json()["errors"].values()))
        assert time.monotonic() - t0 < 10
        await asyncio.sleep(max(0.0, 5 - (time.monotonic() - t0)))
    finally:
        await asyncio.to_thread(_pg, "start")
        for _ in range(100):
            if _pg_ready():
                break
            await asyncio.sleep(0.1)
    # Same processes, no restart: the person presses again and it works.
    for _ in range(50):
        sub = await c.sims[2].submit("U0DURING", new_view(1), {**FORM, "summary": "During the outage"})
        if sub.status == 200 and not sub.body:
            break
        await asyncio.sleep(0.2)
    assert sub.status == 200 and not sub.body
    await fake.wait_for(lambda: len(cards(fake)) >= 2, timeout=30)
    await c.sims[0].click("U0ANA", before, "claim", value=value)
    await fake.wait_for(lambda: any(r.text.startswith("You claimed ESC-1") for r in fake.replies_to("U0ANA")))
    await fake.wait_for(lambda: "Claimed by <@U0ANA>" in card_text(before), timeout=30)
    confirmations = await fake.wait_for(
        lambda: (
            len([m for m in fake.messages if m.to_user and "posted" in m.text]) >= 2
            and [m for m in fake.messages if m.to_user and "posted" in m.text]
        ),
        timeout=30,
    )
    assert sorted(m.to_user for m in confirmations) == ["U0BEFORE", "U0DURING"]
