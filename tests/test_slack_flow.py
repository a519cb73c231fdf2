"""The Slack flow end to end, over HTTP, with signed requests, against the fake Slack API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import time_machine

from bot.sandbox.simulator import button_value
from tests.conftest import ESC_CHANNEL, JUNIOR, SENIORS, TEAM, Bot
from tests.helpers import FORM, buttons, card_text, escalate, open_form

ANA, BEN, CHLOE = SENIORS[0], SENIORS[1], SENIORS[2]
OUTSIDER = "U0NOTSENIOR"


async def last_reply(bot: Bot, user: str, before: int) -> str:
    replies = await bot.fake.wait_for(lambda: len(bot.fake.replies_to(user)) > before and bot.fake.replies_to(user))
    return replies[-1].text


async def click(bot: Bot, user: str, card, action: str, value: str | None = None) -> str:  # type: ignore[no-untyped-def]
    before = len(bot.fake.replies_to(user))
    answer = await bot.slack.click(user, card, action, value=value)
    assert answer.status == 200
    return await last_reply(bot, user, before)


async def wait_card(bot: Bot, card, contains: str) -> str:  # type: ignore[no-untyped-def]
    return await bot.fake.wait_for(lambda: contains in card_text(card) and card_text(card))


# ---- /escalate -------------------------------------------------------------


async def test_escalate_command_opens_prefilled_form(bot: Bot) -> None:
    view = await open_form(bot, text="Checkout fails for EU customers")
    blocks = {b["block_id"]: b for b in view["blocks"] if b["type"] == "input"}
    assert set(blocks) == {"summary", "severity", "customer", "tried", "details", "requested_senior"}
    assert blocks["summary"]["element"]["initial_value"] == "Checkout fails for EU customers"
    assert blocks["summary"]["element"]["max_length"] == 150
    assert blocks["severity"]["element"]["initial_option"]["value"] == "P3"
    assert [o["value"] for o in blocks["severity"]["element"]["options"]] == ["P1", "P2", "P3", "P4"]
    assert blocks["tried"]["element"]["multiline"] is True and not blocks["tried"].get("optional")
    assert blocks["requested_senior"]["element"]["type"] == "users_select"
    assert blocks["requested_senior"].get("optional") is True


async def test_escalate_help_answers_ephemerally_without_a_form(bot: Bot) -> None:
    answer = await bot.slack.command(JUNIOR, "help")
    assert answer.status == 200
    body = answer.json()
    assert body["response_type"] == "ephemeral"
    assert "/escalate" in body["text"] and "help" in body["text"]
    assert bot.fake.views_for(JUNIOR) == []


async def test_long_command_text_is_split_between_summary_and_details(bot: Bot) -> None:
    long = "word " * 100
    view = await open_form(bot, text=long)
    blocks = {b["block_id"]: b for b in view["blocks"] if b["type"] == "input"}
    assert len(blocks["summary"]["element"]["initial_value"]) <= 150
    assert blocks["summary"]["element"]["initial_value"].endswith("…")
    assert blocks["details"]["element"]["initial_value"].startswith("word word")


async def test_invalid_form_returns_field_errors_and_stores_nothing(bot: Bot) -> None:
    view = await open_form(bot)
    answer = await bot.slack.submit(JUNIOR, view, {**FORM, "summary": "  ", "tried": ""})
    assert answer.status == 200
    body = answer.json()
    assert body["response_action"] == "errors"
    assert set(body["errors"]) == {"summary", "tried"}
    assert "what is wrong" in body["errors"]["summary"].lower()
    ws = await bot.workspace_id()
    assert await bot.runtime.service.get(ws, 1) is None
    assert bot.fake.channel_messages(ESC_CHANNEL) == []


async def test_submit_posts_card_and_tells_requester_number_and_link(bot: Bot) -> None:
    card = await escalate(bot)
    text = card_text(card)
    assert "ESC-1" in text and "P2" in text and FORM["summary"] in text
    assert f"<@{JUNIOR}>" in text
    for section in ("Problem", "What was tried", "Customer / environment"):
        assert section in text
    assert FORM["tried"] in text and FORM["customer"] in text
    assert buttons(card) == ["claim"]
    claim = next(b for blk in card.blocks or [] if blk["type"] == "actions" for b in blk["elements"])
    assert claim["style"] == "primary"
    dm = await bot.fake.wait_for(lambda: bot.fake.dms_to(JUNIOR))
    assert "ESC-1" in dm[0].text
    assert f"/archives/{ESC_CHANNEL}/p{card.ts.replace('.', '')}" in dm[0].text


async def test_same_view_submitted_twice_creates_one_escalation(bot: Bot) -> None:
    view = await open_form(bot)
    first = await bot.slack.submit(JUNIOR, view, FORM)
    second = await bot.slack.submit(JUNIOR, view, FORM)
    assert first.status == second.status == 200
    await bot.fake.wait_for(lambda: bot.fake.dms_to(JUNIOR))
    await bot.runtime.worker.drain()
    assert len(bot.fake.channel_messages(ESC_CHANNEL)) == 1
    assert len(bot.fake.dms_to(JUNIOR)) == 1
    ws = await bot.workspace_id()
    assert await bot.runtime.service.get(ws, 2) is None


async def test_requested_senior_is_named_on_the_card(bot: Bot) -> None:
    card = await escalate(bot, requested_senior=BEN)
    assert f"asked for <@{BEN}>" in card_text(card)


async def test_asking_yourself_is_a_field_error(bot: Bot) -> None:
    view = await open_form(bot)
    body = (await bot.slack.submit(JUNIOR, view, {**FORM, "requested_senior": JUNIOR})).json()
    assert "requested_senior" in body["errors"]


# ---- claim -----------------------------------------------------------------


async def test_claim_winner_card_dm_and_loser_reply(bot: Bot) -> None:
    card = await escalate(bot)
    reply = await click(bot, ANA, card, "claim")
    assert "You claimed ESC-1" in reply
    text = await wait_card(bot, card, "Claimed by")
    assert f"Claimed by <@{ANA}> · under a minute after escalation" in text
    assert buttons(card) == ["resolve", "release"]
    dms = await bot.fake.wait_for(lambda: len(bot.fake.dms_to(JUNIOR)) >= 2 and bot.fake.dms_to(JUNIOR))
    assert f"<@{ANA}> picked up ESC-1" in dms[-1].text
    # Ben clicks the Claim button he still sees on his (old) screen.
    old_claim = button_value(type(card)(card.channel, card.ts, "", card.edits[0]["blocks"]), "claim")
    assert (
        await click(bot, BEN, card, "claim", value=old_claim) == f"Already claimed by <@{ANA}> less than a minute ago."
    )
    assert await click(bot, ANA, card, "claim", value=old_claim) == "You already have this one."
    thread = await bot.fake.wait_for(lambda: bot.fake.thread(card.channel, card.ts))
    assert f"<@{ANA}> claimed ESC-1" in thread[0].text


async def test_loser_is_told_how_many_minutes_ago(bot: Bot) -> None:
    card = await escalate(bot)
    value = button_value(card, "claim")
    with time_machine.travel(datetime.now(UTC), tick=True) as traveller:
        await click(bot, ANA, card, "claim", value=value)
        traveller.shift(timedelta(minutes=2, seconds=5))
        reply = await click(bot, BEN, card, "claim", value=value)
    assert reply == f"Already claimed by <@{ANA}> 2 minutes ago."


async def test_claim_card_says_minutes_after_escalation(bot: Bot) -> None:
    card = await escalate(bot)
    value = button_value(card, "claim")
    with time_machine.travel(datetime.now(UTC), tick=True) as traveller:
        traveller.shift(timedelta(minutes=7))
        await click(bot, ANA, card, "claim", value=value)
        text = await wait_card(bot, card, "Claimed by")
    assert f"Claimed by <@{ANA}> · 7 min after escalation" in text


async def test_non_senior_is_told_who_may_claim(bot: Bot) -> None:
    card = await escalate(bot)
    reply = await click(bot, OUTSIDER, card, "claim")
    assert reply.startswith("Only seniors can claim escalations here:")
    assert f"<@{ANA}>" in reply
    assert "Claimed by" not in card_text(card)


async def test_nobody_claims_their_own_escalation(bot: Bot) -> None:
    card = await escalate(bot, user=ANA)  # a senior escalating is still the requester
    reply = await click(bot, ANA, card, "claim")
    assert reply == "You can't claim your own escalation; a senior will pick it up."
    reply = await click(bot, JUNIOR, card, "claim")
    assert reply.startswith("Only seniors")
    await bot.runtime.worker.drain()
    assert "Claimed by" not in card_text(card)


# ---- release and resolve ---------------------------------------------------


async def test_release_reopens_and_only_the_holder_may(bot: Bot) -> None:
    card = await escalate(bot)
    await click(bot, ANA, card, "claim")
    await wait_card(bot, card, "Claimed by")
    refused = await click(bot, BEN, card, "release")
    assert refused == f"<@{ANA}> holds ESC-1 now, so only they can do that. Nothing changed."
    assert await click(bot, ANA, card, "release") == "You released ESC-1; it is open for other seniors again."
    await wait_card(bot, card, "Open · waiting")
    assert buttons(card) == ["claim"]
    dms = await bot.fake.wait_for(lambda: any("released" in m.text for m in bot.fake.dms_to(JUNIOR)))
    assert dms


async def test_stale_release_click_never_undoes_a_newer_claim(bot: Bot) -> None:
    card = await escalate(bot)
    await click(bot, ANA, card, "claim")
    await wait_card(bot, card, "Claimed by")
    stale_release = button_value(card, "release")
    await click(bot, ANA, card, "release")
    await wait_card(bot, card, "Open · waiting")
    await click(bot, BEN, card, "claim")
    await wait_card(bot, card, f"Claimed by <@{BEN}>")
    reply = await click(bot, ANA, card, "release", value=stale_release)
    assert reply == f"<@{BEN}> holds ESC-1 now, so only they can do that. Nothing changed."
    await bot.runtime.worker.drain()
    assert f"Claimed by <@{BEN}>" in card_text(card)
    ws = await bot.workspace_id()
    h = await bot.runtime.service.get(ws, 1)
    assert h is not None and h.claimed_by == BEN


async def test_resolve_with_note_updates_card_and_tells_requester(bot: Bot) -> None:
    card = await escalate(bot)
    await click(bot, ANA, card, "claim")
    await wait_card(bot, card, "Claimed by")
    before = len(bot.fake.views_for(ANA))
    assert (await bot.slack.click(ANA, card, "resolve")).status == 200
    views = await bot.fake.wait_for(lambda: len(bot.fake.views_for(ANA)) > before and bot.fake.views_for(ANA))
    modal = views[-1]
    assert modal["callback_id"] == "resolve_note"
    empty = (await bot.slack.submit(ANA, modal, {"note": "   "})).json()
    assert empty["response_action"] == "errors" and "note" in empty["errors"]
    ok = await bot.slack.submit(ANA, modal, {"note": "Set NameID format to emailAddress."})
    assert ok.status == 200 and not ok.body
    text = await wait_card(bot, card, "Resolved by")
    assert f"Resolved by <@{ANA}>" in text and "Set NameID format to emailAddress." in text
    assert buttons(card) == []
    dm = await bot.fake.wait_for(lambda: [m for m in bot.fake.dms_to(JUNIOR) if "resolved" in m.text])
    assert "Set NameID format to emailAddress." in dm[-1].text
    ws = await bot.workspace_id()
    kinds = [e["kind"] for e in await bot.runtime.service.events(ws, 1)]
    # "posted" is recorded once Slack answers, which can be after a quick senior has claimed.
    assert kinds[0] == "created" and kinds[-2:] == ["first_action", "resolved"]
    assert sorted(kinds[1:3]) == ["claimed", "posted"]


async def test_resolve_click_by_non_holder_opens_no_form(bot: Bot) -> None:
    card = await escalate(bot)
    await click(bot, ANA, card, "claim")
    await wait_card(bot, card, "Claimed by")
    reply = await click(bot, BEN, card, "resolve")
    assert reply.startswith(f"<@{ANA}> holds ESC-1 now")
    assert bot.fake.views_for(BEN) == []


async def test_stale_resolve_form_is_refused_after_the_claim_moved(bot: Bot) -> None:
    card = await escalate(bot)
    await click(bot, ANA, card, "claim")
    await wait_card(bot, card, "Claimed by")
    await bot.slack.click(ANA, card, "resolve")
    modal = (await bot.fake.wait_for(lambda: bot.fake.views_for(ANA)))[-1]
    await click(bot, ANA, card, "release")
    await wait_card(bot, card, "Open · waiting")
    await click(bot, BEN, card, "claim")
    await wait_card(bot, card, f"Claimed by <@{BEN}>")
    body = (await bot.slack.submit(ANA, modal, {"note": "fixed"})).json()
    assert body["response_action"] == "errors"
    assert "Someone else holds ESC-1" in body["errors"]["note"]
    await bot.runtime.worker.drain()
    assert f"Claimed by <@{BEN}>" in card_text(card)


async def test_broken_button_value_is_refused_clearly(bot: Bot) -> None:
    card = await escalate(bot)
    reply = await click(bot, ANA, card, "claim", value="not json at all")
    assert reply == "That button doesn't carry a valid escalation; nothing changed."


async def test_health_endpoints(bot: Bot) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as s:
        async with s.get(bot.url + "/healthz") as r:
            assert r.status == 200
        async with s.get(bot.url + "/readyz") as r:
            assert r.status == 200 and (await r.json())["database"] == "ok"


async def test_other_team_cannot_touch_this_workspaces_escalation(bot: Bot) -> None:
    card = await escalate(bot)
    bot.slack.team_id = "T0OTHER"
    try:
        reply = await click(bot, ANA, card, "claim")
    finally:
        bot.slack.team_id = TEAM
    assert reply == "I can't find that escalation in this workspace."
    await bot.runtime.worker.drain()
    assert "Claimed by" not in card_text(card)
