"""Queues on Slack, over HTTP against the strict fake: the form picks the queue (by prefix, by the
channel it was run in, or by hand), the card goes to that queue's channel and only its seniors
claim it; a senior moves it on with a note, the holder escalates it further with what they tried,
and the old card says where it went. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from dataclasses import replace
from typing import Any

from bot.sandbox.fake_slack import Message
from bot.sandbox.simulator import button_value
from handoff.domain import Queue
from handoff.service import HandoffService, utcnow
from tests.conftest import ESC_CHANNEL, JUNIOR, SENIORS, Bot
from tests.helpers import FORM, buttons, card_text, open_form
from tests.test_slack_depth import open_home

BILLING_CHANNEL = "C0NEWESC"  # a channel the bot is in (tests/conftest.py)
BILLING_SENIORS = ("U0BILL1", "U0BILL2")
SUPPORT_BILLING = "C0SUPBILLING"  # the channel juniors ask about billing in


async def add_billing(bot: Bot) -> tuple[Queue, Queue]:
    ws = await bot.workspace_id()
    billing = await bot.runtime.service.add_queue(
        ws,
        Queue(
            id=0,
            workspace_id=ws,
            name="Billing",
            is_default=False,
            aliases=("bill",),
            escalation_channel=BILLING_CHANNEL,
            senior_user_ids=BILLING_SENIORS,
            serves=(SUPPORT_BILLING,),
        ),
    )
    assert billing is not None
    return (await bot.runtime.service.queues(ws))[0], billing


def block(view: dict[str, Any], block_id: str) -> dict[str, Any]:
    return next(b for b in view["blocks"] if b.get("block_id") == block_id)


async def escalate_to_billing(bot: Bot, **answers: Any) -> Message:
    view = await open_form(bot, text="bill: customer can't pay by card")
    answer = await bot.slack.submit(JUNIOR, view, {**FORM, "summary": "Customer can't pay by card", **answers})
    assert answer.status == 200 and not answer.body, answer.body
    cards = await bot.fake.wait_for(lambda: bot.fake.channel_messages(BILLING_CHANNEL))
    return cards[-1]


async def reply_to(bot: Bot, user: str, card: Message, action: str, value: str | None = None) -> str:
    before = len([r for r in bot.fake.replies if r.user == user])
    answer = await bot.slack.click(user, card, action, value=value)
    assert answer.status == 200
    replies = await bot.fake.wait_for(
        lambda: len(mine := [r for r in bot.fake.replies if r.user == user]) > before and mine
    )
    return replies[-1].text


async def open_move_form(bot: Bot, user: str, card: Message) -> dict[str, Any]:
    before = len(bot.fake.views_for(user))
    assert (await bot.slack.click(user, card, "move")).status == 200
    views = await bot.fake.wait_for(lambda: len(bot.fake.views_for(user)) > before and bot.fake.views_for(user))
    return views[-1]


async def test_one_queue_asks_nothing_and_shows_no_queue(bot: Bot) -> None:
    view = await open_form(bot, text="billing: customer can't pay")
    assert not any(b.get("block_id") == "queue" for b in view["blocks"])
    assert block(view, "summary")["element"]["initial_value"] == "billing: customer can't pay"


async def test_the_form_picks_the_queue_by_prefix_or_channel_and_its_seniors_claim(bot: Bot) -> None:
    default, billing = await add_billing(bot)
    by_prefix = await open_form(bot, text="bill: customer can't pay by card")
    assert block(by_prefix, "queue")["element"]["initial_option"]["value"] == str(billing.id)
    assert block(by_prefix, "summary")["element"]["initial_value"] == "customer can't pay by card"
    before = len(bot.fake.views_for(JUNIOR))
    await bot.slack.command(JUNIOR, "refund stuck", channel=SUPPORT_BILLING)
    by_channel = (await bot.fake.wait_for(lambda: bot.fake.views_for(JUNIOR)[before:]))[-1]
    assert block(by_channel, "queue")["element"]["initial_option"]["value"] == str(billing.id)
    plain = await open_form(bot, text="VPN is down")
    assert block(plain, "queue")["element"]["initial_option"]["value"] == str(default.id)

    card = await escalate_to_billing(bot)
    assert "Queue: *Billing*" in card_text(card) and bot.fake.channel_messages(ESC_CHANNEL) == []
    assert buttons(card) == ["claim", "move"]
    refused = await reply_to(bot, SENIORS[0], card, "claim")  # a senior of the default queue only
    assert not refused.startswith("You claimed")
    assert (await reply_to(bot, BILLING_SENIORS[0], card, "claim")).startswith("You claimed")


async def test_a_senior_moves_it_on_and_the_old_card_says_where_it_went(bot: Bot) -> None:
    default, _billing = await add_billing(bot)
    card = await escalate_to_billing(bot)
    old_value = button_value(card, "claim")
    form = await open_move_form(bot, BILLING_SENIORS[0], card)
    answer = await bot.slack.submit(
        BILLING_SENIORS[0], form, {"queue": str(default.id), "note": "Not billing: <the SSO login> fails first"}
    )
    assert answer.status == 200 and not answer.body, answer.body
    new = (await bot.fake.wait_for(lambda: bot.fake.channel_messages(ESC_CHANNEL)))[-1]
    shown = card_text(new)
    assert "Moved here from Billing" in shown and "&lt;the SSO login&gt; fails first" in shown
    assert "ESC-1" in shown and "Queue: *General*" in shown and buttons(new) == ["claim", "move"]
    await bot.fake.wait_for(lambda: "Moved to General" in card_text(card))
    assert buttons(card) == [] and bot.fake.permalink_of(ESC_CHANNEL, new.ts) in card_text(card)
    dm = await bot.fake.wait_for(lambda: [m for m in bot.fake.dms_to(JUNIOR) if "moved your escalation" in m.text])
    assert "General" in dm[-1].text
    # A click on the old card is told where it went; the new card is the one that claims.
    moved = await reply_to(bot, SENIORS[1], card, "claim", value=old_value)
    assert "has moved to *General*" in moved
    assert (await reply_to(bot, SENIORS[1], new, "claim")).startswith("You claimed")


async def test_the_holder_escalates_further_with_what_they_tried(bot: Bot) -> None:
    default, _billing = await add_billing(bot)
    card = await escalate_to_billing(bot)
    assert (await reply_to(bot, BILLING_SENIORS[0], card, "claim")).startswith("You claimed")
    await bot.fake.wait_for(lambda: "Claimed by" in card_text(card))
    assert buttons(card) == ["resolve", "release", "move"]
    form = await open_move_form(bot, BILLING_SENIORS[0], card)
    assert any(b.get("block_id") == "move_tried" for b in form["blocks"])
    answer = await bot.slack.submit(
        BILLING_SENIORS[0],
        form,
        {"queue": str(default.id), "note": "Needs tier 3", "move_tried": "Checked the gateway logs"},
    )
    assert answer.status == 200 and not answer.body, answer.body
    new = (await bot.fake.wait_for(lambda: bot.fake.channel_messages(ESC_CHANNEL)))[-1]
    shown = card_text(new)
    assert f"What <@{BILLING_SENIORS[0]}> tried" in shown and "Checked the gateway logs" in shown
    assert FORM["tried"] in shown  # the junior's own "What was tried" stays too
    assert buttons(new) == ["claim", "move"]  # the holder was released: open in the new queue


async def test_a_move_of_a_card_claimed_meanwhile_moves_nothing_and_says_why(bot: Bot) -> None:
    default, _billing = await add_billing(bot)
    card = await escalate_to_billing(bot)
    form = await open_move_form(bot, BILLING_SENIORS[0], card)
    assert (await reply_to(bot, BILLING_SENIORS[1], card, "claim")).startswith("You claimed")
    answer = await bot.slack.submit(BILLING_SENIORS[0], form, {"queue": str(default.id), "note": "networking"})
    assert answer.status == 200 and f"claimed by <@{BILLING_SENIORS[1]}>" in answer.body
    assert bot.fake.channel_messages(ESC_CHANNEL) == []


async def test_only_the_queues_seniors_leads_or_holder_may_move(bot: Bot) -> None:
    await add_billing(bot)
    card = await escalate_to_billing(bot)
    refused = await reply_to(bot, SENIORS[0], card, "move")
    assert "Only the seniors and leads" in refused


def cli(args: list[str], db_url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "TEAMS_", "DATABASE_URL", "LOG_"))}
    env.update(
        DATABASE_URL=db_url,
        SLACK_SIGNING_SECRET="signing-secret-for-cli",
        SLACK_BOT_TOKEN="xoxb-cli-test",
        SLACK_ESCALATION_CHANNEL=ESC_CHANNEL,
    )
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


async def test_an_operator_keeps_queues_from_the_command_line(bot: Bot, db_url: str) -> None:
    ws = await bot.workspace_id()
    added = await asyncio.to_thread(
        cli,
        [
            "queue",
            "add",
            "Billing",
            "--channel",
            BILLING_CHANNEL,
            "--seniors",
            ",".join(BILLING_SENIORS),
            "--alias",
            "bill,Payments",
            "--serves",
            SUPPORT_BILLING,
            "--reminder-minutes",
            "10",
        ],
        db_url,
    )
    assert added.returncode == 0, added.stderr
    listed = await asyncio.to_thread(cli, ["queue", "list"], db_url)
    assert (
        "General (default)" in listed.stdout
        and f"Billing: cards to {BILLING_CHANNEL} serves {SUPPORT_BILLING}" in listed.stdout
    )
    billing = next(q for q in await HandoffService(bot.runtime.db).queues(ws) if q.name == "Billing")
    assert (billing.aliases, billing.senior_user_ids, billing.reminder_minutes) == (
        ("bill", "payments"),
        BILLING_SENIORS,
        10,
    )
    assert (await asyncio.to_thread(cli, ["queue", "add", "billing"], db_url)).returncode == 1  # names are unique

    bot.runtime.service._queues.clear()  # the running bot would see it within QUEUES_TTL; don't wait for it here
    card = await escalate_to_billing(bot)
    refused = await asyncio.to_thread(cli, ["queue", "remove", "Billing"], db_url)
    assert refused.returncode == 1 and "open escalations" in refused.stderr
    removed = await asyncio.to_thread(cli, ["queue", "remove", "Billing", "--move-to", "General"], db_url)
    assert removed.returncode == 0 and "1 open escalation(s) moved to General" in removed.stdout, removed.stderr
    bot.runtime.worker.wake()
    await bot.fake.wait_for(lambda: bot.fake.channel_messages(ESC_CHANNEL), timeout=15)
    await bot.fake.wait_for(lambda: "Moved to General" in card_text(card), timeout=15)


ADMIN = "U0ADMIN"


async def command_reply(bot: Bot, user: str, text: str) -> str:
    before = len([r for r in bot.fake.replies if r.user == user])
    assert (await bot.slack.command(user, text)).status == 200
    replies = await bot.fake.wait_for(
        lambda: len(mine := [r for r in bot.fake.replies if r.user == user]) > before and mine
    )
    return replies[-1].text


async def command_form(bot: Bot, user: str, text: str) -> dict[str, Any]:
    before = len(bot.fake.views_for(user))
    assert (await bot.slack.command(user, text)).status == 200
    return (await bot.fake.wait_for(lambda: bot.fake.views_for(user)[before:]))[-1]


async def test_admins_add_change_and_remove_queues_in_modals(bot: Bot) -> None:
    bot.fake.users.update({ADMIN: "Ada Admin", JUNIOR: "Jun"})
    bot.fake.admins.add(ADMIN)
    assert "Only workspace admins" in await command_reply(bot, JUNIOR, "config queue Billing")
    form = await command_form(bot, ADMIN, "config queue Billing")
    assert block(form, "queue_name")["element"]["initial_value"] == "Billing"
    answer = await bot.slack.submit(
        ADMIN,
        form,
        {
            "escalation_channel": BILLING_CHANNEL,
            "senior_user_ids": list(BILLING_SENIORS),
            "aliases": "bill, Payments",
            "serves": [SUPPORT_BILLING],
            "reminder_minutes": "15",
            "lead_alert_minutes": "soon",
        },
    )
    assert answer.status == 200 and "A number of minutes" in answer.body  # the form stays open, saying why
    answer = await bot.slack.submit(
        ADMIN,
        form,
        {
            "queue_name": "Billing",
            "escalation_channel": BILLING_CHANNEL,
            "senior_user_ids": list(BILLING_SENIORS),
            "aliases": "bill, Payments",
            "serves": [SUPPORT_BILLING],
            "reminder_minutes": "15",
        },
    )
    assert answer.status == 200 and not answer.body, answer.body
    ws = await bot.workspace_id()
    billing = next(q for q in await HandoffService(bot.runtime.db).queues(ws) if q.name == "Billing")
    assert (billing.escalation_channel, billing.senior_user_ids, billing.aliases, billing.serves) == (
        BILLING_CHANNEL,
        BILLING_SENIORS,
        ("bill", "payments"),
        (SUPPORT_BILLING,),
    )
    assert billing.reminder_minutes == 15
    settings = await command_form(bot, ADMIN, "config")
    assert "Billing" in str(settings["blocks"][0]) and "config remove NAME" in str(settings["blocks"][0])
    again = await command_form(bot, ADMIN, "config queue bill")  # an alias finds it: the form edits it
    assert block(again, "escalation_channel")["element"]["initial_conversation"] == BILLING_CHANNEL

    card = await escalate_to_billing(bot)
    assert "default queue can't be removed" in await command_reply(bot, ADMIN, "config remove General")
    removal = await command_form(bot, ADMIN, "config remove Billing")
    assert "has 1 open or claimed escalation" in str(removal["blocks"][0])
    answer = await bot.slack.submit(ADMIN, removal, {})  # the default queue is preselected
    assert answer.status == 200 and not answer.body, answer.body
    await bot.fake.wait_for(lambda: bot.fake.channel_messages(ESC_CHANNEL), timeout=15)
    await bot.fake.wait_for(lambda: "Moved to General" in card_text(card), timeout=15)
    assert [q.name for q in await HandoffService(bot.runtime.db).queues(ws)] == ["General"]


async def test_the_home_tab_names_queues_and_puts_the_viewers_first(bot: Bot) -> None:
    await add_billing(bot)
    await escalate_to_billing(bot)
    general = await open_form(bot, text="VPN is down")
    await bot.slack.submit(JUNIOR, general, {**FORM, "summary": "VPN is down"})
    await bot.fake.wait_for(lambda: bot.fake.channel_messages(ESC_CHANNEL))

    async def home_of(user: str) -> str:
        return str(await open_home(bot, user))

    billing_view = await home_of(BILLING_SENIORS[0])
    assert billing_view.index("Customer can't pay by card") < billing_view.index("VPN is down")
    assert "· Billing ·" in billing_view and "· General ·" in billing_view
    general_view = await home_of(SENIORS[0])
    assert general_view.index("VPN is down") < general_view.index("Customer can't pay by card")


async def test_mine_and_stats_know_queues(bot: Bot) -> None:
    _default, billing = await add_billing(bot)
    ws = await bot.workspace_id()
    await bot.runtime.service.edit_queue(ws, replace(billing, lead_user_ids=("U0BILLLEAD",)))
    await escalate_to_billing(bot)
    mine = await command_reply(bot, JUNIOR, "mine")
    assert "Customer can't pay by card" in mine and "· Billing ·" in mine
    await command_reply(bot, "U0BILLLEAD", "stats bill")
    shown = [r for r in bot.fake.replies if r.user == "U0BILLLEAD"][-1]
    assert "Escalations · Billing · week" in str(shown.blocks) and "Opened" in str(shown.blocks)
    assert "for the leads" in await command_reply(bot, JUNIOR, "stats bill")
    assert "no queue called tier 9" in await command_reply(bot, "U0BILLLEAD", "stats tier 9")


async def test_claims_and_moves_at_once_over_http_leave_one_outcome_and_tell_everyone_which(bot: Bot) -> None:
    ws = await bot.workspace_id()
    seniors = tuple(f"U0BILLS{i}" for i in range(9))
    _default, billing = await add_billing(bot)
    await bot.runtime.service.edit_queue(ws, replace(billing, senior_user_ids=seniors))
    bot.runtime.service._queues.clear()  # the bot's own cache (QUEUES_TTL): see the new seniors now
    card = await escalate_to_billing(bot)
    movers, claimers = seniors[:3], seniors[3:]
    forms = [await open_move_form(bot, m, card) for m in movers]
    answers = await asyncio.gather(
        *(
            bot.slack.submit(m, f, {"queue": str(_default.id), "note": "Networking, not billing"})
            for m, f in zip(movers, forms, strict=True)
        ),
        *(bot.slack.click(c, card, "claim") for c in claimers),
    )
    assert all(a.status == 200 for a in answers)
    moved = [m for m, a in zip(movers, answers[:3], strict=True) if not a.body]
    told = await bot.fake.wait_for(
        lambda: len(r := {x.user: x.text for x in bot.fake.replies if x.user in claimers}) == len(claimers) and r
    )
    won = [c for c, text in told.items() if text.startswith("You claimed")]
    assert len(moved) + len(won) == 1, (moved, won, told)
    if won:  # claimed in Billing: every mover is told it was claimed meanwhile, nothing moved
        assert all(f"claimed by <@{won[0]}>" in a.body for a in answers[:3]), [a.body for a in answers[:3]]
        assert all(text.startswith(f"Already claimed by <@{won[0]}>") for c, text in told.items() if c != won[0]), told
        assert bot.fake.channel_messages(ESC_CHANNEL) == []
    else:  # moved: the other movers see it changed, every claimer is told where it went
        assert all("nothing was moved" in a.body for m, a in zip(movers, answers[:3], strict=True) if m not in moved), [
            a.body for a in answers[:3]
        ]
        assert all("has moved to *General*" in text for text in told.values()), told
        await bot.fake.wait_for(lambda: bot.fake.channel_messages(ESC_CHANNEL))


async def test_the_requester_cancels_and_the_card_says_so_and_by_whom(bot: Bot) -> None:
    await add_billing(bot)
    card = await escalate_to_billing(bot)
    assert (await reply_to(bot, BILLING_SENIORS[0], card, "claim")).startswith("You claimed")
    assert "Only the person who escalated ESC-1" in await command_reply(bot, BILLING_SENIORS[0], "cancel ESC-1")
    assert "Say which" in await command_reply(bot, JUNIOR, "cancel")
    assert "ESC-1 is cancelled" in await command_reply(bot, JUNIOR, "cancel esc-1")
    await bot.fake.wait_for(lambda: "Cancelled by <@U0JUNIOR>" in card_text(card))
    assert buttons(card) == []
    notes = await bot.fake.wait_for(
        lambda: [m for m in bot.fake.thread(card.channel, card.ts) if "cancelled" in m.text]
    )
    assert notes[-1].text.startswith("<@U0JUNIOR> cancelled ESC-1")  # the holder reads it in the thread
    late = await reply_to(bot, BILLING_SENIORS[1], card, "claim", value='{"h":1,"v":1}')  # from an old copy
    assert late == "ESC-1 was cancelled by <@U0JUNIOR>."
    assert "ESC-1 was cancelled" in await command_reply(bot, JUNIOR, "cancel ESC-1")


def mrkdwn(node: Any) -> list[str]:
    """Every mrkdwn text in blocks: what Slack parses for mentions and links."""
    if isinstance(node, list):
        return [t for n in node for t in mrkdwn(n)]
    if not isinstance(node, dict):
        return []
    own = [node["text"]] if node.get("type") == "mrkdwn" and isinstance(node.get("text"), str) else []
    return own + [t for v in node.values() for t in mrkdwn(v)]


async def test_a_queues_name_is_escaped_in_stats_and_the_weekly_posts_text(bot: Bot) -> None:
    """An admin names a queue `Billing & <!channel>`: shown, it pings nobody and links nowhere."""
    ws = await bot.workspace_id()
    added = await bot.runtime.service.add_queue(
        ws, Queue(id=0, workspace_id=ws, name="Billing & <!channel>", is_default=False, aliases=("bill",))
    )
    assert added is not None
    await command_reply(bot, SENIORS[0], "stats bill")
    shown = [r for r in bot.fake.replies if r.user == SENIORS[0]][-1]
    assert "Billing &amp; &lt;!channel&gt;" in shown.text
    assert "<!channel>" not in shown.text
    assert not [m for m in mrkdwn(shown.blocks) if "<!channel>" in m]  # plain_text (the header) is never parsed

    # The queue's own weekly post: its text (what notifications show) carries the name too.
    from bot.slack.report_blocks import report_fallback
    from handoff.report import build_report
    from handoff.schedule import week_start_of

    week = week_start_of(utcnow().date())
    queue = (added.id, added.name)
    report = await build_report(bot.runtime.db, ws, week, timezone="UTC", baseline_minutes=30, queue=queue)
    assert "Billing &amp; &lt;!channel&gt;" in report_fallback(report) and "<!" not in report_fallback(report)


async def test_the_cli_and_the_admins_form_take_the_same_other_names(bot: Bot, db_url: str) -> None:
    """Aliases the form could not show (its field holds 200 characters) are refused by the CLI too;
    whatever the CLI takes opens in the form and saves unchanged."""
    bot.fake.users.update({ADMIN: "Ada Admin"})
    bot.fake.admins.add(ADMIN)
    ws = await bot.workspace_id()
    too_many = ",".join(f"billing-{i:02d}" for i in range(25))  # 25 x 10 characters, 298 with ", "
    refused = await asyncio.to_thread(cli, ["queue", "add", "Billing", "--alias", too_many], db_url)
    assert refused.returncode == 2, refused.stdout
    assert "--alias: The other names together, with commas, are at most 200 characters" in refused.stderr
    assert [q.name for q in await HandoffService(bot.runtime.db).queues(ws)] == ["General"]  # nothing added
    most = ",".join(f"billing-{i:02d}" for i in range(16))  # 16 x 10 + 15 x 2 = 190 characters
    added = await asyncio.to_thread(
        cli, ["queue", "add", "Billing", "--channel", BILLING_CHANNEL, "--alias", most], db_url
    )
    assert added.returncode == 0, added.stderr
    edited = await asyncio.to_thread(cli, ["queue", "edit", "Billing", "--alias", too_many], db_url)
    assert edited.returncode == 2 and "--alias" in edited.stderr
    bot.runtime.service._queues.clear()  # the running bot would see it within QUEUES_TTL
    form = await command_form(bot, ADMIN, "config queue Billing")  # the fake refuses a value over the field's max
    shown = block(form, "aliases")["element"]
    assert len(shown["initial_value"]) == 190 and shown["max_length"] == 200
    as_shown = {"queue_name": "Billing", "escalation_channel": BILLING_CHANNEL, "aliases": shown["initial_value"]}
    answer = await bot.slack.submit(ADMIN, form, as_shown)
    assert answer.status == 200 and not answer.body, answer.body
    answer = await bot.slack.submit(ADMIN, form, {**as_shown, "aliases": too_many})
    assert "at most 200 characters" in answer.body  # the form says the same as the CLI
