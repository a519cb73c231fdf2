"""Queues on Teams, with real tokens both ways and every card checked against the Adaptive Card 1.5
schema: `setup queue NAME` in a channel, the form's Queue field (and `escalate billing: …`), the card
in that queue's channel naming it, its seniors claiming, and a move with the old card saying where
it went. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from bot.sandbox.fake_teams import TENANT
from handoff.domain import Queue
from tests.cardcheck import card_problems
from tests.teams import ANA, BEN, ESC, FORM, JUNIOR, LEAD, TeamsHarness, escalate, open_form, set_up, texts

BILLING = "19:billing@thread.tacv2"


def flat(card: dict) -> str:  # type: ignore[type-arg]
    """A card's text as one line (`texts` puts each run on a line of its own)."""
    return " ".join(texts(card).split())


async def setup_billing(t: TeamsHarness) -> None:
    """The default queue's channel (`setup`), then Billing's (`setup queue Billing`, which makes it)."""
    await set_up(t)
    answer = await t.teams.say_in_channel(LEAD, BILLING, "setup queue Billing")
    assert answer.status in (200, 202), answer
    await t.connector.wait_for(lambda: any("for the Billing queue" in a.text for a in t.connector.activities))


async def billing_queue(t: TeamsHarness) -> tuple[int, Queue]:
    service = t.runtime.service
    ws = await service.workspace_id("teams", TENANT.lower())
    return ws, next(q for q in await service.queues(ws) if q.name == "Billing")


async def test_a_queue_set_up_in_a_channel_gets_its_escalations_and_only_its_seniors_claim(
    teams: TeamsHarness,
) -> None:
    t = teams
    await setup_billing(t)
    ws, billing = await billing_queue(t)
    assert billing.escalation_channel == BILLING
    await t.runtime.service.edit_queue(ws, replace(billing, senior_user_ids=(BEN.aad,)))
    form = await open_form(t, JUNIOR, "escalate billing: refunds fail for Contoso")
    fields = {el.get("id"): el for el in form.card["body"]}
    assert fields["queue"]["value"] == str(billing.id)
    assert fields["summary"]["value"] == "refunds fail for Contoso"
    answer = await t.teams.submit_form(JUNIOR, form, {**FORM, "queue": str(billing.id)})
    assert answer.status in (200, 202)
    card = (await t.connector.wait_for(lambda: t.connector.cards_in(BILLING)))[-1]
    assert "Queue: Billing" in flat(card.card) and t.connector.cards_in(ESC) == []
    refused = await t.teams.execute(ANA, card, "claim")  # a senior of the default queue only
    assert "Only the seniors" in refused.body["value"]
    won = await t.teams.execute(BEN, card, "claim")
    assert "Claimed by" in texts(won.body["value"]) and card_problems(won.body["value"]) == []


async def test_a_move_posts_a_new_card_and_the_old_one_says_where_it_went(teams: TeamsHarness) -> None:
    t = teams
    await setup_billing(t)
    ws, billing = await billing_queue(t)
    default = (await t.runtime.service.queues(ws))[0]
    form = await open_form(t, JUNIOR, "escalate bill: refunds fail")
    await t.teams.submit_form(JUNIOR, form, {**FORM, "queue": str(billing.id)})
    card = (await t.connector.wait_for(lambda: t.connector.cards_in(BILLING)))[-1]
    nothing = await t.teams.execute(ANA, card, "move", inputs={"move_to": str(default.id), "move_note": " "})
    assert "Say why" in nothing.body["value"]
    moved = await t.teams.execute(
        ANA, card, "move", inputs={"move_to": str(default.id), "move_note": "A login problem, not billing"}
    )
    assert "Moved to General by Senior 00 : A login problem" in flat(moved.body["value"])
    assert card_problems(moved.body["value"]) == []  # answers to a click are held to the same rules
    new = (await t.connector.wait_for(lambda: t.connector.cards_in(ESC)))[-1]
    shown = flat(new.card)
    assert "Moved here from" in shown and "A login problem, not billing" in shown and "Queue: General" in shown
    await t.connector.wait_for(lambda: card.updates and "Moved to" in texts(card.card))
    assert "actions" not in card.card
    told = await t.connector.wait_for(
        lambda: [a for a in t.connector.in_conversation(f"a:personal-{JUNIOR.aad}") if "moved ESC-1" in a.text]
    )
    assert "General queue: A login problem, not billing" in told[-1].text
    stale = await t.teams.execute(BEN, card, "claim", data={"h": 1, "v": 1, "q": billing.id})
    assert "has moved to the General queue" in stale.body["value"]


