"""`escalation-bot demo --teams`: the Teams flow offline, as `demo` shows Slack's.

The real server (the Microsoft 365 Agents SDK app, the engine, a SQLite file, the outbox and the
delivery worker) against a fake Bot Connector service on 127.0.0.1, in local-development mode
(`TEAMS_ALLOW_ANONYMOUS`: no tokens; the tests run the same flows with real ones). Activities are
posted as Teams posts them, and every card the bot sends is printed as a person would read it.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import aiohttp

from bot.config import Settings
from bot.logs import setup_logging
from bot.sandbox.fake_teams import TENANT, FakeTeamsConnector, Posted
from bot.sandbox.render import adaptive_to_text, boxed, teams_text_to_text
from bot.sandbox.teams_simulator import Person, TeamsSimulator
from bot.sandbox.watch import serve_on_loopback
from bot.server import make_web_app

APP_ID = "00000000-0000-4000-8000-000000000de0"
ESC, LEADS, SUPPORT = "19:escalations@thread.tacv2", "19:leads@thread.tacv2", "19:support@thread.tacv2"
LUCY, JO = Person("aad-lucy", "Lucy (lead)"), Person("aad-jo", "Jo (junior)")
ANA, BEN = Person("aad-ana", "Ana (senior)"), Person("aad-ben", "Ben (senior)")


def say(text: str = "") -> None:
    print(text, flush=True)


def show(title: str, posted: Posted | dict | None) -> None:
    card = posted.card if isinstance(posted, Posted) else posted
    say(boxed(title, adaptive_to_text(card) if card else "(nothing arrived)"))


def demo_settings(db_path: Path, connector: FakeTeamsConnector) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=f"sqlite+aiosqlite:///{db_path}",
        slack_signing_secret=None,
        slack_bot_token=None,
        teams_app_id=APP_ID,
        teams_tenant_id=TENANT,
        teams_app_password=None,
        teams_allow_anonymous=True,
        teams_service_urls=[connector.service_url],
        teams_senior_user_ids=[ANA.aad, BEN.aad],
        outbox_poll_seconds=0.2,
    )


async def run_teams_demo(*, verbose: bool = False) -> int:
    setup_logging("INFO" if verbose else "ERROR", "text", [])
    connector = await FakeTeamsConnector(login=None).start()
    tmp = tempfile.TemporaryDirectory(prefix="escalation-bot-teams-demo-")
    app = make_web_app(demo_settings(Path(tmp.name) / "demo.db", connector))
    runner, port = await serve_on_loopback(app)
    started = time.perf_counter()
    try:
        async with aiohttp.ClientSession() as session:
            teams = TeamsSimulator(f"http://127.0.0.1:{port}", connector, session=session, login=None)
            return await _story(connector, teams, started)
    finally:
        await runner.cleanup()
        await connector.stop()
        tmp.cleanup()


async def _story(c: FakeTeamsConnector, t: TeamsSimulator, started: float) -> int:
    say("escalation-bot demo --teams: the Teams flow, offline")
    say("  real server on this machine · SQLite · a fake Bot Connector service · no tokens (local mode)")
    say()
    say("1. Lucy, a lead, mentions the bot in the escalations channel:  @Escalation Bot setup")
    await t.say_in_channel(LUCY, ESC, "setup")
    said = await c.wait_for(lambda: [a for a in c.in_conversation(ESC) if a.text])
    say(f"   the bot: {teams_text_to_text(said[-1].text)}")
    say()
    say("2. Jo, a junior, messages the bot:  escalate Exports fail for EU tenants")
    await t.say_personal(JO, "escalate Exports fail for EU tenants")
    form = (await c.wait_for(lambda: [a for a in c.activities if a.card and "Escalate to a senior" in str(a.card)]))[-1]
    show("Jo's chat: the form, with the summary filled in", form)
    await t.submit_form(
        JO,
        form,
        {"summary": "Exports fail for EU tenants", "severity": "P2", "tried": "Re-ran the export; cleared the cache."},
    )
    card = (await c.wait_for(lambda: c.cards_in(ESC)))[-1]
    show("the escalations channel: the card", card)
    say()
    say("3. Ana and Ben press Claim at the same moment")
    answers = await asyncio.gather(t.execute(ANA, card, "claim"), t.execute(BEN, card, "claim"))
    for person, answer in zip((ANA, BEN), answers, strict=True):
        body = answer.body or {}
        if body.get("type") == "application/vnd.microsoft.card.adaptive":
            say(f"   {person.name} sees the card as its holder (Resolve, Release)")
        else:
            say(f"   {person.name} is told: {body.get('value')}")
    await c.wait_for(lambda: card.updates and "Claimed by" in str(card.card))
    show("the channel card, as everyone sees it (no buttons that can only fail)", card)
    holder = ANA if answers[0].body and answers[0].body.get("type", "").endswith("adaptive") else BEN
    mine = await t.execute(holder, card, "refresh", data=card.card["refresh"]["action"]["data"])
    show(f"the same card on {holder.name}'s screen (Teams refreshes it for the holder)", mine.body["value"])
    say()
    say(f"4. {holder.name} resolves it with a note")
    await t.execute(holder, card, "resolve", inputs={"note": "Raised the export proxy timeout to 120 s."})
    await c.wait_for(lambda: "Resolved by" in str(card.card))
    show("the channel card, resolved", card)
    told = await c.wait_for(lambda: [a.text for a in c.in_conversation(f"a:personal-{JO.aad}") if "resolved" in a.text])
    say(f"   Jo's chat: {' '.join(teams_text_to_text(told[-1]).split())}")
    say()
    say("5. In #support, someone's message needs a senior: Jo uses More actions → Escalate this message")
    message = {
        "id": "1700000000999",
        "body": {"contentType": "html", "content": "<p>EU exports fail again: HTTP 502 since 09:40</p>"},
        "from": {"user": {"id": "aad-carol", "displayName": "Carol (customer success)"}},
        "linkToMessage": "https://teams.microsoft.com/l/message/19:support@thread.tacv2/1700000000999",
    }
    dialog = await t.message_action(JO, SUPPORT, message)
    form_card = dialog.body["task"]["value"]["card"]["content"]
    show("the dialog: the form, prefilled from the message", form_card)
    data = {
        **form_card["actions"][0]["data"],
        "summary": "EU exports fail again: HTTP 502 since 09:40",
        "severity": "P2",
    }
    await t.message_action(JO, SUPPORT, message, data=data)
    second = await c.wait_for(lambda: len(c.cards_in(ESC)) >= 2 and c.cards_in(ESC)[-1])
    show("the new card: the message, its link, and how it was fixed before", second)
    say()
    say("6. Ben asks the bot what is waiting:  queue")
    before = len(c.in_conversation(f"a:personal-{BEN.aad}"))
    await t.say_personal(BEN, "queue")
    queue = await c.wait_for(lambda: [a for a in c.in_conversation(f"a:personal-{BEN.aad}")[before:] if a.card])
    show("Ben's chat: the open queue, a Claim on each", queue[-1])
    say()
    say(f"done in {time.perf_counter() - started:.1f}s. Connect real Teams: see README.md, 'Connect Microsoft Teams'.")
    return 0
