"""Invariant 6: what users type is data. It never pings, mentions or forges links,
and oversized input is refused or cut, never a crash."""

from __future__ import annotations

import json

from bot.sandbox.simulator import button_value
from tests.conftest import JUNIOR, SENIORS, Bot
from tests.helpers import FORM, card_text, escalate, open_form
from tests.test_slack_flow import click

ANA = SENIORS[0]
NASTY = ["<!channel>", "<@U123>", "<https://x.example|y>", "<!here>", "<#C999>"]
PAYLOAD = " ".join(NASTY) + " & more"


def everything_sent(bot: Bot) -> str:
    """Every message, edit, DM, thread reply and ephemeral reply the bot sent, as JSON text."""
    out = []
    for m in bot.fake.messages:
        out.append(json.dumps({"text": m.text, "blocks": m.blocks, "edits": m.edits}))
    for r in bot.fake.replies:
        out.append(json.dumps({"text": r.text, "blocks": r.blocks}))
    return "\n".join(out)


async def test_markup_in_every_field_never_reaches_slack_unescaped(bot: Bot) -> None:
    card = await escalate(
        bot,
        summary="Login broken " + PAYLOAD,
        customer="Acme " + PAYLOAD,
        tried="Tried " + PAYLOAD,
        details="Details " + PAYLOAD,
    )
    await click(bot, ANA, card, "claim")
    await bot.fake.wait_for(lambda: "Claimed by" in card_text(card))
    await bot.slack.click(ANA, card, "resolve")
    modal = (await bot.fake.wait_for(lambda: bot.fake.views_for(ANA)))[-1]
    assert (await bot.slack.submit(ANA, modal, {"note": "Fixed " + PAYLOAD})).status == 200
    await bot.fake.wait_for(lambda: [m for m in bot.fake.dms_to(JUNIOR) if "resolved" in m.text])
    await bot.fake.wait_for(lambda: len(bot.fake.thread(card.channel, card.ts)) >= 2)
    await bot.runtime.worker.drain()

    sent = everything_sent(bot)
    for raw in NASTY:
        assert raw not in sent, f"{raw} reached Slack unescaped"
    # ...but the text itself is all there, escaped, for people to read.
    assert "&lt;!channel&gt;" in card_text(card)
    assert "&lt;https://x.example|y&gt;" in card_text(card)
    assert "&amp; more" in card_text(card)
    resolved_dm = [m for m in bot.fake.dms_to(JUNIOR) if "resolved" in m.text][-1]
    assert "Fixed &lt;!channel&gt;" in resolved_dm.text


async def test_four_thousand_characters_are_refused_with_field_errors(bot: Bot) -> None:
    view = await open_form(bot)
    huge = "x" * 4000
    body = (
        await bot.slack.submit(
            JUNIOR, view, {**FORM, "summary": huge, "tried": huge, "details": huge, "customer": huge}
        )
    ).json()
    assert body["response_action"] == "errors"
    assert set(body["errors"]) == {"summary", "tried", "details", "customer"}
    assert "4,000 characters" in body["errors"]["tried"]
    ws = await bot.workspace_id()
    assert await bot.runtime.service.get(ws, 1) is None


async def test_command_text_of_four_thousand_characters_opens_a_cut_form(bot: Bot) -> None:
    view = await open_form(bot, text="y" * 4000)  # the fake refuses views Slack would refuse
    fields = {b["block_id"]: b["element"] for b in view["blocks"] if b["type"] == "input"}
    assert len(fields["summary"]["initial_value"]) == 150
    assert len(fields["details"]["initial_value"]) == 3000
    assert fields["details"]["initial_value"].endswith("…")


async def test_longest_allowed_text_fits_on_the_card_with_escaping(bot: Bot) -> None:
    # 3,000 '<' become 12,000 characters escaped: the card must still be valid Block Kit.
    card = await escalate(bot, tried="<" * 3000, details="&" * 3000, summary=">" * 150)
    text = card_text(card)
    assert "…" in text and "<<" not in text
    assert len(bot.fake.calls_to("chat.postMessage", ok=False)) == 0
    value = button_value(card, "claim")
    assert len(value) < 100
