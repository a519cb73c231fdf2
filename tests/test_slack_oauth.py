"""Multi-workspace install: Bolt's OAuth flow end to end against a fake oauth.v2.access, two
workspaces side by side with their own settings and tokens, uninstall and token revocation."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore
from sqlalchemy import MetaData, inspect

from bot.sandbox.fake_slack import FakeSlack
from bot.sandbox.simulator import SlackSimulator
from storage.db import Database
from tests.conftest import SECRET, Bot, bot_settings, start_bot
from tests.helpers import FORM, card_text

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


async def test_two_workspaces_install_configure_and_escalate_side_by_side(multi: Multi) -> None:
    m, fake = multi, multi.bot.fake
    store = m.bot.runtime.slack_app.installation_store  # type: ignore[union-attr]
    for team in (ALPHA, BETA):
        found = await store.async_find_bot(enterprise_id=None, team_id=team)
        assert found is not None and found.bot_token == m.tokens[team]

    # Installed but not configured yet: the junior is told what is missing, nothing is lost.
    answer = await m.sims[ALPHA].command(JUNIOR, "")
    assert "no escalation channel yet" in answer.json()["text"]

    await configure(m, ALPHA, "C0ALPHAESC", [SENIOR])
    await configure(m, BETA, "C0BETAESC", ["U0BETASENIOR"])
    a_card = await escalate_in(m, ALPHA, "C0ALPHAESC", "Alpha's problem")
    b_card = await escalate_in(m, BETA, "C0BETAESC", "Beta's problem")
    assert "ESC-1" in card_text(a_card) and "ESC-1" in card_text(b_card)  # numbered per workspace
    posts = {c.args["channel"]: c.token for c in fake.calls_to("chat.postMessage") if c.args["channel"][0] == "C"}
    assert posts == {"C0ALPHAESC": m.tokens[ALPHA], "C0BETAESC": m.tokens[BETA]}  # each with its own token

    # Each workspace's seniors are its own.
    before = len(fake.replies_to(SENIOR))
    assert (await m.sims[BETA].click(SENIOR, b_card, "claim")).status == 200
    reply = await fake.wait_for(lambda: len(fake.replies_to(SENIOR)) > before and fake.replies_to(SENIOR))
    assert "Only seniors can claim" in reply[-1].text
    assert (await m.sims[ALPHA].click(SENIOR, a_card, "claim")).status == 200
    await fake.wait_for(lambda: "Claimed by" in card_text(a_card))
    assert "Claimed by" not in card_text(b_card)


@pytest.mark.parametrize("how", ["app_uninstalled", "tokens_revoked"])
async def test_uninstall_or_revocation_removes_that_workspaces_tokens_only(multi: Multi, how: str) -> None:
    m, fake = multi, multi.bot.fake
    await configure(m, ALPHA, "C0ALPHAESC", [SENIOR])
    await configure(m, BETA, "C0BETAESC", [SENIOR])
    event: dict[str, Any] = {"type": how}
    if how == "tokens_revoked":
        event["tokens"] = {"oauth": [], "bot": [f"UBOT{BETA}"]}
    fake.revoke(BETA)
    assert (await m.sims[BETA].event(event)).status == 200
    store = m.bot.runtime.slack_app.installation_store  # type: ignore[union-attr]
    for _ in range(100):  # the event is acked first and handled just after
        if await store.async_find_bot(enterprise_id=None, team_id=BETA) is None:
            break
        await asyncio.sleep(0.05)
    assert await store.async_find_bot(enterprise_id=None, team_id=BETA) is None
    assert await store.async_find_bot(enterprise_id=None, team_id=ALPHA) is not None
    # Alpha carries on as before.
    card = await escalate_in(m, ALPHA, "C0ALPHAESC", "Still works in Alpha")
    assert "Still works in Alpha" in card_text(card)
    # Beta's requests are no longer served with a token it revoked: no form opens there.
    calls = len(fake.calls)
    answer = await m.sims[BETA].command(JUNIOR, "")
    assert answer.status == 200
    told = await fake.wait_for(lambda: [r.text for r in fake.replies_to(JUNIOR)])
    assert "isn't installed in this workspace any more" in told[-1]
    assert not [c for c in fake.calls[calls:] if c.method == "views.open"]


async def test_single_workspace_mode_needs_no_install(bot: Bot) -> None:
    """SLACK_BOT_TOKEN alone: no install routes, and the flow works as it always did."""
    async with aiohttp.ClientSession() as s, s.get(bot.url + "/slack/install") as r:
        assert r.status in (404, 405)
    assert bot.runtime.slack_app is not None and bot.runtime.slack_app.installation_store is None


async def test_oauth_tables_are_exactly_what_slack_sdk_expects(db: Database) -> None:
    expected = MetaData()
    SQLAlchemyInstallationStore.build_installations_table(expected, "slack_installations")
    SQLAlchemyInstallationStore.build_bots_table(expected, "slack_bots")
    SQLAlchemyOAuthStateStore.build_oauth_states_table(expected, "slack_oauth_states")

    def reflect(conn: Any) -> dict[str, dict[str, tuple[bool, str]]]:
        insp = inspect(conn)
        return {
            t: {c["name"]: (c["nullable"], type(c["type"]).__name__) for c in insp.get_columns(t)}
            for t in expected.tables
        }

    async with db.read() as conn:
        actual = await conn.run_sync(reflect)
    for name, table in expected.tables.items():
        assert set(actual[name]) == {c.name for c in table.columns}, name
        for c in table.columns:
            assert actual[name][c.name][0] == c.nullable, (name, c.name)
