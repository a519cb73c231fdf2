"""Start-up settings and the command line, run as an operator would run them."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import Settings

ROOT = Path(__file__).resolve().parent.parent


def run(
    args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "TEAMS_", "DATABASE_URL", "LOG_"))}
    clean.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args], cwd=cwd, env=clean, capture_output=True, text=True, timeout=timeout
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, "SLACK_SIGNING_SECRET"),
        ({"SLACK_SIGNING_SECRET": "s3cret-value"}, "SLACK_BOT_TOKEN"),
        ({"SLACK_SIGNING_SECRET": "s3cret-value", "SLACK_BOT_TOKEN": "xoxb-1"}, "SLACK_ESCALATION_CHANNEL"),
        ({"SLACK_BOT_TOKEN": "not-a-token-value"}, "SLACK_BOT_TOKEN"),
        ({"SLACK_SIGNING_SECRET": "s3cret-value", "SLACK_CLIENT_ID": "1111.2222"}, "SLACK_CLIENT_SECRET"),
        ({"REMINDER_MINUTES": "soon"}, "REMINDER_MINUTES"),
        ({"TIMEZONE": "Mars/Olympus_Mons"}, "TIMEZONE"),
        ({"DATABASE_URL": "mysql://x@y/z"}, "DATABASE_URL"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
        ({"REPORT_TIME": "nine"}, "REPORT_TIME"),
    ],
)
def test_bad_or_missing_setting_stops_serve_with_one_line_and_status_2(
    tmp_path: Path, env: dict[str, str], named: str
) -> None:
    result = run(["serve", "--port", "0"], tmp_path, env)
    assert result.returncode == 2
    line = one_line(result)
    assert line.startswith(f"escalation-bot: {named}:"), line
    for value in env.values():  # a setting's value (maybe a secret) is never echoed
        if len(value) > 6:
            assert value not in line


def test_env_example_loads_and_only_the_missing_values_are_named(tmp_path: Path) -> None:
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")
    result = run(["serve"], tmp_path)
    assert result.returncode == 2
    assert one_line(result).startswith("escalation-bot: SLACK_SIGNING_SECRET:")


def test_db_upgrade_creates_the_schema_on_sqlite_by_default(tmp_path: Path) -> None:
    result = run(["db", "upgrade"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "database at revision" in result.stdout
    assert (tmp_path / "escalation-bot.db").exists()
    again = run(["db", "current"], tmp_path)
    assert again.returncode == 0 and again.stdout == result.stdout


def test_db_upgrade_on_an_unreachable_database_says_so(tmp_path: Path) -> None:
    result = run(["db", "upgrade"], tmp_path, {"DATABASE_URL": "postgresql+asyncpg://nobody@127.0.0.1:9/none"})
    assert result.returncode == 1
    assert one_line(result).startswith("escalation-bot: DATABASE_URL: cannot reach the database")


def test_demo_runs_the_whole_flow_offline(tmp_path: Path) -> None:
    result = run(["demo"], tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "ESC-1" in out
    assert out.count("Already claimed by @") == 2  # three seniors, one winner, two told who won
    assert "You already have this one." in out
    assert "Resolved by @" in out and "picked up ESC-1" in out
    assert "claim_conflict" in out
    # The second escalation, from a message: its thread copied and the first one's fix beside it.
    assert "What's been tried in the thread" in out and "I re-sent their SSO invite" in out
    assert "Similar resolved escalations" in out and "set NameID format to emailAddress" in out
    assert result.stderr == ""
    assert list(tmp_path.iterdir()) == []  # nothing left behind


def test_the_teams_demo_runs_the_teams_flow_offline(tmp_path: Path) -> None:
    result = run(["demo", "--teams"], tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "gets the escalation cards" in out and "Exports fail for EU tenants" in out
    assert out.count("is told: Already claimed by") == 1  # two seniors, one winner, one told who won
    assert "Resolved by" in out and "was resolved by" in out and "\\(" not in out
    assert "Escalated from a message" in out and "Similar resolved escalations" in out
    assert "Open, waiting for a senior (1)" in out
    assert result.stderr == ""
    assert list(tmp_path.iterdir()) == []


def _documented_defaults() -> list[tuple[str, str, str]]:
    """(where, SETTING, value) for every default README's settings table and .env.example give."""
    found: list[tuple[str, str, str]] = []
    for line in (ROOT / "README.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`") or not cells[1].startswith("`"):
            continue
        names, values = re.findall(r"`([A-Z_]+)`", cells[0]), re.findall(r"`([^`]+)`", cells[1])
        if len(names) == len(values):
            found += [("README.md", n, v) for n, v in zip(names, values, strict=True)]
    for line in (ROOT / ".env.example").read_text().splitlines():
        m = re.fullmatch(r"#? ?([A-Z_]+)=(.+)", line.strip())
        if m:
            found.append((".env.example", m.group(1), m.group(2)))
    return found


def test_the_defaults_readme_and_env_example_give_are_the_ones_the_bot_uses(monkeypatch: pytest.MonkeyPatch) -> None:
    # An operator sizes and tunes from these two files: a default changed in the code alone would
    # mislead them (DATABASE_POOL_SIZE above all: replicas x it must fit the server's max_connections).
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    documented = _documented_defaults()
    assert {n for _, n, _ in documented} >= {"DATABASE_POOL_SIZE", "OUTBOX_POLL_SECONDS", "REPORT_TIME"}
    wrong = [
        (where, name, value)
        for where, name, value in documented
        if getattr(Settings(_env_file=None, **{name.lower(): value}), name.lower()) != getattr(defaults, name.lower())  # type: ignore[arg-type]
    ]
    assert wrong == []


def test_every_setting_is_in_the_readmes_table_and_in_env_example() -> None:
    """An operator configures from these two files: a setting missing from either is one they can't find."""
    readme = (ROOT / "README.md").read_text()
    table = "\n".join(line for line in readme.splitlines() if line.startswith("| `"))
    example = (ROOT / ".env.example").read_text()
    missing = [
        (name.upper(), where)
        for name in Settings.model_fields
        for where, text in (("README.md", table), (".env.example", example))
        if not re.search(rf"\b{name.upper()}\b", text)
    ]
    assert missing == []
