"""Slack depth: escalate from a message (thread copied or linked), the App Home queue,
`/escalate mine|stats|help|config`, and similar past resolutions on the card."""

from __future__ import annotations

from typing import Any

import pytest

from bot.sandbox.fake_slack import Fail, Message
from bot.sandbox.simulator import button_value
from tests.conftest import ESC_CHANNEL, JUNIOR, SENIORS, Bot
from tests.helpers import FORM, buttons, card_text, escalate, settle

ANA, BEN = SENIORS[0], SENIORS[1]
SUPPORT = "C0SUPPORT"


async def reply_to(bot: Bot, user: str, before: int) -> Any:
    replies = await bot.fake.wait_for(lambda: len(bot.fake.replies_to(user)) > before and bot.fake.replies_to(user))
    return replies[-1]


async def command(bot: Bot, user: str, text: str) -> Any:
    before = len(bot.fake.replies_to(user))
    answer = await bot.slack.command(user, text)
    assert answer.status == 200
    if answer.body:  # answered in the ack itself
        return answer.json()
    return await reply_to(bot, user, before)


async def resolve(bot: Bot, senior: str, card: Message, note: str) -> None:
    assert (await bot.slack.click(senior, card, "claim")).status == 200
    await bot.fake.wait_for(lambda: "resolve" in buttons(card))
    before = len(bot.fake.views_for(senior))
    assert (await bot.slack.click(senior, card, "resolve")).status == 200
    views = await bot.fake.wait_for(lambda: len(bot.fake.views_for(senior)) > before and bot.fake.views_for(senior))
    assert (await bot.slack.submit(senior, views[-1], {"note": note})).status == 200
    await bot.fake.wait_for(lambda: "Resolved by" in card_text(card))


async def shortcut_form(bot: Bot, user: str, message: Message) -> dict[str, Any]:
    before = len(bot.fake.views_for(user))
    answer = await bot.slack.message_shortcut(user, message)
    assert answer.status == 200, answer.body
    views = await bot.fake.wait_for(lambda: len(bot.fake.views_for(user)) > before and bot.fake.views_for(user))
    return views[-1]


def initial(view: dict[str, Any], block_id: str) -> str | None:
    for b in view["blocks"]:
        if b.get("block_id") == block_id:
            return b["element"].get("initial_value")
    raise LookupError(block_id)


async def new_card(bot: Bot, before: int) -> Message:
    cards = await bot.fake.wait_for(
        lambda: len(bot.fake.channel_messages(ESC_CHANNEL)) > before and bot.fake.channel_messages(ESC_CHANNEL)
    )
    return cards[-1]


# ---- escalate this message ---------------------------------------------------------------


async def test_escalate_this_message_prefills_the_form_and_copies_the_thread(bot: Bot) -> None:
    bot.fake.add_channel(SUPPORT, "support")  # the bot was invited there: it may read the thread
    root = bot.fake.say(SUPPORT, "U0CUSTOMERSUCCESS", "Acme can't log in since the SSO change <!channel>")
    bot.fake.say(SUPPORT, JUNIOR, "I cleared their sessions, no luck", thread_ts=root.ts)
    bot.fake.say(SUPPORT, "U0OTHER", "Tried an incognito window too", thread_ts=root.ts)
    reply = bot.fake.say(SUPPORT, JUNIOR, "Still broken after re-sending the invite", thread_ts=root.ts)

    view = await shortcut_form(bot, JUNIOR, reply)  # from a reply: the whole thread comes along
    assert view["callback_id"] == "escalate"
    assert initial(view, "summary") == "Still broken after re-sending the invite"
    before = len(bot.fake.channel_messages(ESC_CHANNEL))
    # "What was tried" may stay empty: the thread says it.
    answer = await bot.slack.submit(JUNIOR, view, {"summary": "Acme SSO login broken", "severity": "P2", "tried": ""})
    assert answer.status == 200 and not answer.body, answer.body
    card = await new_card(bot, before)
    text = card_text(card)
    assert "What's been tried in the thread" in text
    assert "Nothing listed." not in text  # nothing typed under "what was tried": the thread takes its place
    for said in ("I cleared their sessions, no luck", "Tried an incognito window too", "re-sending the invite"):
        assert said in text
    assert "&lt;!channel&gt;" in text and "<!channel>" not in text  # the copied thread is data too
    # The link is to the message the shortcut was used on.
    permalink = f"https://acme-support.slack.com/archives/{SUPPORT}/p{reply.ts.replace('.', '')}"
    assert f"<{permalink}|open the thread>" in text
    ws = await bot.workspace_id()
    h = await bot.runtime.service.get(ws, 1)
    assert h is not None and h.source is not None
    assert h.source["thread"] == "copied" and h.source["permalink"] == permalink
    assert (h.transcript or [{}])[0]["text"].startswith("Acme can't log in")
    assert len(h.transcript or []) == 4


