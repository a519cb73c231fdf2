"""Stopping and starting replicas as an operator does: SIGTERM under work, migrations at start.

Real `escalation-bot` processes on a real SQLite file or PostgreSQL; only Slack is the fake.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bot.sandbox.fake_slack import RESPONSE_URL, Fail, FakeSlack
from bot.sandbox.process import ServeProcess
from bot.sandbox.simulator import SlackSimulator
from bot.slack.modals import escalate_modal
from tests.conftest import ESC_CHANNEL, PG_URL, SECRET, SENIORS, TEAM, TOKEN, _drop_pg_database, _fresh_pg_database
from tests.helpers import FORM, card_text

ROOT = Path(__file__).resolve().parent.parent


def env_for(db_url: str, fake: FakeSlack, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": db_url,
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_BASE_URL": fake.base_url,
        "SLACK_ESCALATION_CHANNEL": ESC_CHANNEL,
        "SLACK_SENIOR_USER_IDS": ",".join(SENIORS[:5]),
        "OUTBOX_POLL_SECONDS": "0.3",
        **extra,
    }


def new_view(n: int) -> dict[str, Any]:
    view = escalate_modal().to_dict()
    view["id"] = f"VSTOP{n:05d}"
    return view


async def escalate_through(sim: SlackSimulator, fake: FakeSlack, n: int) -> Any:
    answer = await sim.submit(f"U0REQ{n:03d}", new_view(n), {**FORM, "summary": f"Problem {n}"})
    assert answer.status == 200 and not answer.body, answer.body
    found = await fake.wait_for(
        lambda: [m for m in fake.channel_messages(ESC_CHANNEL) if f"Problem {n}" in m.text], timeout=20
    )
    return found[0]


async def stopped(replica: ServeProcess, timeout: float = 30.0) -> tuple[int, float]:
    """SIGTERM, then the exit status and how long it took."""
    assert replica.proc is not None
    started = time.monotonic()
    replica.proc.send_signal(signal.SIGTERM)
    code = await asyncio.to_thread(replica.proc.wait, timeout)
    return code, time.monotonic() - started


async def test_a_claim_acknowledged_just_before_sigterm_is_finished_and_the_winner_told(
    db_url: str, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    """A Claim click answered "ok" to Slack a moment before SIGTERM: the claim is made, the card
    changes, and the winner hears it, because the replica finishes what it acknowledged."""
    fake = fake_slack
    replica = ServeProcess(env_for(db_url, fake), cwd=tmp_path, log_path=tmp_path / "bot.log").start()
    await replica.wait_ready()
    async with SlackSimulator(replica.url, SECRET, fake=fake, team_id=TEAM) as sim:
        card = await escalate_through(sim, fake, 1)
        # The winner's reply is slow to get through (1.5 s): SIGTERM arrives while it is on its way.
        fake.fail_next(RESPONSE_URL, Fail(stall=1.5))
        answer = await sim.click(SENIORS[1], card, "claim")
        assert answer.status == 200
        code, took = await stopped(replica)
    log = (tmp_path / "bot.log").read_text()
    assert code == 0, log[-2000:]
    assert took < 10 + 2, f"stopping took {took:.1f} s"
    told = fake.replies_to(SENIORS[1])
    assert len(told) == 1 and told[0].text.startswith("You claimed ESC-1"), [r.text for r in told]
    assert "Claimed by <@" + SENIORS[1] + ">" in card_text(card)  # the card changed before it exited
    assert "stopping: taking no new requests; finishing 1 acknowledged request(s)" in log
    assert "1 acknowledged request(s) finished, 0 cut short" in log
    assert "never awaited" not in log and "Traceback" not in log


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    if not PG_URL:
        pytest.skip("TEST_DATABASE_URL not set: replicas need PostgreSQL")
    url, name = await _fresh_pg_database()
    try:
        yield url
    finally:
        await _drop_pg_database(name)


async def test_a_send_cut_short_by_sigterm_is_handed_back_and_another_replica_sends_it_at_once(
    pg_url: str, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    """A replica stopped while Slack is slow to take a card gives the row back: the other replica
    posts the card within seconds, not when the 60 s lease runs out, and posts it once."""
    fake = fake_slack
    env = env_for(pg_url, fake, OUTBOX_LEASE_SECONDS="60", SHUTDOWN_GRACE_SECONDS="2", SLACK_API_TIMEOUT_SECONDS="30")
    first = ServeProcess(env, cwd=tmp_path, log_path=tmp_path / "first.log").start()
    await first.wait_ready()
    # Slack holds the first post of the card for 20 s and then refuses it (it never took it).
    fake.fail_next("chat.postMessage", Fail(stall=20, status=503))
    async with SlackSimulator(first.url, SECRET, fake=fake, team_id=TEAM) as sim:
        answer = await sim.submit("U0REQ001", new_view(1), {**FORM, "summary": "Problem 1"})
        assert answer.status == 200 and not answer.body
    await fake.wait_for(lambda: fake.calls_to("chat.postMessage", ok=None), timeout=10)  # stalled at Slack
    second = ServeProcess(env, cwd=tmp_path, log_path=tmp_path / "second.log").start()
    try:
        await second.wait_ready()
        code, took = await stopped(first)
        assert code == 0 and took < 2 + 2, (code, took)
        t0 = time.monotonic()
        cards = await fake.wait_for(lambda: fake.channel_messages(ESC_CHANNEL), timeout=15)
        handed_over_in = time.monotonic() - t0
        await fake.wait_for(lambda: fake.dms_to("U0REQ001"), timeout=10)  # the requester is told, by it
    finally:
        second.stop()
    log = (tmp_path / "first.log").read_text()
    assert "1 unfinished send(s) handed back" in log, log[-2000:]
    assert len(cards) == 1 and "Problem 1" in cards[0].text
    # The second replica looked for the card before posting it (the first try's outcome was unknown).
    assert fake.calls_to("conversations.history"), "posted again without looking first"
    assert handed_over_in < 10, f"the other replica took {handed_over_in:.1f} s"
    assert len(fake.dms_to("U0REQ001")) == 1


def _cli(env: dict[str, str], *args: str, cwd: Path) -> subprocess.Popen[str]:
    import os

    full = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "TEAMS_", "DATABASE_"))}
    full.update(env)
    return subprocess.Popen(
        [sys.executable, "-m", "bot.cli", *args],
        env=full,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def test_replicas_starting_together_on_an_empty_database_migrate_it_once(pg_url: str, tmp_path: Path) -> None:
    """Five `db upgrade`s at the same moment on an empty PostgreSQL (replicas starting together):
    they take turns on an advisory lock, so every one succeeds and the schema is built once."""
    env = {"DATABASE_URL": pg_url}
    runs = [_cli(env, "db", "upgrade", cwd=tmp_path) for _ in range(5)]
    results = [await asyncio.to_thread(p.communicate, timeout=120) for p in runs]
    assert [p.returncode for p in runs] == [0] * 5, [err for _out, err in results]
    conn = await asyncpg.connect(pg_url.replace("+asyncpg", ""))
    try:
        versions = await conn.fetch("SELECT version_num FROM alembic_version")
    finally:
        await conn.close()
    from storage.migrate import head_revision

    assert [v[0] for v in versions] == [head_revision()]


@pytest.mark.parametrize("how", ["flag", "setting"])
async def test_serve_without_migrating_refuses_a_schema_it_cannot_serve_in_one_line(
    how: str, pg_url: str, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    env = env_for(pg_url, fake_slack)
    args = ["serve", "--host", "127.0.0.1", "--port", "0"]
    if how == "flag":
        args.append("--no-migrate")
    else:
        env["MIGRATE_ON_START"] = "false"
    proc = _cli(env, *args, cwd=tmp_path)
    _out, err = await asyncio.to_thread(proc.communicate, timeout=60)
    assert proc.returncode == 1
    lines = err.strip().splitlines()
    assert lines[-1] == (
        "escalation-bot: DATABASE_URL: the database has no schema yet: run `escalation-bot db upgrade` first"
    ), err
    assert "Traceback" not in err
    # Once the migration step has run, the same command serves (and did not migrate: nothing to do).
    upgrade = _cli({"DATABASE_URL": pg_url}, "db", "upgrade", cwd=tmp_path)
    await asyncio.to_thread(upgrade.communicate, timeout=60)
    assert upgrade.returncode == 0
    replica = ServeProcess(
        {**env, **({"MIGRATE_ON_START": "false"} if how == "setting" else {})},
        cwd=tmp_path,
        log_path=tmp_path / "serve.log",
    )
    if how == "flag":
        replica.extra_args = ["--no-migrate"]
    replica.start()
    try:
        await replica.wait_ready()
    finally:
        replica.stop()
