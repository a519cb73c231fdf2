"""Timed work through the running bot: the weekly post (once, and late if need be) and the
reminders for unclaimed escalations, with time moved by time-machine."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine

from bot.scheduler import Scheduler
from handoff.domain import Queue
from handoff.service import HandoffService
from storage.db import Database
from tests.conftest import ESC_CHANNEL, JUNIOR, SENIORS, Bot
from tests.helpers import card_text, escalate, open_form, settle
from tests.test_operations import cli
from tests.test_report import png_size
from tests.test_slack_flow import click

LEADS = "C0LEADS"
LEAD_IDS = ["U0LEAD1", "U0LEAD2"]
BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture
def bot_overrides() -> dict[str, Any]:
    return {
        "slack_leads_channel": LEADS,
        "timezone": "Europe/Berlin",
        "report_weekday": "monday",
        "report_time": time(9),
        "reminder_minutes": 10,
        "lead_alert_minutes": 30,
        "scheduler_seconds": 3600,  # the tests tick it themselves, at the moments they choose
    }


def next_monday(hour: int, minute: int = 0, tz: tzinfo = BERLIN) -> datetime:
    """The coming Monday at `hour` in `tz`, the workspace's time zone: the week before it holds now
    there (from Sunday 23:00 UTC it is Monday in Berlin but still Sunday in UTC)."""
    today = datetime.now(tz).date()
    monday = today + timedelta(days=(7 - today.weekday()) % 7 or 7)
    return datetime(monday.year, monday.month, monday.day, hour, minute, tzinfo=tz)


def report_posts(bot: Bot) -> list:  # type: ignore[type-arg]
    return [m for m in bot.fake.channel_messages(LEADS) if "Escalations" in m.text]


async def test_three_schedulers_due_at_once_post_once_with_the_chart(bot: Bot) -> None:
    await escalate(bot)  # the workspace exists, and this week has an escalation
    settings = bot.runtime.settings
    others = [Database(bot.runtime.db.url) for _ in range(2)]
    try:
        with time_machine.travel(next_monday(9, 0) + timedelta(seconds=5), tick=True):
            ticks = [bot.runtime.scheduler.tick()] + [  # type: ignore[union-attr]
                Scheduler(HandoffService(d), settings).tick() for d in others
            ]
            await asyncio.gather(*ticks)
            bot.runtime.worker.wake()
            await bot.fake.wait_for(lambda: bot.fake.files, timeout=30)
            await settle(bot)  # nothing more to send: a second report would have gone out by now
    finally:
        for d in others:
            await d.dispose()
    posts = report_posts(bot)
    assert len(posts) == 1 and len(bot.fake.files) == 1
    this_week = (next_monday(9) - timedelta(days=7)).date()
    assert f"week {this_week.isocalendar()[0]}-W{this_week.isocalendar()[1]:02d}" in card_text(posts[0])
    assert "Opened" in card_text(posts[0]) and "1" in card_text(posts[0])
    upload = bot.fake.files[0]
    assert upload["channel"] == LEADS and upload["filename"].endswith(".png")
    assert png_size(upload["data"]) == (1200, 600)


async def test_down_at_nine_started_at_eleven_posts_at_eleven_for_the_right_week(bot: Bot) -> None:
    await escalate(bot)
    service = bot.runtime.service
    settings = bot.runtime.settings
    kw = {"weekday": settings.report_weekday, "at": settings.report_time, "timezone": settings.timezone}
    with time_machine.travel(next_monday(11, 0), tick=True):
        queued = await service.queue_weekly_reports(**kw)
    assert [w for _ws, w in queued] == [(next_monday(9) - timedelta(days=7)).date()]
    with time_machine.travel(next_monday(11, 30), tick=True):
        assert await service.queue_weekly_reports(**kw) == []  # once per week
    with time_machine.travel(next_monday(9) + timedelta(days=7, minutes=-1), tick=True):
        assert await service.queue_weekly_reports(**kw) == []  # next week's is not due yet
    with time_machine.travel(next_monday(9) + timedelta(days=7, minutes=1), tick=True):
        nxt = await service.queue_weekly_reports(**kw)
    assert [w for _ws, w in nxt] == [next_monday(9).date()]


def thread_replies(bot: Bot, card) -> list:  # type: ignore[no-untyped-def,type-arg]
    return bot.fake.thread(card.channel, card.ts)


async def tick_and_settle(bot: Bot) -> None:
    await bot.runtime.scheduler.tick()  # type: ignore[union-attr]
    await settle(bot)


async def test_reminders_fire_once_each_at_the_right_minute(bot: Bot) -> None:
    with time_machine.travel(datetime.now(UTC), tick=True) as t:
        card = await escalate(bot)  # P2
        claimed = await escalate(bot, summary="Claimed quickly")
        await click(bot, SENIORS[0], claimed, "claim")
        t.shift(timedelta(minutes=9, seconds=50))
        await tick_and_settle(bot)
        assert thread_replies(bot, card) == []
        t.shift(timedelta(seconds=20))  # 10 min 10 s
        await tick_and_settle(bot)
        await tick_and_settle(bot)
        pings = thread_replies(bot, card)
        assert len(pings) == 1
        assert pings[0].text.startswith(" ".join(f"<@{u}>" for u in SENIORS[:30]))
        assert "ESC-1" in pings[0].text and "has waited 10 min" in pings[0].text
        assert not any("waited" in m.text for m in thread_replies(bot, claimed))
        assert bot.fake.channel_messages(LEADS) == []
        t.shift(timedelta(minutes=20))  # 30 min 10 s: the leads hear, once
        await tick_and_settle(bot)
        await tick_and_settle(bot)
    alerts = [m for m in bot.fake.channel_messages(LEADS) if "nobody has claimed it" in m.text]
    assert len(alerts) == 1 and "ESC-1" in alerts[0].text and "/archives/" in alerts[0].text
    assert len(thread_replies(bot, card)) == 1
    assert not any("ESC-2" in m.text for m in bot.fake.channel_messages(LEADS))


async def test_p1_is_chased_three_times_sooner(bot: Bot) -> None:
    with time_machine.travel(datetime.now(UTC), tick=True) as t:
        card = await escalate(bot, severity="P1")
        t.shift(timedelta(minutes=3, seconds=10))
        await tick_and_settle(bot)
        assert thread_replies(bot, card) == []
        t.shift(timedelta(seconds=20))  # 3 min 30 s > 10 / 3
        await tick_and_settle(bot)
        assert len(thread_replies(bot, card)) == 1
        t.shift(timedelta(minutes=6, seconds=40))  # 10 min 10 s > 30 / 3
        await tick_and_settle(bot)
    assert len([m for m in bot.fake.channel_messages(LEADS) if "ESC-1" in m.text]) == 1
    assert ESC_CHANNEL


@pytest.mark.parametrize(
    "bot_overrides",
    [{"slack_leads_channel": LEADS, "slack_lead_user_ids": LEAD_IDS, "scheduler_seconds": 3600}],
)
async def test_lead_ids_are_told_by_dm(bot: Bot) -> None:
    # With SLACK_LEAD_USER_IDS the leads get a DM each instead of a channel post.
    with time_machine.travel(datetime.now(UTC), tick=True) as t:
        await escalate(bot)
        t.shift(timedelta(minutes=30, seconds=10))
        await tick_and_settle(bot)
    for lead in LEAD_IDS:
        dms = bot.fake.dms_to(lead)
        assert len(dms) == 1 and "ESC-1" in dms[0].text
    assert bot.fake.channel_messages(LEADS) == []


async def test_an_install_without_files_write_gets_the_text_once_and_is_told_once_how_to_get_the_chart(
    bot: Bot,
) -> None:
    """A workspace that installed the app before it asked for files:write: Slack refuses the chart
    (missing_scope). The report text goes out once, the row is done (not dead, not retried into a
    second text), and the leads are told once, ever, to reinstall."""
    await escalate(bot)
    token = bot.fake.bot_token or ""
    bot.fake.set_scopes(token, [s for s in bot.fake.default_scopes if s != "files:write"])
    service = bot.runtime.service
    ws = await bot.workspace_id()
    first = await service.queue_report_now(ws, (next_monday(9) - timedelta(days=7)).date())
    second = await service.queue_report_now(ws, (next_monday(9) - timedelta(days=14)).date())
    bot.runtime.worker.wake()
    await bot.runtime.worker.drain(timeout=30)
    await settle(bot)
    for key in (first, second):
        row = await service.outbox_row(key)
        assert row is not None and row.status == "sent" and "without its chart" in (row.last_error or "")
    assert len(report_posts(bot)) == 2 and bot.fake.files == []
    notices = [m for m in bot.fake.channel_messages(LEADS) if "files:write" in m.text]
    assert len(notices) == 1 and "reinstall" in notices[0].text
    refused = bot.fake.calls_to("files.getUploadURLExternal", ok=False)
    assert refused and all(c.status == 200 for c in refused)


async def test_report_post_says_what_happened_and_fails_unless_the_chart_went_out(
    bot: Bot, db_url: str, tmp_path: Path
) -> None:
    await escalate(bot)
    await settle(bot)
    env = {
        "SLACK_BOT_TOKEN": bot.fake.bot_token or "",
        "SLACK_SIGNING_SECRET": "signing-secret-cli",
        "SLACK_ESCALATION_CHANNEL": ESC_CHANNEL,
        "SLACK_LEADS_CHANNEL": LEADS,
        "SLACK_API_BASE_URL": bot.fake.base_url,
        "TIMEZONE": "Europe/Berlin",
    }
    ok = await asyncio.to_thread(cli, db_url, "report", "--post", cwd=tmp_path, env=env)
    assert ok.returncode == 0, ok.stderr
    assert "posted the" in ok.stderr and "report for T0ACME" in ok.stderr
    bot.fake.set_scopes(bot.fake.bot_token or "", [s for s in bot.fake.default_scopes if s != "files:write"])
    partial = await asyncio.to_thread(cli, db_url, "report", "--post", cwd=tmp_path, env=env)
    assert partial.returncode == 1
    assert "without its chart" in partial.stderr and "files:write" in partial.stderr
    bot.fake.channels[LEADS].bot_member = False  # the bot was removed from the leads channel
    refused = await asyncio.to_thread(cli, db_url, "report", "--post", cwd=tmp_path, env=env)
    assert refused.returncode == 1 and "not posted" in refused.stderr and "not_in_channel" in refused.stderr


async def test_a_queue_with_its_own_leads_channel_gets_its_own_report_and_the_workspace_a_line_per_queue(
    bot: Bot,
) -> None:
    ws = await bot.workspace_id()
    billing = await bot.runtime.service.add_queue(
        ws,
        Queue(
            id=0,
            workspace_id=ws,
            name="Billing",
            is_default=False,
            escalation_channel="C0NEWESC",
            leads_channel="CGENERAL",
        ),
    )
    assert billing is not None
    await escalate(bot)  # into the default queue
    with time_machine.travel(next_monday(9, 0) + timedelta(seconds=5), tick=True):
        await bot.runtime.scheduler.tick()  # type: ignore[union-attr]
        bot.runtime.worker.wake()
        await bot.fake.wait_for(lambda: len(bot.fake.files) >= 2, timeout=30)
        await settle(bot)
    whole, own = report_posts(bot), [m for m in bot.fake.channel_messages("CGENERAL") if "Escalations" in m.text]
    assert len(whole) == 1 and len(own) == 1
    assert "Billing" in card_text(own[0]) and "No escalations were opened this week" in card_text(own[0])
    shown = card_text(whole[0])
    assert "By queue" in shown and "General: opened 1" in shown and "Billing: opened 0" in shown
    assert sorted(f["channel"] for f in bot.fake.files) == sorted([LEADS, "CGENERAL"])


async def test_a_queue_chases_its_own_seniors_and_leads_on_its_own_clock(bot: Bot) -> None:
    ws = await bot.workspace_id()
    billing = await bot.runtime.service.add_queue(
        ws,
        Queue(
            id=0,
            workspace_id=ws,
            name="Billing",
            is_default=False,
            escalation_channel="C0NEWESC",
            senior_user_ids=("U0BILL1", "U0BILL2"),
            lead_user_ids=("U0BILLLEAD",),
            reminder_minutes=5,
        ),
    )
    assert billing is not None
    with time_machine.travel(datetime.now(UTC), tick=True) as t:
        form = await open_form(bot, text="billing: refunds fail")
        await bot.slack.submit(JUNIOR, form, {"summary": "Refunds fail", "severity": "P2", "tried": "Retried"})
        card = (await bot.fake.wait_for(lambda: bot.fake.channel_messages("C0NEWESC")))[-1]
        t.shift(timedelta(minutes=5, seconds=10))  # Billing reminds after 5 minutes, not the workspace's 10
        await tick_and_settle(bot)
        pings = thread_replies(bot, card)
        assert len(pings) == 1 and pings[0].text.startswith("<@U0BILL1> <@U0BILL2>")
        t.shift(timedelta(minutes=25))  # 30 min 10 s: Billing's lead is told, by DM
        await tick_and_settle(bot)
    assert len(bot.fake.dms_to("U0BILLLEAD")) == 1 and bot.fake.channel_messages(LEADS) == []