@pytest.mark.parametrize(
    "failure",
    [Fail(error="missing_scope"), Fail(error="not_in_channel"), Fail(status=429, retry_after=60)],
    ids=["missing_scope", "not_in_channel", "rate_limited"],
)
async def test_an_unreadable_thread_is_linked_not_copied_and_the_escalation_goes_through(
    bot: Bot, failure: Fail
) -> None:
    root = bot.fake.say(SUPPORT, JUNIOR, "Exports time out for Globex")
    bot.fake.fail_next("conversations.replies", failure)
    view = await shortcut_form(bot, JUNIOR, root)
    before = len(bot.fake.channel_messages(ESC_CHANNEL))
    answer = await bot.slack.submit(JUNIOR, view, {"summary": "Globex exports time out", "tried": "Retried once"})
    assert answer.status == 200 and not answer.body
    card = await new_card(bot, before)  # no wait for a one-a-minute API: the card goes out now
    text = card_text(card)
    assert "The thread is linked, not copied" in text
    assert f"archives/{SUPPORT}/p{root.ts.replace('.', '')}|the original message>" in text
    await settle(bot)
    assert len(bot.fake.channel_messages(ESC_CHANNEL)) == before + 1  # once
    ws = await bot.workspace_id()
    h = await bot.runtime.service.get(ws, 1)
    assert h is not None and h.source is not None and h.source["thread"] == "linked" and not h.transcript


# ---- similar past resolutions --------------------------------------------------------------


async def test_the_card_shows_similar_resolved_escalations_with_their_fix_and_resolver(bot: Bot) -> None:
    first = await escalate(bot, summary="SSO login fails with SAML InvalidNameIDPolicy")
    await resolve(bot, ANA, first, "Set the NameID format to emailAddress in the IdP.")
    unrelated = await escalate(bot, summary="Invoice PDF export times out")
    await resolve(bot, BEN, unrelated, "Raised the export timeout.")
    card = await escalate(bot, summary="SAML InvalidNameIDPolicy error on SSO login for Globex")
    text = card_text(card)
    assert "Similar resolved escalations" in text
    assert "ESC-1" in text and "Set the NameID format to emailAddress in the IdP." in text
    assert f"resolved by <@{ANA}>" in text
    assert "ESC-2" not in text and "Raised the export timeout" not in text
    fresh = await escalate(
        bot, summary="Dark mode colours wrong in the mobile app", details="", tried="Checked the theme setting"
    )
    assert "Similar resolved escalations" not in card_text(fresh)


# ---- App Home ---------------------------------------------------------------------------


def home_of(bot: Bot, user: str) -> list[dict[str, Any]]:
    homes = [v for v in bot.fake.views_for(user) if v.get("_home")]
    return homes[-1]["blocks"] if homes else []


def home_text(blocks: list[dict[str, Any]]) -> str:
    out = []
    for b in blocks:
        if isinstance(b.get("text"), dict):
            out.append(b["text"]["text"])
        for el in b.get("elements", []) or []:
            if isinstance(el.get("text"), dict):
                out.append(el["text"]["text"])
            elif isinstance(el.get("text"), str):
                out.append(el["text"])
    return "\n".join(out)


def home_buttons(blocks: list[dict[str, Any]]) -> list[tuple[str, str]]:
    found = []
    for b in blocks:
        acc = b.get("accessory")
        if acc and acc.get("type") == "button":
            found.append((acc["action_id"], acc["value"]))
        for el in b.get("elements", []) if b.get("type") == "actions" else []:
            found.append((el["action_id"], el["value"]))
    return found


