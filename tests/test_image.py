"""The image, as far as this machine can build it.

No base image can be pulled here and no Docker engine runs, so `docker build` cannot. What can be
checked is: what the Dockerfile says (its command is one the CLI has, every ENV is a setting,
it installs from the lock with hashes, it runs as a user, ...), and its build stage's steps, run
as they are written in a virtualenv here: the lock installs with every hash checked and wheels
only (so the image needs no compiler), the project installs from its sources alone, and what that
makes starts, answers the HEALTHCHECK's command and stops on the STOPSIGNAL with status 0.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bot.cli import build_parser
from bot.config import Settings
from bot.sandbox.process import free_port

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Stage:
    base: str
    name: str | None
    steps: list[tuple[str, str]] = field(default_factory=list)  # (INSTRUCTION, arguments)

    def all(self, instruction: str) -> list[str]:
        return [args for ins, args in self.steps if ins == instruction]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """ARGs before the first FROM, and the stages with their instructions (continuations joined,
    comments dropped, ${ARG} in FROM expanded)."""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    logical = re.sub(r"\\\n", " ", text)
    for raw in logical.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        instruction, rest = instruction.upper(), rest.strip()
        if instruction == "ARG" and not stages:
            key, _, value = rest.partition("=")
            args[key] = value
        elif instruction == "FROM":
            words = rest.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], words[0])
            name = words[2] if len(words) > 2 and words[1].upper() == "AS" else None
            stages.append(Stage(base, name))
        else:
            stages[-1].steps.append((instruction, rest))
    return args, stages


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), f"not exec form: {args}"
    return value


def env_of(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for args in stage.all("ENV"):
        key, _, value = args.partition("=")
        env[key.strip()] = value.strip()
    return env


DOCKERFILE = (ROOT / "Dockerfile").read_text()
ARGS, STAGES = parse_dockerfile(DOCKERFILE)
BUILD, FINAL = STAGES[0], STAGES[-1]


def test_it_is_two_stages_on_pythons_official_slim_image_and_the_last_has_no_compiler() -> None:
    assert len(STAGES) == 2 and BUILD.name == "build"
    for stage in STAGES:
        assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?", stage.base), stage.base
    compilers = re.compile(r"\b(gcc|g\+\+|clang|build-essential|make|cc|python3-dev|libc6-dev)\b")
    for stage in STAGES:  # the build stage installs wheels only, so neither stage has one
        for run in stage.all("RUN"):
            assert not compilers.search(run), run
            assert "apt-get install" not in run, run
    copied = [args for args in FINAL.all("COPY")]
    assert copied == ["--from=build /opt/escalation-bot /opt/escalation-bot"], "the final stage takes the venv alone"


def test_it_installs_from_the_lock_with_every_hash_checked_and_nothing_else() -> None:
    installs = [run for run in BUILD.all("RUN") if "pip install" in run]
    assert len(installs) == 2
    from_lock, project = installs
    assert all(flag in from_lock for flag in ("--require-hashes", "-r requirements.lock", "--only-binary=:all:"))
    # The project itself: from its sources alone, nothing fetched, its dependencies already there.
    assert all(flag in project for flag in ("--no-deps", "--no-index", "--no-build-isolation"))
    assert "requirements.lock" in BUILD.all("COPY")[0]


def test_its_command_is_the_clis_serve_and_every_env_it_sets_is_a_setting() -> None:
    command = exec_form(FINAL.all("CMD")[-1])
    assert command[0] == "escalation-bot"
    parsed = build_parser().parse_args(command[1:])  # exits (fails the test) if the CLI has no such command
    assert parsed.command == "serve"
    known = {name.upper() for name in Settings.model_fields}
    env = env_of(FINAL)
    assert env and set(env) <= known, set(env) - known
    for stage in STAGES:
        assert set(env_of(stage)) <= known
    Settings(_env_file=None, **{k.lower(): v for k, v in env.items()})  # type: ignore[arg-type]  # and valid ones


def test_it_runs_as_a_user_keeps_sqlite_in_a_volume_checks_health_and_stops_on_sigterm() -> None:
    users = FINAL.all("USER")
    assert users and users[-1] not in ("root", "0") and not users[-1].startswith("0:")
    database = env_of(FINAL)["DATABASE_URL"]
    sqlite_file = database.split(":///", 1)[1]
    volumes = [v for args in FINAL.all("VOLUME") for v in exec_form(args)]
    assert any(sqlite_file.startswith(v.rstrip("/") + "/") for v in volumes), (sqlite_file, volumes)
    assert "/healthz" in FINAL.all("HEALTHCHECK")[-1]
    assert FINAL.all("STOPSIGNAL") == ["SIGTERM"]


def dockerignored(path: str) -> bool:
    rules = [r.strip() for r in (ROOT / ".dockerignore").read_text().splitlines() if r.strip() and r[0] != "#"]
    ignored = False
    for rule in rules:
        negate = rule.startswith("!")
        pattern = rule.lstrip("!")
        if fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(path, pattern.removeprefix("**/")):
            ignored = not negate
    return ignored


def test_dockerignore_keeps_tests_benches_and_the_venv_out_and_what_is_copied_in() -> None:
    for path in ("tests", "bench", ".venv", ".git", ".env"):
        assert dockerignored(path), path
    for stage in STAGES:
        for args in stage.all("COPY"):
            if args.startswith("--from"):
                continue
            *sources, _dest = args.split()
            for source in sources:
                assert (ROOT / source).exists(), source
                assert not dockerignored(source), f"{source} is copied but .dockerignore leaves it out"


def test_the_build_stages_steps_make_a_bot_that_starts_answers_its_healthcheck_and_stops(tmp_path: Path) -> None:
    """Each RUN of the build stage, as written, with the image's paths mapped to this machine's."""
    venv, src, data = tmp_path / "opt-escalation-bot", tmp_path / "src", tmp_path / "data"
    src.mkdir()
    data.mkdir()

    def here(command: str) -> str:
        command = command.replace("/opt/escalation-bot", str(venv))
        command = re.sub(r"^python ", shlex.quote(sys.executable) + " ", command)
        # pip's download cache is kept here (the image wants none): the files are the lock's either way.
        return command.replace("--no-cache-dir ", "")

    for instruction, args in BUILD.steps:
        if instruction == "WORKDIR":
            assert args == "/src"
        elif instruction == "COPY":
            *sources, dest = args.split()
            for source in sources:
                target = src / dest if dest not in ("./", ".") else src / Path(source).name
                if (ROOT / source).is_dir():
                    shutil.copytree(ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy(ROOT / source, target)
        elif instruction == "RUN":
            done = subprocess.run(here(args), shell=True, cwd=src, capture_output=True, text=True, timeout=600)
            assert done.returncode == 0, f"{args}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        else:
            raise AssertionError(f"the build stage has a step this test does not know how to run: {instruction}")

    # What the final stage runs, with its environment (the volume mapped to a folder here).
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "TEAMS_", "DATABASE_", "LOG_"))}
    env.update({k: v.replace("/data/", f"{data}/") for k, v in env_of(FINAL).items()})
    env.update(SLACK_BOT_TOKEN="xoxb-image-test", SLACK_SIGNING_SECRET="s", SLACK_ESCALATION_CHANNEL="C0IMAGE")
    port = free_port()
    command = exec_form(FINAL.all("CMD")[-1])
    bot = subprocess.Popen(
        [str(venv / "bin" / command[0]), *command[1:], "--host", "127.0.0.1", "--port", str(port)],
        cwd=data,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        healthcheck = exec_form(re.sub(r"^(--\S+\s+)*CMD\s+", "", FINAL.all("HEALTHCHECK")[-1]))
        healthcheck = [here(healthcheck[0]), *(a.replace(":3000/", f":{port}/") for a in healthcheck[1:])]
        deadline = time.monotonic() + 60
        while subprocess.run(healthcheck, capture_output=True).returncode != 0:
            assert bot.poll() is None, bot.stdout.read() if bot.stdout else ""
            assert time.monotonic() < deadline, "never healthy"
            time.sleep(0.3)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as ready:
            assert ready.status == 200
        assert (data / "escalation-bot.db").exists()  # the SQLite file is in the volume
        bot.send_signal(getattr(signal, FINAL.all("STOPSIGNAL")[-1]))
        assert bot.wait(20) == 0
        log = bot.stdout.read() if bot.stdout else ""
        assert all(json.loads(line) for line in log.splitlines() if line.strip()), "LOG_FORMAT=json: one object a line"
    finally:
        if bot.poll() is None:
            bot.kill()


@pytest.mark.parametrize("lock", ["requirements.lock", "requirements-dev.lock"])
def test_the_lock_pins_what_pyproject_asks_for_with_hashes(lock: str) -> None:
    from tests.lockfile import check

    assert check(ROOT, lock) == []
