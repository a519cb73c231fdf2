"""The Teams flow in Microsoft's own client emulator, the Microsoft 365 Agents Playground (npm
`@microsoft/m365agentsplayground`, pinned in tests/playground/package.json).

The playground is installed from npm, started on loopback with the project's
`.m365agentsplayground.yml` (Jo the junior, Ana and Ben the seniors, Lucy the lead, the team's
General channel for the cards and a Leads channel), and pointed at the real bot's `/api/messages`
(TEAMS_ALLOW_ANONYMOUS: the playground carries no tokens). The test drives it through the HTTP API
its own web page uses — send a message as a user, submit a card, invoke an Action.Execute, install
the app — and asserts on what the playground shows each person, read from the same websocket
stream its page reads. Nothing here is our fake: the connector the bot talks to is the playground's.

Without node or npm this fails (it does not skip): CI must run it.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from bot.sandbox.fake_slack import FakeSlack
from tests.conftest import bot_settings, start_bot

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent / "playground"
CONFIG = ROOT / ".m365agentsplayground.yml"
CLI = HERE / "node_modules" / "@microsoft" / "m365agentsplayground" / "cli.js"


def install_playground() -> None:
    """`npm ci` of the pinned playground, once per checkout."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed: the Agents Playground test needs Node.js 20 and npm")
    if CLI.exists():
        return
    done = subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund"], cwd=HERE, capture_output=True, text=True, timeout=300
    )
    if done.returncode != 0 or not CLI.exists():
        pytest.fail(f"npm ci of the Agents Playground failed: {done.stderr[-2000:]}")