async def open_home(bot: Bot, user: str) -> list[dict[str, Any]]:
    before = len([v for v in bot.fake.views_for(user) if v.get("_home")])
    assert (await bot.slack.open_home(user)).status == 200
    await bot.fake.wait_for(lambda: len([v for v in bot.fake.views_for(user) if v.get("_home")]) > before)
    return home_of(bot, user)


async def test_home_lists_the_open_queue_most_severe_then_oldest_with_claim_buttons(bot: Bot) -> None:
    await escalate(bot, summary="Old normal one", severity="P3")
    await escalate(bot, summary="Newer critical one", severity="P1")
    await escalate(bot, summary="Newest normal one", severity="P3")
    blocks = await open_home(bot, ANA)
    text = home_text(blocks)
    order = [text.index(s) for s in ("Newer critical one", "Old normal one", "Newest normal one")]
    assert order == sorted(order), text
    assert "Open, waiting for a senior* (3)" in text
    assert [a for a, _ in home_buttons(blocks)] == ["claim", "claim", "claim"]
    # The requester sees their own under "My escalations", with no Claim button on them.
    mine = await open_home(bot, JUNIOR)
    assert home_buttons(mine) == [] and "My escalations" in home_text(mine)
    assert home_text(mine).count("Open · waiting for a senior") == 3


async def test_a_new_escalation_appears_on_the_home_tab_of_someone_looking_at_it(bot: Bot) -> None:
    assert "Open, waiting for a senior* (0)" in home_text(await open_home(bot, BEN))
    await escalate(bot, summary="Checkout returns 502")
    # Ben does nothing: his Home tab is refreshed (within the refresh period, a couple of seconds).
    await bot.fake.wait_for(lambda: "Open, waiting for a senior* (1)" in home_text(home_of(bot, BEN)), timeout=10)
    assert "Checkout returns 502" in home_text(home_of(bot, BEN))


async def test_claim_from_home_is_the_same_race_and_everyone_looking_sees_it(bot: Bot) -> None:
    card = await escalate(bot, summary="Checkout returns 502")
    ana_home = await open_home(bot, ANA)
    await open_home(bot, BEN)
    (action, value) = home_buttons(ana_home)[0]
    assert action == "claim" and value == button_value(card, "claim")

    assert (await bot.slack.home_click(ANA, "claim", value)).status == 200
    ana_now = await bot.fake.wait_for(lambda: "You claimed ESC-1" in home_text(home_of(bot, ANA)) and home_of(bot, ANA))
    assert "My claims" in home_text(ana_now) and [a for a, _ in home_buttons(ana_now)] == ["resolve", "release"]
    await bot.fake.wait_for(lambda: "Claimed by" in card_text(card))  # the card, through the same path
    # Ben looked at his Home tab: it is refreshed without him doing anything.
    await bot.fake.wait_for(lambda: "Open, waiting for a senior* (0)" in home_text(home_of(bot, BEN)), timeout=10)

    # Ben's stale Home button loses, and he is told who won, on his Home tab.
    assert (await bot.slack.home_click(BEN, "claim", value)).status == 200
    await bot.fake.wait_for(lambda: f"Already claimed by <@{ANA}>" in home_text(home_of(bot, BEN)))
    ws = await bot.workspace_id()
    h = await bot.runtime.service.get(ws, 1)
    assert h is not None and h.claimed_by == ANA

    # Release from Home: open again for everyone.
    assert (await bot.slack.home_click(ANA, "release", button_value(card, "release"))).status == 200
    await bot.fake.wait_for(lambda: "You released ESC-1" in home_text(home_of(bot, ANA)))
    await bot.fake.wait_for(lambda: "claim" in buttons(card))


# ---- commands ------------------------------------------------------------------------------


async def test_help_lists_every_command(bot: Bot) -> None:
    answer = await command(bot, JUNIOR, "help")
    for word in ("/escalate mine", "/escalate stats", "/escalate config", "/escalate help", "Escalate this message"):
        assert word in answer["text"]


