"""A rolling upgrade, as an operator does it, under a steady stream of escalations and claims.

The previous release (the commit deploy/previous-release names) is installed in a virtualenv of its
own from its own lock, migrates a PostgreSQL database, and serves it with two replicas. Then this
checkout's `db upgrade` runs while they serve; one old replica is restarted on the new schema (a
crash or a reschedule mid-rollout: it must start); then the replicas are replaced by this checkout's
one by one, each stopped with SIGTERM. Throughout: every request answered within Slack's 3 s and
none with a 5xx; afterwards each escalation carded once and its requester told once, every claim
answered with one winner per card, no dead messages, and no error-level line in any log.
"""

from __future__ import annotations

import asyncio
import io
import re
import subprocess
import sys
import tarfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from bot.sandbox.fake_slack import FakeSlack
from bot.sandbox.process import ServeProcess
from bot.sandbox.simulator import SlackSimulator, button_value
from bot.slack.modals import escalate_modal
from storage import migrate
from tests.conftest import ESC_CHANNEL, PG_URL, SECRET, SENIORS, TEAM, TOKEN, _drop_pg_database, _fresh_pg_database
from tests.helpers import FORM, outbox_quiet

pytestmark = pytest.mark.alone  # up to four bot processes, PostgreSQL and the load: the machine's whole capacity

ROOT = Path(__file__).resolve().parent.parent
SLACK_DEADLINE = 3.0


def previous_release(into: Path) -> tuple[str, Path]:
    """The previous release's commit, its tree extracted under `into`, and a virtualenv with it
    installed from its own lock (the image's way: hashes checked, wheels only, no build fetched)."""
    commit = (ROOT / "deploy" / "previous-release").read_text().split()[0]
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit], capture_output=True, timeout=60)
    assert archive.returncode == 0, f"cannot read release {commit} from git: {archive.stderr.decode()[-300:]}"
    source = into / "source"
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(source, filter="data")
    venv = into / "venv"
    steps = [
        [sys.executable, "-m", "venv", str(venv)],
        [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", "--require-hashes",
         "--only-binary=:all:", "-r", str(source / "requirements.lock")],
        [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", "--no-deps", "--no-index",
         "--no-build-isolation", str(source)],
    ]  # fmt: skip
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{' '.join(step[:3])}: {done.stderr[-1500:]}"
    return commit, venv / "bin" / "python"


@dataclass
class Traffic:
    """A steady stream of escalations and claims through a load balancer over the replicas alive."""

    replicas: list[ServeProcess]
    fake: FakeSlack
    session: aiohttp.ClientSession
    slow: list[tuple[str, float, str, float]] = field(default_factory=list)  # what, took, replica, when
    phases: list[tuple[float, str]] = field(default_factory=list)  # when (monotonic), what the operator did
    errors: list[tuple[str, int, str]] = field(default_factory=list)
    escalated: int = 0
    claims: list[tuple[int, str]] = field(default_factory=list)  # (card number, senior)
    stopping: bool = False
    _turn: int = 0

    def alive(self) -> list[ServeProcess]:
        return [
            r for r in self.replicas if r.proc is not None and r.proc.poll() is None and getattr(r, "serving", False)
        ]

    async def send(self, what: str, act) -> None:  # type: ignore[no-untyped-def]
        """As a load balancer: to the next replica alive; a replica that went away (connection refused
        or reset, as it stops) is tried no more and the request goes to the next."""
        for _ in range(20):
            alive = self.alive()
            if not alive:
                await asyncio.sleep(0.05)
                continue
            replica = alive[self._turn % len(alive)]
            self._turn += 1
            sim = SlackSimulator(replica.url, SECRET, fake=self.fake, team_id=TEAM, session=self.session)
            started = time.monotonic()
            try:
                answer = await act(sim)
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)
                continue
            took = time.monotonic() - started
            if took > SLACK_DEADLINE:
                self.slow.append((what, took, replica.log_path.name, started))
            if answer.status != 200 or (what.startswith("escalation") and answer.body):
                self.errors.append((what, answer.status, answer.body[:200]))  # a 5xx, or "press again"
            return
        self.errors.append((what, 0, "no replica answered"))

    async def run(self) -> None:
        n = 0
        while not self.stopping:
            n += 1
            view = escalate_modal().to_dict()
            view["id"] = f"VUPGRADE{n:05d}"
            answers = {**FORM, "summary": f"Upgrade {n:05d}"}
            await self.send(f"escalation {n}", lambda sim, v=view, a=answers, n=n: sim.submit(f"U0REQ{n:05d}", v, a))
            self.escalated = n
            for number, card in list(posted_cards(self.fake).items())[-3:]:
                if any(num == number for num, _ in self.claims):
                    continue
                value = button_value(card, "claim")
                for senior in SENIORS[:2]:  # two seniors race for it: one wins, one is told
                    self.claims.append((number, senior))
                    click = lambda sim, s=senior, c=card, v=value: sim.click(s, c, "claim", value=v)  # noqa: E731
                    await self.send(f"claim {number}", click)
            await asyncio.sleep(0.2)


