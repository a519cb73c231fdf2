"""The project's fixed shape: the Slack manifest, the layout, and the dependency direction."""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def test_manifest_is_a_complete_slack_app_manifest() -> None:
    raw = (ROOT / "manifest.yml").read_text()
    m = yaml.safe_load(raw)
    assert m["display_information"]["name"]
    assert m["features"]["bot_user"]["display_name"]
    commands = {c["command"]: c for c in m["features"]["slash_commands"]}
    assert commands["/escalate"]["url"].endswith("/slack/events")
    settings = m["settings"]
    assert settings["socket_mode_enabled"] is True
    assert settings["interactivity"]["is_enabled"] is True
    assert settings["interactivity"]["request_url"].endswith("/slack/events")
    assert settings["event_subscriptions"]["request_url"].endswith("/slack/events")
    assert settings["event_subscriptions"]["bot_events"]
    scopes = m["oauth_config"]["scopes"]["bot"]
    assert {"commands", "chat:write", "usergroups:read"} <= set(scopes)
    # A multi-workspace install asks for exactly the scopes the manifest lists.
    from bot.slack.oauth import BOT_SCOPES, REDIRECT_PATH

    assert sorted(BOT_SCOPES) == sorted(scopes)
    assert all(u.endswith(REDIRECT_PATH) for u in m["oauth_config"]["redirect_urls"])
    assert m["features"]["app_home"]["home_tab_enabled"] is True
    shortcuts = {s["callback_id"]: s for s in m["features"]["shortcuts"]}
    assert shortcuts["escalate_message"]["type"] == "message"
    assert {"app_home_opened", "app_uninstalled", "tokens_revoked"} <= set(
        settings["event_subscriptions"]["bot_events"]
    )
    # Every scope carries a comment saying why it is needed.
    lines = raw.splitlines()
    for scope in scopes:
        idx = next(i for i, line in enumerate(lines) if line.strip() == f"- {scope}")
        assert lines[idx - 1].strip().startswith("#"), f"scope {scope} has no comment"


def test_top_level_layout() -> None:
    for name in (
        "bot",
        "handoff",
        "storage",
        "tests",
        "bench",
        "manifest.yml",
        "pyproject.toml",
        ".env.example",
        "README.md",
        ".ci/run",
    ):
        assert (ROOT / name).exists(), name


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_engine_and_storage_never_import_a_chat_platform_or_the_bot() -> None:
    forbidden = ("slack_bolt", "slack_sdk", "microsoft_agents", "botbuilder", "bot")
    for package in ("handoff", "storage"):
        for path in (ROOT / package).rglob("*.py"):
            for name in _imports(path):
                assert name.split(".")[0] not in forbidden, f"{path.relative_to(ROOT)} imports {name}"


def test_storage_never_imports_the_engine() -> None:
    for path in (ROOT / "storage").rglob("*.py"):
        assert not any(n.split(".")[0] == "handoff" for n in _imports(path)), path