async def test_mine_lists_only_the_callers_open_escalations(bot: Bot) -> None:
    empty = await command(bot, JUNIOR, "mine")
    assert "no open escalations" in empty.text
    await escalate(bot, summary="Mine, open")
    claimed = await escalate(bot, summary="Mine, being worked on")
    await escalate(bot, user="U0SOMEONEELSE", summary="Somebody else's")
    done = await escalate(bot, summary="Mine, already resolved")
    await resolve(bot, BEN, done, "Fixed.")
    assert (await bot.slack.click(ANA, claimed, "claim")).status == 200
    await bot.fake.wait_for(lambda: "Claimed by" in card_text(claimed))
    listed = (await command(bot, JUNIOR, "mine")).text
    assert "Mine, open" in listed and "Mine, being worked on" in listed and f"claimed by <@{ANA}>" in listed
    assert "Somebody else's" not in listed and "already resolved" not in listed


async def test_stats_shows_this_week_so_far(bot: Bot) -> None:
    await escalate(bot, summary="One")
    card = await escalate(bot, summary="Two")
    assert (await bot.slack.click(ANA, card, "claim")).status == 200
    await bot.fake.wait_for(lambda: "Claimed by" in card_text(card))
    reply = await command(bot, "U0LEAD", "stats")
    assert "2 opened, 1 claimed" in reply.text
    assert any("This week so far" in (b.get("elements") or [{}])[0].get("text", "") for b in reply.blocks or [])


@pytest.mark.parametrize("bot_overrides", [{"slack_lead_user_ids": ["U0LEAD"]}])
async def test_stats_are_for_the_leads_when_leads_are_named(bot: Bot) -> None:
    assert "for the leads" in (await command(bot, JUNIOR, "stats")).text
    assert "opened" in (await command(bot, "U0LEAD", "stats")).text


# ---- /escalate config -----------------------------------------------------------------------


async def test_config_is_for_admins_and_changes_where_cards_go_and_who_may_claim(bot: Bot) -> None:
    bot.fake.users.update({"U0ADMIN": "Ada Admin", JUNIOR: "Jun"})
    bot.fake.admins.add("U0ADMIN")
    refused = await command(bot, JUNIOR, "config")
    assert "Only workspace admins" in refused.text and not [v for v in bot.fake.views_for(JUNIOR)]
    bot.fake.fail_next("users.info", Fail(error="missing_scope"))  # installed before users:read was asked for
    assert "lacks the users:read scope" in (await command(bot, "U0ADMIN", "config")).text

    assert (await bot.slack.command("U0ADMIN", "config")).status == 200
    modal = (await bot.fake.wait_for(lambda: bot.fake.views_for("U0ADMIN")))[-1]
    assert modal["callback_id"] == "workspace_config"
    bad = await bot.slack.submit(
        "U0ADMIN", modal, {"escalation_channel": "C0NEWESC", "senior_usergroup": "not a group"}
    )
    assert "senior_usergroup" in bad.json()["errors"]
    ok = await bot.slack.submit(
        "U0ADMIN",
        modal,
        {"escalation_channel": "C0NEWESC", "leads_channel": "C0LEADS", "senior_user_ids": ["U0ONLYSENIOR"]},
    )
    assert ok.status == 200 and not ok.body, ok.body

    before = len(bot.fake.views_for(JUNIOR))
    assert (await bot.slack.command(JUNIOR, "")).status == 200
    form = (await bot.fake.wait_for(lambda: len(bot.fake.views_for(JUNIOR)) > before and bot.fake.views_for(JUNIOR)))[
        -1
    ]
    assert (await bot.slack.submit(JUNIOR, form, FORM)).status == 200
    cards = await bot.fake.wait_for(lambda: bot.fake.channel_messages("C0NEWESC"))
    # ANA is on the environment's list, but this workspace now names its own seniors.
    before = len(bot.fake.replies_to(ANA))
    assert (await bot.slack.click(ANA, cards[-1], "claim")).status == 200
    assert "Only seniors can claim" in (await reply_to(bot, ANA, before)).text
    before = len(bot.fake.replies_to("U0ONLYSENIOR"))
    assert (await bot.slack.click("U0ONLYSENIOR", cards[-1], "claim")).status == 200
    assert "You claimed" in (await reply_to(bot, "U0ONLYSENIOR", before)).text
