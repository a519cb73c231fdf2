"""`escalation-bot demo`: the whole flow offline, in a few seconds.

It runs the real server (the same aiohttp app, Bolt listeners, service,
SQLite file, outbox and delivery worker) against a fake Slack workspace on
127.0.0.1, sends it signed requests as Slack would, and prints what each
person would see.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.config import Settings
from bot.logs import setup_logging
from bot.sandbox.fake_slack import FakeSlack, Message
from bot.sandbox.render import blocks_to_text, boxed, mrkdwn_to_text
from bot.sandbox.simulator import SlackSimulator, button_value
from bot.sandbox.watch import serve_on_loopback
from bot.server import RUNTIME, make_web_app
from handoff.domain import Queue

MAYA, ANA, BEN, CHLOE, DANA = "U0MAYA", "U0ANA", "U0BEN", "U0CHLOE", "U0DANA"
ESC, SUPPORT, BILLING, NETWORKING = "C0ESCALATE", "C0SUPPORT", "C0BILLING", "C0NETWORK"
NAMES = {
    MAYA: "maya",
    ANA: "ana",
    BEN: "ben",
    CHLOE: "chloe",
    DANA: "dana",
    ESC: "escalations",
    SUPPORT: "support",
    BILLING: "billing",
    NETWORKING: "networking",
}
SECRET = "demo-signing-secret"
TOKEN = "xoxb-demo-token"


def say(text: str = "") -> None:
    print(text, flush=True)


def show(title: str, message: Message | None) -> None:
    if message is None:
        say(f"   ({title}: nothing arrived)")
        return
    say(boxed(title, blocks_to_text(message.blocks, message.text, NAMES)))


def demo_settings(db_path: Path, fake: FakeSlack) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=f"sqlite+aiosqlite:///{db_path}",
        slack_bot_token=TOKEN,  # type: ignore[arg-type]
        slack_signing_secret=SECRET,  # type: ignore[arg-type]
        slack_app_token=None,
        slack_client_id=None,
        slack_client_secret=None,
        slack_api_base_url=fake.base_url,
        slack_escalation_channel=ESC,
        slack_senior_user_ids=[ANA, BEN, CHLOE],
        slack_senior_usergroup=None,
        teams_app_id=None,
        outbox_poll_seconds=0.2,
    )


async def run_demo(*, verbose: bool = False) -> int:
    setup_logging("INFO" if verbose else "ERROR", "text", [SECRET, TOKEN])
    fake = await FakeSlack(
        team_id="T0DEMO",
        bot_token=TOKEN,
        users=NAMES,
        channels={ESC: "escalations", SUPPORT: "support", BILLING: "billing", NETWORKING: "networking"},
    ).start()
    tmp = tempfile.TemporaryDirectory(prefix="escalation-bot-demo-")
    db_path = Path(tmp.name) / "demo.db"
    app = make_web_app(demo_settings(db_path, fake))
    runner, port = await serve_on_loopback(app)
    started = time.perf_counter()
    try:
        async with SlackSimulator(f"http://127.0.0.1:{port}", SECRET, fake=fake, team_id="T0DEMO") as slack:
            return await _story(app, fake, slack, db_path, started)
    finally:
        await runner.cleanup()
        await fake.stop()
        tmp.cleanup()


async def _story(app: web.Application, fake: FakeSlack, slack: SlackSimulator, db_path: Path, started: float) -> int:
    say("escalation-bot demo: the whole flow, offline")
    say(f"  real server on this machine · SQLite file {db_path.name} · fake Slack at {fake.base_url}")
    say("  people: maya (junior) · ana, ben, chloe (seniors) · cards go to #escalations")
    say()

    say("1. maya, stuck in #support, types:  /escalate Customer can't log in after the SSO change")
    await slack.command(MAYA, "Customer can't log in after the SSO change", channel=SUPPORT)
    views = await fake.wait_for(lambda: fake.views_for(MAYA))
    form = views[-1]
    fields = []
    for block in form["blocks"]:
        if block["type"] != "input":
            continue
        el = block["element"]
        prefilled = el.get("initial_value") or (el.get("initial_option") or {}).get("text", {}).get("text") or ""
        label = block["label"]["text"]
        fields.append(f"{label}{'' if not block.get('optional') else ' (optional)'}: {prefilled or '…'}")
    say(boxed("maya sees the form, already filled with what she typed", "\n".join(fields)))
    say()

    say("2. maya adds what she tried and submits")
    answer = await slack.submit(
        MAYA,
        form,
        {
            "summary": "Customer can't log in after the SSO change",
            "severity": "P2",
            "customer": "Acme Corp · ticket #4821 · EU region",
            "tried": "Cleared their sessions; re-sent the SSO invite; checked the IdP metadata URL (it answers 200).",
            "details": "Login loops back to the IdP with SAMLResponse 'InvalidNameIDPolicy'. Started 09:40 UTC.",
        },
    )
    if answer.status != 200:
        say(f"   the bot refused the form: {answer.status} {answer.body}")
        return 1
    card = await fake.wait_for(lambda: next(iter(fake.channel_messages(ESC)), None))
    show("#escalations: the card everyone sees", card)
    dm = await fake.wait_for(lambda: next(iter(fake.dms_to(MAYA)), None))
    show("maya's DM from the bot", dm)
    say()

    say("3. ana, ben and chloe all click Claim at the same moment")
    await asyncio.gather(*(slack.click(u, card, "claim") for u in (ANA, BEN, CHLOE)))
    await fake.wait_for(lambda: all(fake.replies_to(u) for u in (ANA, BEN, CHLOE)))
    await fake.wait_for(lambda: card.edits and len(fake.dms_to(MAYA)) >= 2)
    for user in (ANA, BEN, CHLOE):
        say(f"   {NAMES[user]:>5} sees (only them): {mrkdwn_to_text(fake.replies_to(user)[-1].text, NAMES)}")
    rt = app[RUNTIME]
    ws = await rt.service.workspace_id("slack", "T0DEMO")
    handoff = await rt.service.get(ws, 1)
    assert handoff is not None and handoff.claimed_by is not None
    winner = handoff.claimed_by
    show("#escalations: the same card, changed for everyone", card)
    show("maya's DM", fake.dms_to(MAYA)[-1])
    say()

    say(f"4. {NAMES[winner]} clicks Claim again")
    before = len(fake.replies_to(winner))
    await slack.click(winner, card, "claim", value=_first_value(card))
    await fake.wait_for(lambda: len(fake.replies_to(winner)) > before)
    say(f"   {NAMES[winner]} sees: {fake.replies_to(winner)[-1].text}")
    say()

    say(f"5. {NAMES[winner]} clicks Resolve and writes what fixed it")
    before_views = len(fake.views_for(winner))
    await slack.click(winner, card, "resolve")
    views = await fake.wait_for(lambda: len(fake.views_for(winner)) > before_views and fake.views_for(winner))
    note = "The IdP was sending a transient NameID; set NameID format to emailAddress in Acme's SAML app. Login works."
    answer = await slack.submit(winner, views[-1], {"note": note})
    await fake.wait_for(
        lambda: len(fake.dms_to(MAYA)) >= 3 and len(card.edits) >= 2 and len(fake.thread(card.channel, card.ts)) >= 2
    )
    show("#escalations: the card, resolved", card)
    show("maya's DM", fake.dms_to(MAYA)[-1])
    thread = fake.thread(card.channel, card.ts)
    say(boxed("the card's thread, for the record", "\n".join(mrkdwn_to_text(m.text, NAMES) for m in thread)))
    say()

    events = await rt.service.events(ws, handoff.id)
    say("6. the audit trail the weekly numbers are computed from:")
    t0 = events[0]["at"]
    for e in events:
        who = NAMES.get(e["actor"] or "", e["actor"] or "bot")
        say(f"   +{(e['at'] - t0).total_seconds():6.2f}s  {e['kind']:<15} {who}")
    say()
    say("7. a week later ben escalates a message from #support; the new card shows how it was solved before")
    root = fake.say("C0SUPPORT", BEN, "Globex: users bounced back to the IdP, SAML InvalidNameIDPolicy")
    fake.say("C0SUPPORT", MAYA, "I re-sent their SSO invite, no change", thread_ts=root.ts)
    before_views = len(fake.views_for(BEN))
    await slack.message_shortcut(BEN, root)
    views = await fake.wait_for(lambda: len(fake.views_for(BEN)) > before_views and fake.views_for(BEN))
    await slack.submit(BEN, views[-1], {"summary": "Globex SSO login fails with InvalidNameIDPolicy", "tried": ""})
    second = await fake.wait_for(lambda: len(fake.channel_messages(ESC)) >= 2 and fake.channel_messages(ESC)[-1])
    show("#escalations: the new card, with the thread and the earlier fix", second)
    say()
    if await _hand_over(rt, ws, fake, slack) != 0:
        return 1
    say(f"done in {time.perf_counter() - started:.1f}s. Connect a real workspace: see README.md, 'Connect Slack'.")
    return 0


async def _hand_over(rt: Any, ws: int, fake: FakeSlack, slack: SlackSimulator) -> int:
    say("8. the team splits into queues. An admin runs:")
    say("     escalation-bot queue add Billing --channel C0BILLING --seniors U0ANA,U0BEN --alias bill")
    say("     escalation-bot queue add Networking --channel C0NETWORK --seniors U0DANA --alias net")
    for name, channel, seniors, alias in (
        ("Billing", BILLING, (ANA, BEN), "bill"),
        ("Networking", NETWORKING, (DANA,), "net"),
    ):
        await rt.service.add_queue(
            ws,
            Queue(
                id=0,
                workspace_id=ws,
                name=name,
                is_default=False,
                aliases=(alias,),
                escalation_channel=channel,
                senior_user_ids=seniors,
            ),
        )
    say("   maya types:  /escalate bill: Initech's refunds fail with a gateway timeout")
    before = len(fake.views_for(MAYA))
    await slack.command(MAYA, "bill: Initech's refunds fail with a gateway timeout", channel=SUPPORT)
    form = (await fake.wait_for(lambda: fake.views_for(MAYA)[before:]))[-1]
    queue_field = next(b for b in form["blocks"] if b.get("block_id") == "queue")
    say(f"   the form's Queue field is preset to: {queue_field['element']['initial_option']['text']['text']}")
    await slack.submit(
        MAYA, form, {"summary": "Initech's refunds fail with a gateway timeout", "tried": "Retried two refunds"}
    )
    card = await fake.wait_for(lambda: next(iter(fake.channel_messages(BILLING)), None))
    show("#billing: the card, in the Billing queue", card)
    say("   ana looks: the gateway is fine, our network can't reach it. She clicks Move:")
    before = len(fake.views_for(ANA))
    await slack.click(ANA, card, "move")
    move_form = (await fake.wait_for(lambda: fake.views_for(ANA)[before:]))[-1]
    networking = next(q for q in await rt.service.queues(ws) if q.name == "Networking")
    note = "Not billing: traceroute from our VPC to the gateway dies at the NAT. Networking, please."
    await slack.submit(ANA, move_form, {"queue": str(networking.id), "note": note})
    moved = await fake.wait_for(lambda: next(iter(fake.channel_messages(NETWORKING)), None))
    await fake.wait_for(lambda: "Moved to" in blocks_to_text(card.blocks, card.text, NAMES))
    show("#networking: a new card, with ana's note on top", moved)
    show("#billing: the old card says where it went", card)
    show("maya's DM", fake.dms_to(MAYA)[-1])
    say("   dana claims it in #networking")
    await slack.click(DANA, moved, "claim")
    await fake.wait_for(lambda: "Claimed by" in blocks_to_text(moved.blocks, moved.text, NAMES))
    show("#networking: claimed", moved)
    say()
    return 0


def _first_value(card: Message) -> str:
    """The Claim button's value as it was on the card when first posted."""
    original = card.edits[0]["blocks"] if card.edits else card.blocks
    return button_value(Message(card.channel, card.ts, card.text, original), "claim")


if __name__ == "__main__":
    sys.exit(asyncio.run(run_demo(verbose="--verbose" in sys.argv)))
