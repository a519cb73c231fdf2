"""The leads' page signed in from Teams: `dashboard` to the bot in a personal chat answers a lead with
a one-time link (through the fake connector, as Teams would show it); in a channel it is refused, to
anyone else it says who can; and the page's walls hold for a Teams session as for a Slack one:
reused and expired links, no session, another workspace, a missing CSRF token, a queue's lead
demoted after signing in. `baseline N` records a measured handoff. SQLite and PostgreSQL."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
import time_machine

from bot.sandbox.fake_teams import TENANT
from bot.sandbox.teams_simulator import Person
from handoff.domain import Draft, Queue, Severity
from handoff.service import utcnow
from tests.teams import ANA, BEN, ESC, LEAD, TeamsHarness, escalate, set_up

PUBLIC = "http://leads.example.test"
pytestmark = pytest.mark.parametrize(
    "teams_overrides", [{"public_url": PUBLIC, "teams_lead_user_ids": [LEAD.aad], "timezone": "Europe/Berlin"}]
)


async def answer(t: TeamsHarness, who: Person, text: str) -> str:
    """What the bot answers `who` in their personal chat with it."""
    chat = f"a:personal-{who.aad}"
    before = len(t.connector.in_conversation(chat))
    assert (await t.teams.say_personal(who, text)).status in (200, 202)
    found = await t.connector.wait_for(lambda: t.connector.in_conversation(chat)[before:])
    return found[-1].text


def link_path(reply: str) -> str:
    found = re.search(r"\[Open the leads' page\]\(" + re.escape(PUBLIC) + r"(/dashboard/signin/[\w-]+)\)", reply)
    assert found, reply
    return found.group(1)


@dataclass
class Opened:
    status: int
    headers: Any
    text: str


async def open_link(t: TeamsHarness, path: str) -> tuple[aiohttp.ClientSession, Opened]:
    """A new browser (a cookie jar) that followed the link, and what it got."""
    browser = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with browser.get(t.url + path, allow_redirects=False) as r:
        return browser, Opened(r.status, r.headers, await r.text())


async def signed_in(t: TeamsHarness, who: Person = LEAD) -> aiohttp.ClientSession:
    browser, r = await open_link(t, link_path(await answer(t, who, "dashboard")))
    assert r.status == 303 and r.headers["Location"] == "/dashboard/"
    return browser


async def get(browser: aiohttp.ClientSession, t: TeamsHarness, path: str) -> tuple[int, str]:
    async with browser.get(t.url + path, allow_redirects=False) as r:
        return r.status, await r.text()


def figure(page: str, name: str) -> str:
    found = re.search(rf'data-figure="{name}" data-value="([^"]*)"', page)
    assert found, name
    return found.group(1)


async def test_a_teams_lead_gets_a_one_time_link_in_a_personal_chat_and_sees_the_tenants_figures(
    teams: TeamsHarness,
) -> None:
    t = teams
    await set_up(t)
    await escalate(t, summary="Exports fail for EU tenants", customer="Contoso")
    await escalate(t, summary="Payments down for everyone", severity="P1")
    reply = await answer(t, LEAD, "dashboard")
    assert "works once, for the next 10 minutes" in reply
    path = link_path(reply)
    browser, r = await open_link(t, path)
    async with browser:
        assert r.status == 303
        assert re.search(
            r"eb_dashboard=[^;]+; HttpOnly; Max-Age=28\d\d\d; Path=/dashboard; SameSite=Lax", r.headers["Set-Cookie"]
        )
        status, page = await get(browser, t, "/dashboard/")
        assert status == 200 and figure(page, "opened") == "2" and figure(page, "still_open") == "2"
        _status, data = await get(browser, t, "/dashboard/export.csv?text=1")
        assert "Exports fail for EU tenants" in data and "Contoso" in data
    again, r = await open_link(t, path)
    async with again:
        assert r.status == 403 and "Set-Cookie" not in r.headers  # used once already


async def test_in_a_channel_the_link_is_not_given_and_others_are_told_who_can(teams: TeamsHarness) -> None:
    t = teams
    await set_up(t)
    before = len(t.connector.in_conversation(ESC))
    assert (await t.teams.say_in_channel(LEAD, ESC, "dashboard")).status in (200, 202)
    said = await t.connector.wait_for(lambda: t.connector.in_conversation(ESC)[before:])
    assert "in a personal chat" in said[-1].text
    assert not any("signin" in a.text for a in t.connector.activities)  # a channel's link would be everyone's
    refused = await answer(t, ANA, "dashboard")
    assert refused == (
        "Only leads can do that here: the leads in TEAMS_LEAD_USER_IDS, and each queue's leads (for that queue)."
    )
    assert "Only leads" in await answer(t, ANA, "baseline 25")


async def test_walls_hold_for_a_teams_session(teams: TeamsHarness) -> None:
    t = teams
    await set_up(t)
    await escalate(t, summary="Exports fail for EU tenants")
    service = t.runtime.service
    other = await service.workspace_id("slack", "T0OTHERCO")  # another tenant on the same bot
    draft = Draft(summary="Their secret outage", severity=Severity.P1, tried="x", customer="Initech")
    await service.escalate(other, "U0THEIRS", draft, key="other-1")
    path = link_path(await answer(t, LEAD, "dashboard"))
    with time_machine.travel(utcnow() + timedelta(minutes=11), tick=True):
        late, r = await open_link(t, path)
        async with late:
            assert r.status == 403 and "does not work" in r.text
    async with aiohttp.ClientSession() as stranger:
        assert (await get(stranger, t, "/dashboard/"))[0] == 401
        assert (await get(stranger, t, "/dashboard/export.csv?period=13w"))[0] == 401
    browser = await signed_in(t)
    async with browser:
        status, page = await get(browser, t, "/dashboard/?period=13w")
        assert status == 200 and figure(page, "opened") == "1" and "Initech" not in page
        _status, data = await get(browser, t, "/dashboard/export.csv?period=13w&text=1")
        assert "Exports fail" in data and "secret outage" not in data and "Initech" not in data
        async with browser.post(t.url + "/dashboard/baseline", data={"minutes": "25"}, allow_redirects=False) as r:
            assert r.status == 403  # no CSRF token
    said = await answer(t, LEAD, "baseline 25")
    assert said.startswith("Recorded: a handoff without the bot took 25 min.") and "4 more" in said


async def test_a_queues_lead_demoted_after_signing_in_is_refused_at_the_next_request(teams: TeamsHarness) -> None:
    t = teams
    await set_up(t)
    service = t.runtime.service
    ws = await service.workspace_id("teams", TENANT)
    billing = await service.add_queue(
        ws, Queue(id=0, workspace_id=ws, name="Billing", is_default=False, lead_user_ids=(BEN.aad,))
    )
    assert billing is not None
    browser = await signed_in(t, BEN)
    async with browser:
        status, page = await get(browser, t, "/dashboard/?queue=all")
        assert status == 200 and "Escalations · This week · Billing" in page and "All queues" not in page
        assert await service.edit_queue(ws, replace(billing, lead_user_ids=(ANA.aad,)))
        status, page = await get(browser, t, "/dashboard/")
        assert status == 403 and "not a lead here any more" in page
        assert (await get(browser, t, "/dashboard/"))[0] == 401
