"""Two Slack workspaces installed through the OAuth flow, on one bot: the `multi` fixture
(registered from conftest through `pytest_plugins`) and the steps tests take with it."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from bot.sandbox.fake_slack import FakeSlack
from bot.sandbox.simulator import SlackSimulator
from tests.conftest import SECRET, Bot, bot_settings, start_bot
from tests.helpers import FORM

CLIENT_ID, CLIENT_SECRET = "1111.2222", "oauth-client-secret-9f3a"
ALPHA, BETA = "T0ALPHA", "T0BETA"
ADMIN, JUNIOR, SENIOR = "U0ADMIN", "U0JUNIOR", "U0SENIOR"


@dataclass
class Multi:
    bot: Bot
    sims: dict[str, SlackSimulator]
    tokens: dict[str, str]


async def install(url: str, fake: FakeSlack, team: str) -> str:
    """What a workspace admin does: open the install page, approve, come back through the redirect."""
    async with aiohttp.ClientSession() as browser:
        async with browser.get(url + "/slack/install") as page:
            assert page.status == 200
            html = await page.text()
            cookie = page.headers.getone("Set-Cookie").split(";", 1)[0]
        authorize = re.search(r'href="(https://slack.com/oauth/v2/authorize[^"]+)"', html)
        assert authorize is not None and "oauth/v2/authorize" in authorize.group(1)
        state = re.search(r"state=([^&\"]+)", authorize.group(1).replace("&amp;", "&"))
        assert state is not None and f"client_id={CLIENT_ID}" in authorize.group(1).replace("&amp;", "&")
        token = fake.grant(f"code-{team}", team, team_name=f"{team} Support", installer=ADMIN)
        redirect = f"{url}/slack/oauth_redirect?code=code-{team}&state={state.group(1)}"
        async with browser.get(redirect, headers={"Cookie": cookie}) as done:
            assert done.status == 200, await done.text()
    return token


@pytest.fixture
async def multi(db_url: str) -> AsyncIterator[Multi]:
    fake = await FakeSlack(team_id="T0NOBODY", bot_token="xoxb-unused").start()
    fake.oauth_client = (CLIENT_ID, CLIENT_SECRET)
    fake.add_channel("C0ALPHAESC", "escalations", team=ALPHA)
    fake.add_channel("C0BETAESC", "escalations", team=BETA)
    fake.users.update({ADMIN: "Ada", JUNIOR: "Jun", SENIOR: "Sam"})
    fake.admins.add(ADMIN)
    settings = bot_settings(
        db_url,
        fake,
        slack_bot_token=None,
        slack_client_id=CLIENT_ID,
        slack_client_secret=CLIENT_SECRET,
        slack_escalation_channel=None,
        slack_senior_user_ids=[],
    )
    runner, url, app = await start_bot(settings, fake)
    try:
        tokens = {team: await install(url, fake, team) for team in (ALPHA, BETA)}
        sims = {team: SlackSimulator(url, SECRET, fake=fake, team_id=team) for team in (ALPHA, BETA)}
        for sim in sims.values():
            await sim.__aenter__()
        try:
            yield Multi(Bot(url=url, app=app, fake=fake, slack=sims[ALPHA]), sims, tokens)
        finally:
            for sim in sims.values():
                await sim.__aexit__(None, None, None)
    finally:
        await runner.cleanup()
        await fake.stop()


async def configure(m: Multi, team: str, channel: str, seniors: list[str]) -> None:
    sim, fake = m.sims[team], m.bot.fake
    before = len(fake.views_for(ADMIN))
    assert (await sim.command(ADMIN, "config")).status == 200
    modal = (await fake.wait_for(lambda: len(fake.views_for(ADMIN)) > before and fake.views_for(ADMIN)))[-1]
    answer = await sim.submit(ADMIN, modal, {"escalation_channel": channel, "senior_user_ids": seniors})
    assert answer.status == 200 and not answer.body, answer.body


async def escalate_in(m: Multi, team: str, channel: str, summary: str) -> Any:
    sim, fake = m.sims[team], m.bot.fake
    before_views, before_cards = len(fake.views_for(JUNIOR)), len(fake.channel_messages(channel))
    assert (await sim.command(JUNIOR, "")).status == 200
    form = (await fake.wait_for(lambda: len(fake.views_for(JUNIOR)) > before_views and fake.views_for(JUNIOR)))[-1]
    answer = await sim.submit(JUNIOR, form, {**FORM, "summary": summary})
    assert answer.status == 200 and not answer.body, answer.body
    cards = await fake.wait_for(
        lambda: len(fake.channel_messages(channel)) > before_cards and fake.channel_messages(channel)
    )
    return cards[-1]
