"""The Teams harness: the bot with Teams on, a fake connector service on 127.0.0.1 receiving what
the bot sends, a simulator posting activities as Teams does, and the steps people take.
Registered from conftest through `pytest_plugins`, so every test module can use `teams`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.sandbox.fake_login import FakeLogin
from bot.sandbox.fake_slack import FakeSlack
from bot.sandbox.fake_teams import TENANT, FakeTeamsConnector, Posted
from bot.sandbox.teams_simulator import Person, TeamsSimulator
from bot.server import RUNTIME, Runtime
from tests.cardcheck import card_problems
from tests.conftest import bot_settings, start_bot

APP_ID = "00000000-0000-0000-0000-00000000b007"
ESC = "19:escalations@thread.tacv2"
LEADS = "19:leads@thread.tacv2"
LEAD = Person("aad-lead-lucy", "Lucy Lead")
JUNIOR = Person("aad-junior-jo", "Jo Junior")
SENIORS = [Person(f"aad-senior-{i:02d}", f"Senior {i:02d}") for i in range(40)]
ANA, BEN = SENIORS[0], SENIORS[1]
FORM = {
    "summary": "Exports fail for EU tenants",
    "severity": "P2",
    "customer": "Contoso · ticket 77",
    "tried": "Re-ran the export; cleared the cache.",
    "details": "HTTP 502 from /export",
}


@dataclass
class TeamsHarness:
    url: str
    app: web.Application
    connector: FakeTeamsConnector
    teams: TeamsSimulator

    @property
    def runtime(self) -> Runtime:
        return self.app[RUNTIME]


APP_SECRET = "app-secret-value-7e1"


@pytest.fixture
async def login(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeLogin]:
    """Microsoft's sign-in service: the keys Teams signs with, and the tokens the bot asks for."""
    fake = await FakeLogin(tenant=TENANT, app_id=APP_ID, app_secret=APP_SECRET).start()
    for name, value in fake.tls.trust_env().items():  # MSAL speaks to https authorities only
        monkeypatch.setenv(name, value)
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
def teams_overrides() -> dict[str, Any]:
    return {}


@pytest.fixture
async def teams(
    db_url: str, fake_slack: FakeSlack, login: FakeLogin, teams_overrides: dict[str, Any]
) -> AsyncIterator[TeamsHarness]:
    """The bot with Teams on, as in production: every request to it carries a Bot Framework token,
    every call it makes a token from Entra, and every card it sends is checked against the schema."""
    async with running_teams(db_url, fake_slack, login, **teams_overrides) as harness:
        yield harness


@asynccontextmanager
async def running_teams(
    db_url: str, fake_slack: FakeSlack, login: FakeLogin, *, anonymous: bool = False, **overrides: Any
) -> AsyncIterator[TeamsHarness]:
    """The bot with Teams on and a simulator of Teams in front of it. `anonymous`: local-development
    mode (TEAMS_ALLOW_ANONYMOUS, no secret), with neither side carrying tokens."""
    connector = await FakeTeamsConnector(login=None if anonymous else login, card_check=card_problems).start()
    if anonymous:
        overrides = {"teams_allow_anonymous": True, "teams_app_password": None, **overrides}
    settings = token_settings(db_url, fake_slack, connector, login, **overrides)
    runner, url, app = await start_bot(settings, fake_slack)
    session = aiohttp.ClientSession()
    sim = TeamsSimulator(url, connector, session=session, login=None if anonymous else login)
    try:
        yield TeamsHarness(url, app, connector, sim)
    finally:
        await session.close()
        await runner.cleanup()
        await connector.stop()


async def set_up(t: TeamsHarness) -> None:
    answer = await t.teams.say_in_channel(LEAD, ESC, "setup")
    assert answer.status in (200, 202), answer
    await t.connector.wait_for(lambda: any("escalation cards" in a.text for a in t.connector.activities))


async def open_form(t: TeamsHarness, who: Person = JUNIOR, text: str = "escalate") -> Posted:
    before = len(t.connector.activities)
    await t.teams.say_personal(who, text)
    found = await t.connector.wait_for(
        lambda: [a for a in t.connector.activities[before:] if a.card and a.card["actions"][0]["title"] == "Escalate"]
    )
    return found[-1]


async def escalate(t: TeamsHarness, who: Person = JUNIOR, **values: Any) -> Posted:
    form = await open_form(t, who)
    before = len(t.connector.cards_in(ESC))
    answer = await t.teams.submit_form(who, form, {**FORM, **values})
    assert answer.status in (200, 202), answer
    cards = await t.connector.wait_for(lambda: len(t.connector.cards_in(ESC)) > before and t.connector.cards_in(ESC))
    return cards[-1]


def texts(card: dict[str, Any]) -> str:
    out = []

    def walk(el: Any) -> None:
        if isinstance(el, dict):
            for k in ("text", "title"):
                if isinstance(el.get(k), str):
                    out.append(el[k])
            for v in el.values():
                walk(v)
        elif isinstance(el, list):
            for v in el:
                walk(v)

    walk(card)
    return "\n".join(out)


def token_settings(db_url: str, fake_slack: FakeSlack, connector: FakeTeamsConnector, login: Any, **more: Any) -> Any:
    """The bot's settings with Teams tokens required: incoming ones checked against `login`'s keys,
    outgoing ones fetched from it, and the fake connector the one allowed service URL."""
    values = {
        "teams_app_id": login.app_id,
        "teams_tenant_id": login.tenant,
        "teams_app_password": login.app_secret,
        "teams_allow_anonymous": False,
        "teams_service_urls": [connector.service_url],
        "teams_login_url": login.login_url,
        "teams_bot_framework_keys_url": login.bot_framework_keys_url,
    }
    return bot_settings(db_url, fake_slack, **{**values, **more})