async def test_the_holder_escalates_further_with_what_they_tried(teams: TeamsHarness) -> None:
    t = teams
    await setup_billing(t)
    ws, billing = await billing_queue(t)
    default = (await t.runtime.service.queues(ws))[0]
    form = await open_form(t, JUNIOR, "escalate bill: refunds fail")
    await t.teams.submit_form(JUNIOR, form, {**FORM, "queue": str(billing.id)})
    card = (await t.connector.wait_for(lambda: t.connector.cards_in(BILLING)))[-1]
    won = await t.teams.execute(ANA, card, "claim")
    assert "Claimed by" in texts(won.body["value"])
    await t.connector.wait_for(lambda: card.updates and "Claimed by" in texts(card.card))
    assert any(el.get("id") == "move_tried" for el in won.body["value"]["body"])  # on the holder's view
    moved = await t.teams.execute(
        ANA,
        card,
        "move",
        inputs={"move_to": str(default.id), "move_note": "Needs tier 3", "move_tried": "Checked the gateway logs"},
    )
    assert "Moved to" in flat(moved.body["value"])
    new = (await t.connector.wait_for(lambda: t.connector.cards_in(ESC)))[-1]
    shown = flat(new.card)
    assert "What Senior 00 tried Checked the gateway logs" in shown and FORM["tried"] in shown
    assert [a["verb"] for a in new.card["actions"]] == ["claim", "move"]  # released: open in the new queue


async def test_the_card_shows_how_similar_escalations_were_fixed(teams: TeamsHarness) -> None:
    t = teams
    await set_up(t)
    first = await escalate(t, summary="Exports fail for EU tenants with HTTP 502")
    assert "Claimed by" in texts((await t.teams.execute(ANA, first, "claim")).body["value"])
    await t.connector.wait_for(lambda: first.updates and "Claimed by" in texts(first.card))
    fix = "Raised the export proxy timeout to 120 s."
    resolved = await t.teams.execute(ANA, first, "resolve", inputs={"note": fix})
    assert "Resolved by" in texts(resolved.body["value"]), resolved.body
    second = await escalate(t, summary="EU tenants: exports fail again with 502")
    shown = flat(second.card)
    assert "Similar resolved escalations" in shown and "ESC-1 Exports fail for EU tenants" in shown
    assert fix in shown and "resolved by Senior 00" in shown
    assert "Similar resolved escalations" not in flat(first.card)


