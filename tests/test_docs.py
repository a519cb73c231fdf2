"""The docs' commands, run: every `sh` block's command in README.md and docs/*.md that can run on a
test machine is run here as written (against a scratch SQLite database, or docker-compose reading
the stack), and must succeed. Commands that need what a test machine has not (root, a Docker
engine, a real host to install on) are named below, one by one, with why; any other program in a
block fails this test, so a new command in the docs is run or explicitly left out.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# Programs whose commands are not run here, and why.
NOT_RUN = {
    "python3": "sets up a virtualenv (CI does exactly this; the tests run inside it)",
    "cp": "copies a file in an operator's checkout",
    "$EDITOR": "an operator editing a file",
    "docker": "needs a Docker engine (tests/test_image.py runs the image's build steps instead)",
    "useradd": "needs root on a real host",
    "git": "clones from a server",
    "chown": "needs root on a real host",
    "sudo": "needs root on a real host",
    "systemctl": "needs a running systemd (the unit is checked with systemd-analyze below)",
    "cd": "changes directory in an operator's shell",
    "createdb": "makes a database on the operator's server",
    "(cd": "installs and runs Microsoft's Agents Playground (tests/test_playground.py drives it)",
    ".venv/bin/pytest": "the test suite itself",
    ".venv/bin/ruff": "the linter; .ci/run runs it",
}


def sh_commands(path: Path) -> list[str]:
    """Each command line of the file's ```sh blocks, continuations joined, comments dropped."""
    commands: list[str] = []
    for block in re.findall(r"```sh\n(.*?)```", path.read_text(), flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def program(command: str) -> tuple[dict[str, str], list[str]]:
    """The variables set before the command, and its words."""
    words = shlex.split(command, posix=True) if "$EDITOR" not in command else command.split()
    env: dict[str, str] = {}
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
        key, _, value = words.pop(0).partition("=")
        env[key] = value
    return env, words


def all_commands() -> list[tuple[str, str]]:
    return [(path.relative_to(ROOT).as_posix(), c) for path in DOCS for c in sh_commands(path)]


def test_every_program_in_the_docs_is_run_here_or_left_out_for_a_reason() -> None:
    unknown = [
        (where, command)
        for where, command in all_commands()
        if (words := program(command)[1])
        and words[0] not in NOT_RUN
        and not words[0].endswith("escalation-bot")
        and words[0] != "docker-compose"
    ]
    assert unknown == []
    assert any(program(c)[1][0].endswith("escalation-bot") for _, c in all_commands())


@pytest.fixture
def scratch(tmp_path: Path) -> dict[str, str]:
    """The environment the docs' escalation-bot commands run in: a scratch SQLite database with a
    workspace and the two dead messages (412 and 413) the docs send again."""
    import asyncio

    from sqlalchemy import insert

    from storage import migrate
    from storage.db import Database
    from storage.tables import outbox, workspaces

    url = f"sqlite+aiosqlite:///{tmp_path / 'docs.db'}"

    async def seed() -> None:
        db = Database(url)
        try:
            await migrate.upgrade(db)
            now = datetime.now(UTC)
            async with db.write() as conn:
                ws = {"id": 1, "platform": "slack", "external_id": "T0DOCS", "created_at": now}
                await conn.execute(insert(workspaces).values(**ws))
                for row in (412, 413):
                    await conn.execute(
                        insert(outbox).values(
                            id=row,
                            workspace_id=1,
                            kind="notify_requester",
                            payload={},
                            dedupe_key=f"docs-{row}",
                            status="dead",
                            attempts=10,
                            next_attempt_at=now,
                            created_at=now,
                            last_error="not_in_channel",
                        )
                    )
        finally:
            await db.dispose()

    asyncio.run(seed())
    return {
        "DATABASE_URL": url,
        "SLACK_BOT_TOKEN": "xoxb-docs-test",
        "SLACK_SIGNING_SECRET": "docs-test-secret",
        "SLACK_ESCALATION_CHANNEL": "C0DOCS",
        "TEAMS_APP_ID": "0e5b1c9a-2f4d-4c6e-9a8b-7d6c5b4a3f21",
        "LOG_LEVEL": "WARNING",
    }


def base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "TEAMS_", "DATABASE_"))}


def serve_and_stop(args: list[str], env: dict[str, str], cwd: Path) -> None:
    """`serve` as the docs start it, on a free loopback port instead of the one written (a test
    machine's ports are shared): it must come up healthy and stop cleanly on SIGTERM."""
    import time
    import urllib.request

    from bot.sandbox.process import free_port

    port = str(free_port())
    args = [port if i and args[i - 1] == "--port" else a for i, a in enumerate(args)]
    if "--port" not in args:
        args += ["--port", port]
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", *args], env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (proc.stdout.read() if proc.stdout else b"").decode()[-1500:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "serve never became healthy"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.parametrize("where", [p.relative_to(ROOT).as_posix() for p in DOCS])
def test_the_docs_commands_that_can_run_here_succeed(where: str, scratch: dict[str, str], tmp_path: Path) -> None:
    ran = 0
    for command in sh_commands(ROOT / where):
        env, words = program(command)
        if words[0].endswith("escalation-bot") and words[1] == "serve":
            serve_and_stop(words[1:], base_env() | scratch | env, tmp_path)
            ran += 1
            continue
        if words[0].endswith("escalation-bot"):
            argv = [sys.executable, "-m", "bot.cli", *words[1:]]
            cwd = tmp_path
        elif words[0] == "docker-compose" and "config" in words:
            binary = shutil.which("docker-compose")
            assert binary, "docker-compose is not installed (.ci/run installs it)"
            argv, cwd = [binary, *words[1:]], ROOT
        else:
            continue
        full = base_env() | scratch | env
        done = subprocess.run(argv, env=full, cwd=cwd, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{where}: `{command}` exited {done.returncode}:\n{done.stderr[-1500:]}"
        ran += 1
    if where == "docs/operations.md":
        assert ran >= 8  # the guide's own examples really ran


def test_the_systemd_unit_is_one_systemd_accepts(tmp_path: Path) -> None:
    """`systemd-analyze verify` on deploy/systemd's unit, its install folder mapped to one where the
    bot is installed (this virtualenv): no warning, no error."""
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is not installed (Debian: systemd; .ci/run installs it)"
    home = tmp_path / "srv"
    (home / ".venv" / "bin").mkdir(parents=True)
    (home / ".venv" / "bin" / "escalation-bot").symlink_to(Path(sys.executable).parent / "escalation-bot")
    unit = (ROOT / "deploy" / "systemd" / "escalation-bot@.service").read_text()
    assert "serve --no-migrate" in unit and "KillSignal=SIGTERM" in unit
    instance = tmp_path / "escalation-bot@3001.service"
    instance.write_text(unit.replace("/srv/escalation-bot", str(home)))
    done = subprocess.run([analyze, "verify", str(instance)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stderr.strip() == "" and done.stdout.strip() == "", done.stderr


def test_the_readme_fits_in_a_few_screens_and_links_the_guides() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 270
    for guide in ("docs/operations.md", "docs/performance.md", "docs/security.md"):
        assert f"]({guide})" in readme, guide
    assert readme.splitlines()[0] == "# escalation-bot"
