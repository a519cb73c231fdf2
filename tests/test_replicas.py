"""Several `escalation-bot serve` processes on one PostgreSQL database, under faults.

Real processes, real PostgreSQL, signed requests over HTTP; only Slack is the fake,
failing on demand.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from bot.sandbox.fake_slack import Fail, FakeSlack, Message
from bot.sandbox.faults import APPLIED_THEN_500, APPLIED_THEN_RESET
from bot.sandbox.process import ServeProcess
from bot.sandbox.simulator import SlackSimulator, button_value
from bot.slack import messages
from bot.slack.modals import escalate_modal
from tests.conftest import ESC_CHANNEL, PG_URL, SECRET, TEAM, TOKEN, _drop_pg_database, _fresh_pg_database
from tests.helpers import FORM, card_text, eventually, outbox_quiet
from tests.pgbouncer import PgBouncer, pgbouncer
from tests.private_pg import PrivatePostgres, private_postgres

pytestmark = [
    pytest.mark.skipif(not PG_URL, reason="TEST_DATABASE_URL not set: replica tests need PostgreSQL"),
    # Three bot processes, PostgreSQL and up to 500 clients are this 2-core machine's whole capacity:
    # each of these tests runs with the other xdist workers paused (tests/conftest.py `_machine_share`),
    # so the 3 s bound measures the bot, not the fuzz suite or the playground running beside it.
    pytest.mark.alone,
]

# Refused (429, 500 before doing anything), slow (answered after 5 s), and ambiguous: Slack took the
# call, then answered 500 or dropped the connection. Nothing may be lost or doubled through any of them.
CHAOS = [Fail(status=429, retry_after=1), Fail(status=500), Fail(stall=5.0), APPLIED_THEN_500, APPLIED_THEN_RESET]
CHAOS_METHODS = ("chat.postMessage", "chat.update", "conversations.history", "conversations.open")
# A cold burst of 500 submissions at once. Slack shows the person an error when the bot has not
# answered within 3 s, and they press Submit again: at most this share of submissions may meet that
# (the bot acks first, so even a starved replica answers in time; 0 of 500 in each run here). The
# form saying the database was too slow to store it and asking for another press is counted and
# printed too but not bounded: it measures this 2-core machine running three replicas, PostgreSQL,
# the fake and the load at once (36-62% of submissions), which is bench/'s business (issue 12).
SLACK_TIMEOUT_BOUND = 0.02


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


async def start_cluster(
    pg_url: str, fake: FakeSlack, tmp_path: Path, n: int = 3, via: PgBouncer | None = None
) -> Cluster:
    """`n` replicas on the database `pg_url`, straight to PostgreSQL or through PgBouncer `via` (in
    transaction pooling: DATABASE_POOLER=pgbouncer, migrations on the direct URL)."""
    routed = (
        {"DATABASE_URL": via.url_for(pg_url), "DATABASE_POOLER": "pgbouncer", "DATABASE_MIGRATION_URL": pg_url}
        if via is not None
        else {"DATABASE_URL": pg_url}
    )
    env = {
        **routed,
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_BASE_URL": fake.base_url,
        "SLACK_ESCALATION_CHANNEL": ESC_CHANNEL,
        "OUTBOX_LEASE_SECONDS": "10",
        "OUTBOX_POLL_SECONDS": "0.5",
        "SLACK_API_TIMEOUT_SECONDS": "8",
        # Slack failing 30% of calls for the whole test is harsher than any real incident: a message
        # may fail many times in a row (more under CPU starvation, when a 5 s stall outlasts the
        # lease). These tests are about nothing lost or doubled, not about giving up or waiting ten
        # minutes between tries, so attempts are not capped at 10 and the waits between them at 8 s.
        "OUTBOX_MAX_ATTEMPTS": "100",
        "OUTBOX_BACKOFF_CAP_SECONDS": "8",
        "LOG_LEVEL": "WARNING",
        # DATABASE_POOL_SIZE at its default (10): 3 x 10 connections, well under max_connections.
    }
    replicas = [ServeProcess(env, cwd=tmp_path, log_path=tmp_path / f"replica{i}.log").start() for i in range(n)]
    await asyncio.gather(*(r.wait_ready() for r in replicas))
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=60))
    sims = [SlackSimulator(r.url, SECRET, fake=fake, team_id=TEAM, session=session) for r in replicas]
    return Cluster(pg_url, fake, replicas, sims, session)


async def _running(c: Cluster) -> AsyncIterator[Cluster]:
    try:
        yield c
    finally:
        await c.session.close()
        for r in c.replicas:
            r.stop()


@pytest.fixture
async def cluster(pg_url: str, fake_slack: FakeSlack, tmp_path: Path) -> AsyncIterator[Cluster]:
    # Hundreds of cards in a minute to one channel is more than Slack allows (about a post a second
    # per channel, each method a tier a minute): these tests are about replicas and faults, not about
    # Slack's pace, so the fake's limits are raised a hundredfold.
    fake_slack.limits.scale = 100
    async for c in _running(await start_cluster(pg_url, fake_slack, tmp_path)):
        yield c


@pytest.fixture(params=["direct", "pgbouncer"])
async def routed_cluster(
    request: pytest.FixtureRequest, pg_url: str, fake_slack: FakeSlack, tmp_path: Path
) -> AsyncIterator[Cluster]:
    """Three replicas straight to PostgreSQL, and the same through a real PgBouncer in transaction
    pooling (20 server connections for the three replicas' 30 client connections). Without
    DATABASE_POOLER=pgbouncer the replicas behind it do not even start (prepared statement
    "__asyncpg_stmt_…__" already exists / does not exist)."""
    fake_slack.limits.scale = 100  # as `cluster`: replicas and faults, not Slack's pace
    if request.param == "direct":
        async for c in _running(await start_cluster(pg_url, fake_slack, tmp_path)):
            yield c
        return
    with pgbouncer(pg_url) as bouncer:
        async for c in _running(await start_cluster(pg_url, fake_slack, tmp_path, via=bouncer)):
            yield c


def new_view(n: int) -> dict:
    view = escalate_modal().to_dict()
    view["id"] = f"VREPLICA{n:05d}"
    return view


WHY_AGAIN: Counter[str] = Counter()


async def submit_with_failover(c: Cluster, n: int, user: str) -> int:
    """Submit escalation n as a load balancer would: to a replica, and to the next if that one is gone.
    Returns how many times the person had to press Submit again."""
    for attempt in range(20):
        try:
            answer = await c.sim(n + attempt).submit(user, new_view(n), {**FORM, "summary": f"Problem {n}"})
        except aiohttp.ClientError:
            WHY_AGAIN["replica gone"] += 1
            await asyncio.sleep(0.2)  # the load balancer notices the replica is gone
            continue
        if answer.status == 200 and "press the button again" in answer.body:
            WHY_AGAIN["database too slow"] += 1
            await asyncio.sleep(0.5)  # overloaded: the person presses Submit again, as the form asks
            continue
        if answer.status == 404 and "unhandled request" in answer.body:
            WHY_AGAIN["no answer in 3 s"] += 1
            # No ack inside Slack's 3 s (Bolt gave up waiting on a starved event loop): Slack shows the
            # person an error on the form and they press Submit again. The view id makes that safe.
            await asyncio.sleep(0.5)
            continue
        assert answer.status == 200 and not answer.body, answer.body
        return attempt
    raise AssertionError(f"escalation {n} could not be submitted")


def report_resubmits(resubmits: list[int]) -> None:
    pressed_again = sum(1 for r in resubmits if r)
    print(
        f"\nresubmissions: {pressed_again} of {len(resubmits)} submissions needed Submit pressed again "
        f"({sum(resubmits)} extra presses: {dict(WHY_AGAIN)}; "
        f"bound on no answer in 3 s: {SLACK_TIMEOUT_BOUND:.0%} of submissions)"
    )
    timed_out = WHY_AGAIN["no answer in 3 s"]
    WHY_AGAIN.clear()
    assert timed_out <= SLACK_TIMEOUT_BOUND * len(resubmits), f"{timed_out} submissions met Slack's 3 s timeout"


def cards(fake: FakeSlack) -> list[Message]:
    return fake.channel_messages(ESC_CHANNEL)


async def test_claim_storm_across_three_replicas_one_winner_per_card(routed_cluster: Cluster) -> None:
    c, fake = routed_cluster, routed_cluster.fake
    n_cards, clickers = 100, 10
    await asyncio.gather(*(submit_with_failover(c, i, f"U0REQ{i:03d}") for i in range(n_cards)))
    await fake.wait_for(lambda: len(cards(fake)) >= n_cards, timeout=60)
    by_number = {int(re.search(r"ESC-(\d+)", m.text).group(1)): m for m in cards(fake)}  # type: ignore[union-attr]
    assert len(by_number) == n_cards

    values = {number: button_value(card, "claim") for number, card in by_number.items()}  # the card as posted
    who = [(number, card, j) for number, card in by_number.items() for j in range(clickers)]
    expected = 0
    for _ in range(5):
        clicks = [
            c.sims[(number + j) % 3].click(f"U{number:03d}SENIOR{j}", card, "claim", value=values[number])
            for number, card, j in who
        ]
        answers = await asyncio.gather(*clicks)
        assert Counter(a.status for a in answers) == {200: len(who)}
        expected += len(who)
        await fake.wait_for(lambda n=expected: len(fake.replies) >= n, timeout=60)
        # A replica starved of CPU (the suite runs beside this) may tell someone its database did not
        # answer in time; that person clicks again, as the reply asks.
        last = {r.user: r for r in fake.replies}
        who = [(n, card, j) for n, card, j in who if last[f"U{n:03d}SENIOR{j}"].text == messages.TRY_AGAIN]
        if not who:
            break
    assert not who, f"{len(who)} clicks were still told to try again after five tries"

    for number in by_number:
        latest = {r.user: r for r in fake.replies if r.user.startswith(f"U{number:03d}SENIOR")}
        replies = list(latest.values())
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


async def wait_delivered(c: Cluster, n: int, timeout: float) -> None:
    """Every card posted and every requester told, and then the outbox empty: nothing due, nothing
    being sent, so nothing can still arrive twice."""

    def done() -> bool:
        return len(cards(c.fake)) >= n and sum(1 for m in c.fake.messages if m.to_user) >= n

    started = time.monotonic()
    try:
        await c.fake.wait_for(done, timeout=timeout)
    except TimeoutError:
        posted, told = len(cards(c.fake)), sum(1 for m in c.fake.messages if m.to_user)
        raise AssertionError(
            f"after {timeout} s: {posted} of {n} cards, {told} of {n} requesters told; "
            f"the outbox still holds: {await outbox_left(c.db_url)}"
        ) from None
    await outbox_quiet(c.db_url, timeout=timeout)
    print(
        f"delivered in {time.monotonic() - started:.0f} s after the last submission was answered; "
        f"rows by attempts: {await attempts_taken(c.db_url)}"
    )


async def attempts_taken(db_url: str) -> dict[int, int]:
    conn = await asyncpg.connect(db_url.replace("+asyncpg", ""))
    try:
        rows = await conn.fetch("SELECT attempts, count(*) FROM outbox GROUP BY 1 ORDER BY 1")
    finally:
        await conn.close()
    return {r[0]: r[1] for r in rows}


async def outbox_left(db_url: str) -> list[tuple[Any, ...]]:
    """What is not sent yet, grouped: kind, status, attempts, last error (cut), how many."""
    conn = await asyncpg.connect(db_url.replace("+asyncpg", ""))
    try:
        rows = await conn.fetch(
            "SELECT kind, status, attempts, left(coalesce(last_error, ''), 80) AS error, count(*) AS n"
            " FROM outbox WHERE status <> 'sent' GROUP BY 1, 2, 3, 4 ORDER BY n DESC LIMIT 12"
        )
    finally:
        await conn.close()
    return [tuple(r) for r in rows]


def assert_each_once(fake: FakeSlack, n: int) -> None:
    problems = Counter(int(re.search(r"Problem (\d+)", m.text).group(1)) for m in cards(fake))  # type: ignore[union-attr]
    assert sorted(problems) == list(range(n)), "every escalation has a card"
    assert {k: v for k, v in problems.items() if v > 1} == {}, "no card posted twice"
    numbers = Counter(re.search(r"ESC-\d+", m.text).group(0) for m in cards(fake))  # type: ignore[union-attr]
    assert len(numbers) == n, "every escalation has a number of its own"
    told = Counter(m.to_user for m in fake.messages if m.to_user)
    assert len(told) == n and set(told.values()) == {1}, "every requester told exactly once"


async def test_burst_of_500_while_slack_fails_30_percent(routed_cluster: Cluster) -> None:
    c, fake = routed_cluster, routed_cluster.fake
    fake.chaos(0.3, CHAOS_METHODS, CHAOS)
    n = 500
    resubmits = await asyncio.gather(*(submit_with_failover(c, i, f"U0REQ{i:04d}") for i in range(n)))
    report_resubmits(list(resubmits))
    await wait_delivered(c, n, timeout=180)
    assert_each_once(fake, n)
    failed = Counter(call.status for call in fake.calls if not call.ok)
    assert failed[429] > 20 and failed[500] > 20  # the faults really happened


async def test_a_replica_killed_mid_burst_loses_and_doubles_nothing(cluster: Cluster) -> None:
    c, fake = cluster, cluster.fake
    fake.chaos(0.3, CHAOS_METHODS, CHAOS)
    n = 500
    await asyncio.gather(*(submit_with_failover(c, i, f"U0REQ{i:04d}") for i in range(n // 2)))
    # Let replica 0 lease some work (some of it stalled at Slack), then kill it without warning.
    await fake.wait_for(lambda: len(cards(fake)) >= 50, timeout=60)
    c.replicas[0].kill()
    await asyncio.gather(*(submit_with_failover(c, i, f"U0REQ{i:04d}") for i in range(n // 2, n)))
    await wait_delivered(c, n, timeout=240)
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

    async def counted(name: str) -> int:
        total = 0
        for r in c.replicas:
            async with c.session.get(r.url + "/metrics") as resp:
                for m in re.finditer(name + r'\{[^}]*platform="slack"[^}]*\} (\d+)', await resp.text()):
                    total += int(float(m.group(1)))
        return total

    handled = "escalation_bot_events_handled_total"
    await eventually(lambda: _at_least(counted(handled), 3))  # all three handled, wherever
    assert await counted("escalation_bot_duplicate_events_total") == 2
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


@pytest.fixture
async def private_cluster(fake_slack: FakeSlack, tmp_path: Path) -> AsyncIterator[tuple[Cluster, PrivatePostgres]]:
    """Three replicas on a PostgreSQL server of this test's own, which it may stop and start."""
    with private_postgres() as server:
        admin = await asyncpg.connect(host="127.0.0.1", port=server.port, user="postgres", database="postgres")
        try:
            await admin.execute("CREATE DATABASE escalations")
        finally:
            await admin.close()
        c = await start_cluster(server.url.rsplit("/", 1)[0] + "/escalations", fake_slack, tmp_path)
        try:
            yield c, server
        finally:
            await c.session.close()
            for r in c.replicas:
                r.stop()


async def test_database_outage_gets_try_again_and_recovers_without_restart(
    private_cluster: tuple[Cluster, PrivatePostgres],
) -> None:
    c, server = private_cluster
    fake = c.fake
    await submit_with_failover(c, 0, "U0BEFORE")
    before = (await fake.wait_for(lambda: cards(fake)))[0]
    value = button_value(before, "claim")
    try:
        await asyncio.to_thread(server.stop)
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
        await asyncio.sleep(max(0.0, 5 - (time.monotonic() - t0)))  # the outage lasts five seconds
    finally:
        await asyncio.to_thread(server.start)  # returns once the server accepts connections
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


async def _at_least(count: Any, n: int) -> bool:
    return (await count) >= n