def timeline(traffic: Traffic) -> str:
    """What the operator did and the slow answers, in order, in seconds from the first step."""
    if not traffic.phases:
        return ""
    t0 = traffic.phases[0][0]
    rows = [(at, what) for at, what in traffic.phases]
    rows += [(at, f"{what} to {replica}: answered in {took:.1f} s") for what, took, replica, at in traffic.slow]
    errors = [f"{what}: {status} {body!r}" for what, status, body in traffic.errors]
    return "\n".join([f"{at - t0:+7.2f} s  {what}" for at, what in sorted(rows)] + errors)


def cli(python: str, db_url: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": db_url}
    return subprocess.run(
        [python, "-m", "bot.cli", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


def posted_cards(fake: FakeSlack) -> dict[int, Any]:
    """The stream's cards by their escalation's serial (in its summary), as posted."""
    found = ((re.search(r"Upgrade (\d+)", c.text), c) for c in fake.channel_messages(ESC_CHANNEL))
    return {int(m.group(1)): c for m, c in found if m}


def bot_env(db_url: str, fake: FakeSlack) -> dict[str, str]:
    return {
        "DATABASE_URL": db_url,
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_BASE_URL": fake.base_url,
        "SLACK_ESCALATION_CHANNEL": ESC_CHANNEL,
        "SLACK_SENIOR_USER_IDS": ",".join(SENIORS[:2]),
        "OUTBOX_POLL_SECONDS": "0.3",
        "OUTBOX_LEASE_SECONDS": "10",
    }


async def started(replica: ServeProcess) -> ServeProcess:
    replica.start()
    await replica.wait_ready(timeout=60)
    replica.serving = True  # type: ignore[attr-defined]
    return replica


async def stopped(replica: ServeProcess) -> None:
    """SIGTERM, and wait for its exit in a thread: the fake Slack runs on this event loop, and the
    replica finishes the work behind its acks by calling it (blocking the loop here held every click
    for the whole grace period, and the 3 s check failed on the test's own wait)."""
    replica.serving = False  # type: ignore[attr-defined]  # the load balancer takes it out first
    await asyncio.to_thread(replica.stop)
    assert replica.proc is not None and replica.proc.returncode == 0


async def test_a_rolling_upgrade_from_the_previous_release_under_load(fake_slack: FakeSlack, tmp_path: Path) -> None:
    assert PG_URL, "TEST_DATABASE_URL must be set: replicas share PostgreSQL"
    t0 = time.monotonic()
    commit, old_python = await asyncio.to_thread(previous_release, tmp_path / "previous")
    installed = time.monotonic() - t0
    fake_slack.limits.scale = 100  # replicas and releases, not Slack's pace
    db_url, name = await _fresh_pg_database()
    env = bot_env(db_url, fake_slack)
    logs = tmp_path / "logs"
    logs.mkdir()

    def old(i: int) -> ServeProcess:
        return ServeProcess(env, cwd=tmp_path, log_path=logs / f"old-{i}.log", python=str(old_python))

    def new(i: int) -> ServeProcess:
        return ServeProcess(env, cwd=tmp_path, log_path=logs / f"new-{i}.log")

    replicas: list[ServeProcess] = []
    try:
        migrated = await asyncio.to_thread(cli, str(old_python), db_url, "db", "upgrade", cwd=tmp_path)
        assert migrated.returncode == 0, migrated.stderr
        replicas = [await started(old(0)), await started(old(1))]
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            traffic = Traffic(replicas, fake_slack, session)
            mark = lambda what: traffic.phases.append((time.monotonic(), what))  # noqa: E731
            running = asyncio.create_task(traffic.run())
            await asyncio.sleep(3)

            mark("db upgrade begins")
            upgrade = await asyncio.to_thread(cli, sys.executable, db_url, "db", "upgrade", cwd=tmp_path)
            assert upgrade.returncode == 0, upgrade.stderr
            mark("db upgrade ends")
            await asyncio.sleep(2)

            mark("old-1 stops")
            await stopped(replicas[1])  # an old replica rescheduled mid-rollout starts again on the new schema
            replicas[1] = old(2)
            traffic.replicas.append(replicas[1])
            mark("old-2 starts")
            await started(replicas[1])
            mark("old-2 serves")
            await asyncio.sleep(2)

            for i in (0, 1):  # then each replaced by this checkout's, one at a time
                mark(f"{replicas[i].log_path.name[:-4]} stops")
                await stopped(replicas[i])
                replicas[i] = new(i)
                traffic.replicas.append(replicas[i])
                mark(f"new-{i} starts")
                await started(replicas[i])
                mark(f"new-{i} serves")
                await asyncio.sleep(2)

            traffic.stopping = True
            await running
        await outbox_quiet(db_url, timeout=60)
    finally:
        for r in replicas:
            if r.proc is not None and r.proc.poll() is None:
                r.stop()

    try:
        conn = await asyncpg.connect(db_url.replace("+asyncpg", ""))
        try:
            dead = await conn.fetchval("SELECT count(*) FROM outbox WHERE status = 'dead'")
            version = await conn.fetchval("SELECT version_num FROM alembic_version")
        finally:
            await conn.close()
    finally:
        await _drop_pg_database(name)

    print(
        f"\nupgrade from {commit[:10]}: installed in {installed:.0f} s, whole test {time.monotonic() - t0:.0f} s; "
        f"{traffic.escalated} escalations and {len(traffic.claims)} claim clicks"
    )
    assert traffic.errors == [] and traffic.slow == [], timeline(traffic)
    assert version == migrate.head_revision()
    posted = Counter(
        int(m.group(1)) for c in fake_slack.channel_messages(ESC_CHANNEL) if (m := re.search(r"Upgrade (\d+)", c.text))
    )
    assert sorted(posted) == list(range(1, traffic.escalated + 1)), "an escalation has no card"
    assert set(posted.values()) == {1}, "a card was posted twice"
    # Each requester hears once that their card is up and once who picked it up: never a message twice.
    told = Counter((m.to_user, m.text) for m in fake_slack.messages if m.to_user and m.to_user.startswith("U0REQ"))
    assert len({user for user, _ in told}) == traffic.escalated, "a requester was not told"
    assert set(told.values()) == {1}, [k for k, n in told.items() if n > 1]
    replies = [r for s in SENIORS[:2] for r in fake_slack.replies_to(s)]
    assert len(replies) == len(traffic.claims), "a claim click was not answered"
    winners = Counter(m.group(1) for r in replies if (m := re.match(r"You claimed (ESC-\d+)", r.text)))
    assert len(winners) == len({n for n, _ in traffic.claims}) and set(winners.values()) == {1}, winners
    assert dead == 0
    lines = [line for log in sorted(logs.iterdir()) for line in log.read_text().splitlines()]
    assert [line for line in lines if " ERROR " in line] == []
    # Each replica stopped finished the work behind its acks within the grace period, none cut short.
    cut = [line for line in lines if (m := re.search(r"(\d+) cut short", line)) and m.group(1) != "0"]
    assert cut == []
    # The old release restarted after the upgrade knew the schema was newer, and that it could serve it.
    assert "is newer than this release's" in (logs / "old-2.log").read_text()