async def test_queue_mine_stats_and_help_in_a_chat_with_the_bot(teams: TeamsHarness) -> None:
    t = teams
    await set_up(t)
    first = await escalate(t, summary="Exports fail for EU tenants", severity="P3")
    await escalate(t, summary="Payments down for everyone", severity="P1")

    async def said(who, text: str, expect: str):  # type: ignore[no-untyped-def]
        """The bot's answer to `who` in their chat with it (other notices may arrive there meanwhile)."""
        chat = f"a:personal-{who.aad}"
        before = len(t.connector.in_conversation(chat))
        assert (await t.teams.say_personal(who, text)).status in (200, 202)
        found = await t.connector.wait_for(
            lambda: [a for a in t.connector.in_conversation(chat)[before:] if expect in a.text + flat(a.card or {})]
        )
        return found[-1]

    listed = await said(ANA, "queue", "waiting for a senior")
    shown = flat(listed.card)
    assert shown.index("Payments down for everyone") < shown.index("Exports fail for EU tenants")  # P1 first
    assert "Open, waiting for a senior (2)" in shown
    exports = next(c for c in listed.card["body"] if c["type"] == "Container" and "Exports fail" in str(c))
    button = exports["items"][-1]["actions"][0]  # the Claim on that line, as Teams would send it
    won = await t.teams.execute(ANA, listed, button["verb"], data=button["data"])
    assert won.body["value"].startswith("You claimed ESC-1")
    await t.connector.wait_for(lambda: first.updates and "Claimed by" in texts(first.card))  # the channel's card too
    mine = await said(JUNIOR, "Mine ", "Your open escalations")
    assert "Your open escalations (2)" in mine.text and "claimed by Senior 00" in mine.text
    stats = await said(LEAD, "stats", "This week so far")
    assert "This week so far" in stats.text and "Opened 2" in stats.text
    assert await said(LEAD, "stats tier 9", "no queue called tier 9")
    assert await said(JUNIOR, "help", "**queue** shows what is waiting")


@pytest.mark.parametrize("teams_overrides", [{"teams_lead_user_ids": [LEAD.aad]}])
async def test_stats_are_for_the_leads_when_leads_are_named(teams: TeamsHarness) -> None:
    t = teams
    await set_up(t)
    await escalate(t, summary="Exports fail for EU tenants")

    async def answer(who, text: str) -> str:  # type: ignore[no-untyped-def]
        chat = f"a:personal-{who.aad}"
        before = len(t.connector.in_conversation(chat))
        assert (await t.teams.say_personal(who, text)).status in (200, 202)
        found = await t.connector.wait_for(lambda: t.connector.in_conversation(chat)[before:])
        return found[-1].text

    refused = await answer(ANA, "stats")
    assert "for the leads" in refused and "Opened" not in refused
    assert "Opened 1" in await answer(LEAD, "stats")


def teams_message(text_html: str, author: str = "Carol Customer-Success") -> dict[str, Any]:
    """A `messagePayload` as Teams sends it with a message action."""
    return {
        "id": "1700000000999",
        "body": {"contentType": "html", "content": text_html},
        "from": {"user": {"id": "aad-carol", "displayName": author}},
        "linkToMessage": "https://teams.microsoft.com/l/message/19:support@thread.tacv2/1700000000999",
    }


async def test_escalate_a_message_opens_the_form_as_a_dialog_and_the_card_shows_the_message(
    teams: TeamsHarness,
) -> None:
    t = teams
    await set_up(t)
    message = teams_message("<p>Contoso's exports fail with <b>HTTP 502</b></p><p>since 09:40 UTC</p>")
    asked = await t.teams.message_action(JUNIOR, "19:support@thread.tacv2", message)
    assert asked.status == 200 and asked.body["task"]["type"] == "continue"
    form = asked.body["task"]["value"]["card"]["content"]
    assert card_problems(form) == []
    fields = {el.get("id"): el for el in form["body"]}
    assert fields["summary"]["value"] == "Contoso's exports fail with HTTP 502"
    assert "since 09:40 UTC" in fields["details"]["value"] and not fields["tried"]["isRequired"]
    submit = form["actions"][0]["data"]
    inputs = {
        "summary": fields["summary"]["value"],
        "severity": "P2",
        "tried": "",
        "details": fields["details"]["value"],
    }
    done = await t.teams.message_action(JUNIOR, "19:support@thread.tacv2", message, data={**submit, **inputs})
    assert done.status == 200 and done.body["task"]["value"].startswith("Escalated as ESC-1")
    again = await t.teams.message_action(JUNIOR, "19:support@thread.tacv2", message, data={**submit, **inputs})
    assert again.body["task"]["value"].startswith("Escalated as ESC-1")  # one dialog, one escalation
    card = (await t.connector.wait_for(lambda: t.connector.cards_in(ESC)))[-1]
    shown = flat(card.card)
    assert "Escalated from a message" in shown and "Carol Customer-Success: Contoso's exports fail" in shown
    assert "The thread is linked, not copied" in shown and "What was tried" not in shown
    links = [
        r["selectAction"]["url"] for el in card.card["body"] for r in el.get("inlines", []) if r.get("selectAction")
    ]
    assert links == [message["linkToMessage"]]
    assert len(t.connector.cards_in(ESC)) == 1