def listening_addresses(port: int) -> set[str]:
    """The local addresses a TCP port listens on, from the kernel's tables (Linux)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                address, _, hex_port = local.partition(":")
                if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                    found.add(address)
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Seen:
    """What the playground's page shows: every message created or updated, per conversation."""

    events: list[dict[str, Any]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_for(self, what: Callable[[], Any], timeout: float = 15.0) -> Any:
        async with asyncio.timeout(timeout):
            while not (found := what()):
                self.changed.clear()
                await self.changed.wait()
        return found

    def messages(self, conversation: str) -> list[dict[str, Any]]:
        """The latest version of each message in a conversation (a thread is `conv;messageid=…`)."""
        latest: dict[str, dict[str, Any]] = {}
        for e in self.events:
            if e.get("actionConversationId") == conversation and "message" in e:
                latest[e["message"]["messageId"]] = e["message"]
        return list(latest.values())

    def texts(self, conversation: str) -> list[str]:
        return [unescape(m.get("text") or "") for m in self.messages(conversation)]

    def cards(self, conversation: str) -> list[dict[str, Any]]:
        return [m for m in self.messages(conversation) if m.get("attachments")]


def unescape(text: str) -> str:
    """Teams markdown as a person reads it: `Ana \\(senior\\)` shows as `Ana (senior)`."""
    return re.sub(r"\\(.)", r"\1", text)


def card_text(message: dict[str, Any]) -> str:
    out: list[str] = []

    def walk(el: Any) -> None:
        if isinstance(el, dict):
            out.extend(str(el[k]) for k in ("text", "title", "value") if isinstance(el.get(k), str))
            for v in el.values():
                walk(v)
        elif isinstance(el, list):
            for v in el:
                walk(v)

    walk(message.get("attachments"))
    return " ".join(" ".join(out).split())


def card_content(message: dict[str, Any]) -> dict[str, Any]:
    return message["attachments"][0]["content"]


@dataclass
class Playground:
    url: str
    http: aiohttp.ClientSession
    seen: Seen
    config: dict[str, Any]

    def user(self, name: str) -> str:
        people = [self.config["currentUser"], *self.config["users"]]
        return next(p["id"] for p in people if p["givenName"] == name)

    @property
    def personal(self) -> str:
        return str(self.config["personalChat"]["id"])

    @property
    def general(self) -> str:
        return str(self.config["team"]["id"])

    @property
    def leads(self) -> str:
        return str(self.config["team"]["channels"][0]["id"])

    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        async with self.http.post(self.url + path, json=body) as resp:
            text = await resp.text()
            assert resp.status == 200, f"{path}: {resp.status} {text}"
            return json.loads(text) if text else None

    async def install(self, conversation: str) -> None:
        await self._post(f"/_debug/conversation/{conversation}/installation", {})

    async def say(self, conversation: str, who: str, text: str, *, mention_bot: bool = False) -> None:
        body: dict[str, Any] = {"from": {"id": self.user(who)}, "text": text, "textFormat": "plain"}
        if mention_bot:
            at = f"<at>{self.config['bot']['name']}</at>"
            body["text"] = f"{at} {text}"
            body["mentions"] = [{"mentioned": {"id": self.config["bot"]["id"]}, "text": at}]
        await self._post(f"/_conversation/v1/conversations/{conversation}/messages", body)

    async def submit(self, conversation: str, who: str, card: dict[str, Any], values: dict[str, Any]) -> None:
        """Press an Action.Submit on a card, with the inputs filled in (the page merges them into the data)."""
        action = card_content(card)["actions"][0]
        value = {**action.get("data", {}), **values}
        body = {"conversation": {"id": conversation}, "from": {"id": self.user(who)}, "replyToId": card["messageId"]}
        await self._post("/_conversation/v1/submit", {**body, "value": value})

    async def execute(
        self, conversation: str, who: str, card: dict[str, Any], title: str, inputs: dict[str, Any] | None = None
    ) -> Any:
        """Press an Action.Execute button: the invoke's answer is what the page shows the presser."""
        action = next(a for a in card_content(card).get("actions", []) if a.get("title") == title)
        value = {
            "action": {"type": "Action.Execute", "verb": action["verb"], "data": {**action["data"], **(inputs or {})}}
        }
        body = {
            "name": "adaptiveCard/action",
            "value": {**value, "trigger": "manual"},
            "from": {"id": self.user(who)},
            "conversation": {"id": conversation},
            "replyToId": card["messageId"],
        }
        return await self._post("/_conversation/v1/invoke", body)


async def start_playground(port: int, bot_url: str, cwd: Path) -> tuple[asyncio.subprocess.Process, str]:
    """The playground on `port`, pointed at the bot; and the first line it printed."""
    env = {
        **os.environ,
        "M365_AGENTS_PLAYGROUND_CONFIG_PATH": str(CONFIG),
        "TEAMSAPPTESTER_BROWSER": "none",  # no browser to open here
        "NODE_OPTIONS": f"--require {HERE / 'loopback.js'}",
    }
    proc = await asyncio.create_subprocess_exec(
        "node",
        str(CLI),
        "--port",
        str(port),
        "--app-endpoint",
        f"{bot_url}/api/messages",
        "--channel-id",
        "msteams",
        "--service-url",
        f"http://127.0.0.1:{port}/_connector",
        "--disable-telemetry",
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(30):
            line = (await proc.stdout.readline()).decode()
    except TimeoutError:
        line = "(nothing within 30 s)"
    return proc, line.strip()


async def stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
        try:
            async with asyncio.timeout(10):
                await proc.wait()
        except TimeoutError:
            proc.kill()


@pytest.fixture
async def playground(tmp_path: Path, db_url: str, fake_slack: FakeSlack) -> AsyncIterator[Playground]:
    install_playground()
    config = yaml.safe_load(CONFIG.read_text())
    seniors = [u["aadObjectId"] for u in config["users"] if u["givenName"] in ("Ana", "Ben")]
    for _ in range(3):
        # The bot only answers the connector it is told of, so the playground's port is chosen first;
        # if something takes it before the playground starts, both start again on another.
        port = free_port()
        settings = bot_settings(
            db_url,
            fake_slack,
            teams_app_id=config["bot"]["id"],
            teams_tenant_id=config["tenantId"],
            teams_app_password=None,
            teams_allow_anonymous=True,
            teams_service_urls=[f"http://127.0.0.1:{port}"],
            teams_senior_user_ids=seniors,
        )
        runner, bot_url, _app = await start_bot(settings, fake_slack)
        proc, said = await start_playground(port, bot_url, tmp_path)
        if said == f"Listening on {port}":
            break
        await stop(proc)
        await runner.cleanup()
    else:
        pytest.fail(f"the playground did not start on the port it was given: it said {said!r}")
    http = aiohttp.ClientSession()
    reader: asyncio.Task[None] | None = None
    try:
        assert listening_addresses(port) == {"0100007F"}, "the playground must listen on 127.0.0.1 only"
        url = f"http://127.0.0.1:{port}"
        seen = Seen()
        ws = await http.ws_connect(url.replace("http", "ws", 1) + "/_ws_conversation/v1/conversations/stream")

        async def read() -> None:
            async for frame in ws:
                if frame.type == aiohttp.WSMsgType.TEXT:
                    seen.events.append(json.loads(frame.data))
                    seen.changed.set()

        reader = asyncio.create_task(read())
        yield Playground(url, http, seen, config)
    finally:
        if reader is not None:
            reader.cancel()
        await http.close()
        await stop(proc)
        await runner.cleanup()


async def test_the_whole_flow_in_the_agents_playground(playground: Playground) -> None:
    p, seen = playground, playground.seen

    # Installed for Jo: one greeting that says how to use it.
    await p.install(p.personal)
    await seen.wait_for(lambda: any("Hi!" in t for t in seen.texts(p.personal)))
    await asyncio.sleep(0.5)  # the playground announces an install twice
    assert len([t for t in seen.texts(p.personal) if "Hi!" in t]) == 1

    await p.say(p.personal, "Jo", "help")
    await seen.wait_for(lambda: any(t.startswith("Send me **escalate**") for t in seen.texts(p.personal)))

    # Lucy sets the channels up by mentioning the bot there.
    await p.say(p.general, "Lucy", "setup", mention_bot=True)
    await seen.wait_for(lambda: any("now gets the escalation cards" in t for t in everything(seen, p.general)))
    await p.say(p.leads, "Lucy", "setup leads", mention_bot=True)
    await seen.wait_for(lambda: any("weekly report" in t for t in everything(seen, p.leads)))

    # `escalate <summary>` opens the form with the summary filled in and the seniors by name.
    await p.say(p.personal, "Jo", "Escalate VPN drops every ten minutes ")
    form = (await seen.wait_for(lambda: seen.cards(p.personal)))[-1]
    inputs = {el["id"]: el for el in card_content(form)["body"] if "id" in el}
    assert inputs["summary"]["value"] == "VPN drops every ten minutes"
    assert [c["title"] for c in inputs["requested_senior"]["choices"]] == ["Ana (senior)", "Ben (senior)"]

    await p.submit(
        p.personal,
        "Jo",
        form,
        {"summary": "VPN drops every ten minutes", "severity": "P2", "tried": "Restarted the client"},
    )
    await seen.wait_for(lambda: "Escalated as ESC-1" in card_text(seen.cards(p.personal)[-1]))
    await seen.wait_for(lambda: any("ESC-1 is posted in the escalation channel" in t for t in seen.texts(p.personal)))

    # The card in the escalation channel, posted by the bot on its own (sendToConversation).
    card = (await seen.wait_for(lambda: seen.cards(p.general)))[-1]
    shown = card_text(card)
    assert "ESC-1" in shown and "VPN drops every ten minutes" in shown and "Restarted the client" in shown
    thread = f"{p.general};messageid={card['messageId']}"

    # Ana claims: her view has Resolve; everyone's card says she has it; Jo is told.
    answer = await p.execute(thread, "Ana", card, "Claim")
    assert answer["type"] == "application/vnd.microsoft.card.adaptive"
    assert [a["title"] for a in answer["value"]["actions"]][:2] == ["Resolve", "Release"]
    await seen.wait_for(lambda: "Claimed by Ana (senior)" in card_text(seen.cards(p.general)[-1]))
    await seen.wait_for(lambda: any("Ana (senior) claimed ESC-1" in t for t in seen.texts(thread)))
    await seen.wait_for(lambda: any("Ana (senior) picked up ESC-1" in t for t in seen.texts(p.personal)))

    # Ben is a moment late: he is told who has it, and nothing changes.
    late = await p.execute(thread, "Ben", card, "Claim")  # the card as it was when he looked
    assert unescape(late["value"]).startswith("Already claimed by Ana (senior)")

    # Ana resolves with a note, from the card as she sees it.
    holder_view = {"messageId": card["messageId"], "attachments": [{"content": answer["value"]}]}
    done = await p.execute(thread, "Ana", holder_view, "Resolve", {"note": "Pinned the MTU to 1400"})
    assert done["type"] == "application/vnd.microsoft.card.adaptive"
    await seen.wait_for(lambda: "Resolved by Ana (senior)" in card_text(seen.cards(p.general)[-1]))
    await seen.wait_for(lambda: any("Pinned the MTU to 1400" in t for t in seen.texts(p.personal)))


def everything(seen: Seen, channel: str) -> list[str]:
    """Texts in a channel and its threads (the bot answers a channel mention in its thread)."""
    return [
        unescape(e["message"].get("text") or "")
        for e in seen.events
        if "message" in e and str(e.get("actionConversationId", "")).split(";")[0] == channel
    ]
