"""deploy/compose.yaml, checked by Debian's docker-compose and run as processes.

No Docker engine runs here, so the containers cannot. What docker-compose can do without one is
read the file as it will be run: validate it, and resolve each service's command and environment
(the env file merged in, the YAML's anchors applied). The stack test takes exactly those, for the
`migrate` service and the two bots, and runs them as processes on this machine in the order their
`depends_on` conditions say, against the local PostgreSQL (for the `postgres` service) and the fake
Slack. The only changes it makes are the ones a test must: which database, which Slack, which
tokens, and a loopback port for each bot (in the stack each container has its own network).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.config import Settings
from bot.sandbox.fake_slack import FakeSlack
from bot.sandbox.process import ServeProcess
from bot.sandbox.simulator import SlackSimulator, button_value
from bot.slack.modals import escalate_modal
from tests.conftest import ESC_CHANNEL, PG_URL, SECRET, SENIORS, TEAM, TOKEN, _drop_pg_database, _fresh_pg_database
from tests.helpers import FORM, card_text

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
EXAMPLE_ENV = "escalation-bot.env.example"


def compose(*args: str, env_file: str | None = EXAMPLE_ENV) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose is not installed (Debian: apt-get install docker-compose; .ci/run installs it)"
    env = {k: v for k, v in os.environ.items() if k != "ESCALATION_BOT_ENV_FILE"}
    if env_file is not None:
        env["ESCALATION_BOT_ENV_FILE"] = env_file
    return subprocess.run(
        [binary, "-f", str(DEPLOY / "compose.yaml"), *args], capture_output=True, text=True, env=env, timeout=60
    )


@pytest.mark.parametrize("profile", [[], ["--profile", "pgbouncer"], ["--profile", "monitoring"]])
def test_docker_compose_accepts_the_stack_with_each_profile(profile: list[str]) -> None:
    checked = compose(*profile, "config", "-q")
    assert checked.returncode == 0, checked.stderr


def test_without_the_env_file_docker_compose_says_which_file_is_missing() -> None:
    checked = compose("config", "-q", env_file=None)
    assert checked.returncode != 0
    assert "escalation-bot.env" in checked.stderr


def resolved(*profiles: str) -> dict[str, Any]:
    """The stack as docker-compose resolves it: services with their final commands and environments."""
    args = [a for p in profiles for a in ("--profile", p)]
    done = compose(*args, "config")
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)["services"]


SECRETS = {"POSTGRES_PASSWORD", "DATABASE_URL", "DATABASE_MIGRATION_URL"} | {
    name.upper() for name, field in Settings.model_fields.items() if "SecretStr" in str(field.annotation)
}


def test_no_secret_is_written_in_the_yaml_every_one_comes_from_the_env_file() -> None:
    raw = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    for name, service in raw["services"].items():
        environment = service.get("environment") or {}
        assert not SECRETS & set(environment), f"{name} sets a secret in the YAML: {SECRETS & set(environment)}"
        assert service.get("env_file") or "environment" not in service, name
    text = (DEPLOY / "compose.yaml").read_text()
    assert not re.search(r"xox[bpa]-|PASSWORD\s*[:=]\s*\S", text)


def test_the_stack_is_postgres_16_with_a_volume_a_one_shot_migration_two_replicas_and_profiles() -> None:
    services = resolved("pgbouncer", "monitoring")
    postgres = services["postgres"]
    assert postgres["image"].startswith("postgres:16")
    # docker-compose 1.29 prints volumes short ("NAME:PATH:rw"); newer ones long ({"source", "target"}).
    mounts = [v.split(":")[:2] if isinstance(v, str) else [v["source"], v["target"]] for v in postgres["volumes"]]
    named = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["volumes"]
    assert any(source in named and target == "/var/lib/postgresql/data" for source, target in mounts), mounts
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert services["migrate"]["command"] == ["escalation-bot", "db", "upgrade"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    bots = [name for name in services if name.startswith("bot-")]
    assert len(bots) == 2
    for name in bots:
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert "--no-migrate" in services[name]["command"]
    assert "pgbouncer" in services


def order(services: dict[str, Any], wanted: list[str]) -> list[str]:
    """`wanted` in the order depends_on allows (each after everything it depends on)."""
    done: list[str] = []

    def visit(name: str) -> None:
        for dep in services[name].get("depends_on") or {}:
            if dep in wanted:
                visit(dep)
        if name not in done:
            done.append(name)

    for name in wanted:
        visit(name)
    return done


@pytest.fixture
async def stack_db() -> Any:
    assert PG_URL, "TEST_DATABASE_URL must be set: the stack runs on PostgreSQL"
    url, name = await _fresh_pg_database()
    try:
        yield url
    finally:
        await _drop_pg_database(name)


async def test_the_stacks_services_run_as_processes_migrate_then_two_replicas_claim_and_conflict(
    stack_db: str, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    services = resolved()
    runnable = ["migrate", *(name for name in services if name.startswith("bot-"))]
    # What a test must change (the rest is the stack's own): the database the `postgres` service
    # is here, the fake Slack, its tokens and channel, and who the seniors are.
    here = {
        "DATABASE_URL": stack_db,
        "SLACK_API_BASE_URL": fake_slack.base_url,
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_ESCALATION_CHANNEL": ESC_CHANNEL,
        "SLACK_SENIOR_USER_IDS": ",".join(SENIORS[:3]),
    }
    bots: list[ServeProcess] = []
    try:
        for name in order(services, runnable):
            service = services[name]
            env = {k: str(v) for k, v in (service.get("environment") or {}).items()} | here
            command = service["command"]
            assert command[0] == "escalation-bot"
            for dep, condition in (service.get("depends_on") or {}).items():
                if condition["condition"] == "service_completed_successfully":
                    assert dep == "migrate"  # run above, and it exited 0
            if command[1] == "serve":
                bot = ServeProcess(env, cwd=tmp_path, log_path=tmp_path / f"{name}.log")
                bot.extra_args = command[2:]  # after the loopback host and port this test gives each
                bots.append(bot.start())
                continue
            done = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "bot.cli", *command[1:]],
                env={k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_"))} | env,
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert done.returncode == 0, done.stderr  # service_completed_successfully
        assert len(bots) == 2
        await asyncio.gather(*(b.wait_ready() for b in bots))

        one, two = (SlackSimulator(b.url, SECRET, fake=fake_slack, team_id=TEAM) for b in bots)
        async with one, two:
            view = escalate_modal().to_dict()
            view["id"] = "VSTACK0001"
            answer = await one.submit("U0JUNIOR", view, {**FORM, "summary": "Stack test"})
            assert answer.status == 200 and not answer.body, answer.body
            card = (await fake_slack.wait_for(lambda: fake_slack.channel_messages(ESC_CHANNEL), timeout=20))[0]
            assert "Stack test" in card.text
            # The second senior presses Claim on the card as they saw it: by then the first claim
            # may already have changed it (and taken its button away), as it did in one CI run.
            claim = button_value(card, "claim")
            first = await one.click(SENIORS[0], card, "claim")
            await fake_slack.wait_for(lambda: fake_slack.replies_to(SENIORS[0]), timeout=10)
            second = await two.click(SENIORS[1], card, "claim", value=claim)
            assert first.status == second.status == 200
            won = await fake_slack.wait_for(lambda: fake_slack.replies_to(SENIORS[0]), timeout=10)
            lost = await fake_slack.wait_for(lambda: fake_slack.replies_to(SENIORS[1]), timeout=10)
        assert won[0].text.startswith("You claimed ESC-1")
        assert lost[0].text.startswith(f"Already claimed by <@{SENIORS[0]}>")
        await fake_slack.wait_for(lambda: f"Claimed by <@{SENIORS[0]}>" in card_text(card), timeout=10)
    finally:
        for bot in bots:
            bot.stop()
    for bot in bots:
        assert bot.proc is not None and bot.proc.returncode == 0  # SIGTERM: a clean stop
    logs = [(tmp_path / f"{name}.log").read_text() for name in runnable[1:]]
    assert all(line.startswith("{") for log in logs for line in log.splitlines() if line), "LOG_FORMAT=json"