async def test_a_link_that_is_not_a_teams_message_link_is_dropped(teams: TeamsHarness) -> None:
    t = teams
    await set_up(t)
    message = {**teams_message("<p>Printer on fire</p>"), "linkToMessage": "https://evil.example/login"}
    asked = await t.teams.message_action(JUNIOR, "19:support@thread.tacv2", message)
    submit = asked.body["task"]["value"]["card"]["content"]["actions"][0]["data"]
    await t.teams.message_action(
        JUNIOR, "19:support@thread.tacv2", message, data={**submit, "summary": "Printer on fire", "severity": "P1"}
    )
    card = (await t.connector.wait_for(lambda: t.connector.cards_in(ESC)))[-1]
    assert "evil.example" not in str(card.card)


async def test_a_cancelled_card_says_so_and_by_whom(teams: TeamsHarness) -> None:
    t = teams
    await set_up(t)
    card = await escalate(t)

    async def said(who, text: str, expect: str) -> str:  # type: ignore[no-untyped-def]
        chat = f"a:personal-{who.aad}"
        before = len(t.connector.in_conversation(chat))
        await t.teams.say_personal(who, text)
        found = await t.connector.wait_for(
            lambda: [a for a in t.connector.in_conversation(chat)[before:] if expect in a.text]
        )
        return found[-1].text

    assert await said(ANA, "cancel ESC-1", "Only the person who escalated ESC-1")
    assert await said(JUNIOR, "Cancel esc-1", "ESC-1 is cancelled")
    await t.connector.wait_for(lambda: card.updates and "Cancelled by" in flat(card.card))
    assert "🚫 Cancelled by Jo Junior" in flat(card.card) and "actions" not in card.card
    late = await t.teams.execute(ANA, card, "claim", data={"h": 1, "v": 1})
    assert late.body["value"] == "ESC-1 is already cancelled."


async def test_escalate_a_message_from_a_chat(teams: TeamsHarness) -> None:
    t = teams
    await set_up(t)
    message = teams_message("<p>Can someone look at the VPN?</p>")
    message["linkToMessage"] = "https://teams.microsoft.com/l/message/19:chat-abc@unq.gbl.spaces/1700000000999"
    a = t.teams._base(JUNIOR, {"id": "19:chat-abc@unq.gbl.spaces", "conversationType": "groupChat"})
    a.update(
        type="invoke",
        name="composeExtension/fetchTask",
        value={"commandId": "escalateMessage", "commandContext": "message", "messagePayload": message},
    )
    asked = await t.teams.post(a)
    form = asked.body["task"]["value"]["card"]["content"]
    b = t.teams._base(JUNIOR, {"id": "19:chat-abc@unq.gbl.spaces", "conversationType": "groupChat"})
    data = {**form["actions"][0]["data"], "summary": "VPN down", "severity": "P3"}
    b.update(
        type="invoke",
        name="composeExtension/submitAction",
        value={"commandId": "escalateMessage", "commandContext": "message", "messagePayload": message, "data": data},
    )
    done = await t.teams.post(b)
    assert done.body["task"]["value"].startswith("Escalated as ESC-1")
    card = (await t.connector.wait_for(lambda: t.connector.cards_in(ESC)))[-1]
    assert "Can someone look at the VPN?" in flat(card.card)
