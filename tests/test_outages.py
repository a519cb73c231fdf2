"""The database goes away while people are working: each of them gets a clear answer, nothing they
did is lost, and the same process carries on when it is back. The database is a PostgreSQL server
of the test's own (tests/private_pg.py), stopped and started under the running bot."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import asyncpg
import pytest

from bot.sandbox.fake_login import FakeLogin
from bot.sandbox.fake_slack import FakeSlack
from bot.sandbox.fake_teams import FakeTeamsConnector
from bot.sandbox.simulator import SlackSimulator, button_value
from bot.sandbox.teams_simulator import TeamsSimulator
from tests.cardcheck import card_problems
from tests.conftest import ESC_CHANNEL, JUNIOR, SECRET, SENIORS, TEAM, Bot, start_bot
from tests.helpers import FORM, card_text, escalate, eventually, settle
from tests.helpers import open_form as open_slack_form
from tests.private_pg import PrivatePostgres, private_postgres
from tests.teams import ANA as TEAMS_ANA
from tests.teams import FORM as TEAMS_FORM
from tests.teams import JUNIOR as TEAMS_JUNIOR
from tests.teams import TeamsHarness, open_form, set_up, texts, token_settings
from tests.teams import escalate as teams_escalate

ANA = SENIORS[0]
TRY_AGAIN = "I couldn't reach my database just now, so nothing changed. Please try again in a moment."
PRESS_AGAIN = "press the button again"


@dataclass
class Outage:
    server: PrivatePostgres

    async def begin(self) -> None:
        await asyncio.to_thread(self.server.stop)

    async def end(self) -> None:
        await asyncio.to_thread(self.server.start)


async def _database(server: PrivatePostgres) -> str:
    admin = await asyncpg.connect(host="127.0.0.1", port=server.port, user="postgres", database="postgres")
    try:
        await admin.execute("CREATE DATABASE escalations")
    finally:
        await admin.close()
    return server.url.rsplit("/", 1)[0] + "/escalations"


@pytest.fixture
async def own_postgres() -> AsyncIterator[PrivatePostgres]:
    with private_postgres() as server:
        yield server


@pytest.fixture
async def slack_bot(own_postgres: PrivatePostgres, fake_slack: FakeSlack) -> AsyncIterator[tuple[Bot, Outage]]:
    from tests.conftest import bot_settings

    url = await _database(own_postgres)
    runner, bot_url, app = await start_bot(bot_settings(url, fake_slack), fake_slack)
    try:
        async with SlackSimulator(bot_url, SECRET, fake=fake_slack, team_id=TEAM) as sim:
            yield Bot(url=bot_url, app=app, fake=fake_slack, slack=sim), Outage(own_postgres)
    finally:
        await runner.cleanup()


async def test_a_resolve_click_during_an_outage_says_try_again_then_works(slack_bot: tuple[Bot, Outage]) -> None:
    bot, outage = slack_bot
    card = await escalate(bot)
    assert (await bot.slack.click(ANA, card, "claim", value=button_value(card, "claim"))).status == 200
    await bot.fake.wait_for(lambda: "Claimed by" in card_text(card))
    await outage.begin()
    try:
        before = len(bot.fake.replies_to(ANA))
        assert (await bot.slack.click(ANA, card, "resolve")).status == 200
        told = await bot.fake.wait_for(lambda: bot.fake.replies_to(ANA)[before:])
        assert told[0].text == TRY_AGAIN
        assert not [v for v in bot.fake.views_for(ANA) if v.get("callback_id") == "resolve_note"]
    finally:
        await outage.end()
    assert (await bot.slack.click(ANA, card, "resolve")).status == 200
    form = await bot.fake.wait_for(
        lambda: [v for v in bot.fake.views_for(ANA) if v.get("callback_id") == "resolve_note"]
    )
    assert form


async def test_the_resolve_and_settings_forms_stay_open_and_save_when_pressed_again(
    slack_bot: tuple[Bot, Outage],
) -> None:
    bot, outage = slack_bot
    bot.fake.users.update({"U0ADMIN": "Ada"})
    bot.fake.admins.add("U0ADMIN")
    card = await escalate(bot)
    await bot.slack.click(ANA, card, "claim", value=button_value(card, "claim"))
    await bot.fake.wait_for(lambda: "Claimed by" in card_text(card))
    await bot.slack.click(ANA, card, "resolve")
    resolve_form = (await bot.fake.wait_for(lambda: bot.fake.views_for(ANA)))[-1]
    await bot.slack.command("U0ADMIN", "config")
    config_form = (await bot.fake.wait_for(lambda: bot.fake.views_for("U0ADMIN")))[-1]
    await outage.begin()
    try:
        resolved = await bot.slack.submit(ANA, resolve_form, {"note": "Rotated the SAML certificate."})
        assert resolved.json()["response_action"] == "errors" and PRESS_AGAIN in resolved.json()["errors"]["note"]
        saved = await bot.slack.submit("U0ADMIN", config_form, {"escalation_channel": "C0NEWESC"})
        assert saved.json()["response_action"] == "errors"
        assert PRESS_AGAIN in saved.json()["errors"]["escalation_channel"]
    finally:
        await outage.end()
    again = await bot.slack.submit(ANA, resolve_form, {"note": "Rotated the SAML certificate."})
    assert again.status == 200 and not again.body
    await bot.fake.wait_for(lambda: "Rotated the SAML certificate." in card_text(card))
    saved = await bot.slack.submit("U0ADMIN", config_form, {"escalation_channel": "C0NEWESC"})
    assert saved.status == 200 and not saved.body
    view = await open_slack_form(bot)
    assert (await bot.slack.submit(JUNIOR, view, {**FORM, "summary": "After the settings changed"})).status == 200
    await bot.fake.wait_for(lambda: bot.fake.channel_messages("C0NEWESC"))  # the setting was kept


async def test_a_thread_reply_during_an_outage_is_delivered_again_and_counts_once(
    slack_bot: tuple[Bot, Outage],
) -> None:
    bot, outage = slack_bot
    card = await escalate(bot)
    await bot.slack.click(ANA, card, "claim", value=button_value(card, "claim"))
    await bot.fake.wait_for(lambda: "Claimed by" in card_text(card))
    reply = {"type": "message", "channel": ESC_CHANNEL, "user": ANA, "text": "On it", "ts": "1.2", "thread_ts": card.ts}
    await outage.begin()
    try:
        during = await bot.slack.event(reply, event_id="Ev0DURING")
        assert during.status == 503  # not acknowledged: Slack sends it again
    finally:
        await outage.end()
    again = await bot.slack.event(reply, event_id="Ev0DURING", retry_num=1)  # Slack's redelivery
    assert again.status == 200
    ws = await bot.workspace_id()
    h = await eventually(lambda: _first_action(bot, ws))
    assert h.first_action_at is not None
    events = [e for e in await bot.runtime.service.events(ws, 1) if e["kind"] == "first_action"]
    assert len(events) == 1 and events[0]["actor"] == ANA


async def _first_action(bot: Bot, ws: int) -> object:
    h = await bot.runtime.service.get(ws, 1)
    return h if h is not None and h.first_action_at is not None else None


async def test_an_escalation_submitted_during_an_outage_is_kept_open_and_posted_once(
    slack_bot: tuple[Bot, Outage],
) -> None:
    bot, outage = slack_bot
    await bot.slack.command(JUNIOR, "")
    view = (await bot.fake.wait_for(lambda: bot.fake.views_for(JUNIOR)))[-1]
    await outage.begin()
    try:
        answer = await bot.slack.submit(JUNIOR, view, FORM)
        assert PRESS_AGAIN in answer.json()["errors"]["summary"]
    finally:
        await outage.end()
    assert (await bot.slack.submit(JUNIOR, view, FORM)).status == 200
    await bot.fake.wait_for(lambda: bot.fake.dms_to(JUNIOR))
    await settle(bot)
    assert len(bot.fake.channel_messages(ESC_CHANNEL)) == 1


# ---- Teams -----------------------------------------------------------------------------------


@pytest.fixture
async def teams_bot(
    own_postgres: PrivatePostgres, fake_slack: FakeSlack, login: FakeLogin
) -> AsyncIterator[tuple[TeamsHarness, Outage]]:
    url = await _database(own_postgres)
    connector = await FakeTeamsConnector(login=login, card_check=card_problems).start()
    runner, bot_url, app = await start_bot(token_settings(url, fake_slack, connector, login), fake_slack)
    session = aiohttp.ClientSession()
    try:
        sim = TeamsSimulator(bot_url, connector, session=session, login=login)
        yield TeamsHarness(bot_url, app, connector, sim), Outage(own_postgres)
    finally:
        await session.close()
        await runner.cleanup()
        await connector.stop()


async def test_teams_during_an_outage_every_person_is_told_and_nothing_is_lost(
    teams_bot: tuple[TeamsHarness, Outage],
) -> None:
    t, outage = teams_bot
    await set_up(t)
    card = await teams_escalate(t)
    form = await open_form(t)
    await outage.begin()
    try:
        claim = await t.teams.execute(TEAMS_ANA, card, "claim")
        assert claim.status == 200 and claim.body["value"] == TRY_AGAIN
        submitted = await t.teams.submit_form(TEAMS_JUNIOR, form, TEAMS_FORM)
        assert submitted.status in (200, 202)
        await t.connector.wait_for(lambda: TRY_AGAIN in texts(form.card or {}))
        before = len(t.connector.activities)
        await t.teams.say_in_channel(TEAMS_ANA, "19:escalations@thread.tacv2", "setup")
        told = await t.connector.wait_for(lambda: [a for a in t.connector.activities[before:] if "try again" in a.text])
        assert told
    finally:
        await outage.end()
    won = await t.teams.execute(TEAMS_ANA, card, "claim")
    assert "Claimed by" in texts(won.body["value"])
    again = await t.teams.submit_form(TEAMS_JUNIOR, form, TEAMS_FORM)
    assert again.status in (200, 202)
    await t.connector.wait_for(lambda: len(t.connector.cards_in("19:escalations@thread.tacv2")) == 2)
