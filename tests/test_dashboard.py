"""The leads' page over HTTP (the browser test is test_dashboard_browser.py): signing in from Slack
and Teams with a one-time link, what is served without a session (nothing), tenant walls, CSRF, a
demoted lead, a queue's lead, the CSV, and measured baselines. SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import replace
from datetime import timedelta
from html.parser import HTMLParser
from typing import Any

import aiohttp
import pytest
import time_machine

from handoff.domain import Draft, Queue, Severity
from handoff.service import utcnow
from tests.conftest import JUNIOR, SENIORS, Bot
from tests.helpers import escalate, settle
from tests.test_slack_depth import resolve

LEAD, ADMIN, QUEUE_LEAD = "U0LEADLUCY", "U0ADMINADA", "U0BILLINGLEAD"
PUBLIC = "http://leads.example.test"


@pytest.fixture
def bot_overrides() -> dict[str, Any]:
    return {"public_url": PUBLIC, "slack_lead_user_ids": [LEAD], "timezone": "Europe/Berlin"}


async def said_to(bot: Bot, user: str, command: str) -> str:
    """`/escalate COMMAND`: the private reply."""
    before = len(bot.fake.replies_to(user))
    assert (await bot.slack.command(user, command)).status == 200
    replies = await bot.fake.wait_for(lambda: len(bot.fake.replies_to(user)) > before and bot.fake.replies_to(user))
    assert replies[-1].response_type == "ephemeral"
    return replies[-1].text


async def ask_for_link(bot: Bot, user: str) -> str:
    return await said_to(bot, user, "dashboard")


def link_path(reply: str) -> str:
    found = re.search(r"<" + re.escape(PUBLIC) + r"(/dashboard/signin/[A-Za-z0-9_-]+)\|Open the leads' page>", reply)
    assert found, reply
    return found.group(1)


async def sign_in(bot: Bot, user: str = LEAD) -> aiohttp.ClientSession:
    """A browser (a cookie jar) signed in as `user` through the link the bot sent."""
    path = link_path(await ask_for_link(bot, user))
    browser = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with browser.get(bot.url + path, allow_redirects=False) as r:
        assert r.status == 303 and r.headers["Location"] == "/dashboard/"
    return browser


async def get(browser: aiohttp.ClientSession, bot: Bot, path: str) -> tuple[int, str]:
    async with browser.get(bot.url + path, allow_redirects=False) as r:
        return r.status, await r.text()


def figure(page: str, name: str) -> str:
    found = re.search(rf'data-figure="{name}" data-value="([^"]*)"', page)
    assert found, name
    return found.group(1)


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found
    return found.group(1)


async def some_work(bot: Bot) -> None:
    """Three escalations: one resolved, one claimed, one open."""
    done = await escalate(bot, customer="Acme", summary="Checkout fails")
    await resolve(bot, SENIORS[0], done, note="Cleared the cache")
    claimed = await escalate(bot, customer="Globex", severity="P1")
    assert (await bot.slack.click(SENIORS[1], claimed, "claim")).status == 200
    await escalate(bot, customer="=cmd|' /C calc'!A0")
    await settle(bot)


async def test_a_lead_signs_in_once_with_a_private_link_and_sees_the_weeks_figures(bot: Bot) -> None:
    await some_work(bot)
    reply = await ask_for_link(bot, LEAD)
    assert "works once, for the next 10 minutes" in reply
    path = link_path(reply)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        async with browser.get(bot.url + path, allow_redirects=False) as r:
            assert r.status == 303
            cookie = r.headers["Set-Cookie"]
        assert re.search(r"eb_dashboard=[^;]+; HttpOnly; Max-Age=28\d\d\d; Path=/dashboard; SameSite=Lax", cookie), (
            cookie
        )
        assert "Secure" not in cookie  # PUBLIC_URL is http here; over https it is Secure (below)
        status, page = await get(browser, bot, "/dashboard/")
        assert status == 200
        assert (figure(page, "opened"), figure(page, "claimed"), figure(page, "resolved")) == ("3", "2", "1")
        assert figure(page, "still_open") == "2" and float(figure(page, "to_claim_median")) >= 0
        assert "Download the escalations (CSV)" in page
    async with aiohttp.ClientSession() as again, again.get(bot.url + path, allow_redirects=False) as r:
        assert r.status == 403 and "Set-Cookie" not in r.headers  # used: no second session
        assert "does not work" in await r.text()


class _Charts(HTMLParser):
    """Every id on the page, and for each chart the ids it is named by and the texts they hold."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.charts: list[list[str]] = []
        self.texts: dict[str, str] = {}
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.append(str(a["id"]))
        if tag == "svg":
            self.charts.append(str(a.get("aria-labelledby", "")).split())
        if tag in ("title", "desc") and a.get("id"):
            self._in = str(a["id"])

    def handle_data(self, data: str) -> None:
        if self._in:
            self.texts[self._in] = self.texts.get(self._in, "") + data

    def handle_endtag(self, tag: str) -> None:
        if tag in ("title", "desc"):
            self._in = None


async def test_a_screen_reader_hears_each_chart_by_its_own_title_and_the_trend_has_its_numbers(bot: Bot) -> None:
    await some_work(bot)
    async with await sign_in(bot) as browser:
        status, page = await get(browser, bot, "/dashboard/")
    assert status == 200
    found = _Charts()
    found.feed(page)
    assert len(found.ids) == len(set(found.ids)), sorted(i for i in found.ids if found.ids.count(i) > 1)
    titles = [found.texts[ids[0]] for ids in found.charts]
    assert titles == [
        "Escalations opened per day, by severity",
        "Median time to claim per week",
        "Escalations opened per week, by severity",
    ]
    assert all(len(ids) == 2 and found.texts.get(ids[1]) for ids in found.charts)
    trend = re.search(r'<table data-table="trend">.*?</table>', page, re.S)
    assert trend, "the weekly trend's numbers are not on the page"
    rows = re.findall(r"<tr><th scope=\"row\">[^<]+</th><td>(\d+)</td>", trend.group(0))
    assert len(rows) == 13 and rows[-1] == "3"  # this week's three escalations, in the last row


@pytest.mark.parametrize("bot_overrides", [{"public_url": "https://leads.example.test", "slack_lead_user_ids": [LEAD]}])
async def test_over_https_the_cookie_is_secure(bot: Bot) -> None:
    path = re.search(r"(/dashboard/signin/[\w-]+)", await ask_for_link(bot, LEAD)).group(1)  # type: ignore[union-attr]
    async with aiohttp.ClientSession() as browser, browser.get(bot.url + path, allow_redirects=False) as r:
        assert "; Secure" in r.headers["Set-Cookie"]


async def test_nothing_but_the_sign_in_link_is_served_without_a_session(bot: Bot) -> None:
    await some_work(bot)
    async with aiohttp.ClientSession() as stranger:
        for path in ("/dashboard/", "/dashboard/static/dashboard.css", "/dashboard/export.csv?period=13w",
                     "/dashboard/whatever", "/dashboard/static/%2e%2e%2fpyproject.toml"):  # fmt: skip
            status, body = await get(stranger, bot, path)
            assert status == 401, path
            assert "Acme" not in body and "data-figure" not in body and "margin" not in body
            assert "/escalate dashboard" in body  # says how to sign in
        stranger.cookie_jar.update_cookies({"eb_dashboard": "forged-session-value-0123456789"})
        assert (await get(stranger, bot, "/dashboard/"))[0] == 401
        for forged in ("/dashboard/signin/not-a-real-token-at-all-0123456789", "/dashboard/signin/x"):
            status, body = await get(stranger, bot, forged)
            assert status == 403 and "does not work" in body


async def test_a_link_older_than_ten_minutes_does_not_work(bot: Bot) -> None:
    path = link_path(await ask_for_link(bot, LEAD))
    with time_machine.travel(utcnow() + timedelta(minutes=11), tick=True):
        async with aiohttp.ClientSession() as browser, browser.get(bot.url + path, allow_redirects=False) as r:
            assert r.status == 403 and "Set-Cookie" not in r.headers


async def test_only_leads_admins_and_a_queues_leads_get_a_link_and_others_are_told_who_can(bot: Bot) -> None:
    refused = await ask_for_link(bot, JUNIOR)
    assert refused.startswith("Only leads can do that here:") and "admins and owners" in refused
    assert "signin" not in refused
    bot.fake.users.update({ADMIN: "Ada"})
    bot.fake.admins.add(ADMIN)
    assert "signin" in await ask_for_link(bot, ADMIN)


@pytest.mark.parametrize("bot_overrides", [{"slack_lead_user_ids": [LEAD]}])
async def test_without_public_url_the_command_says_what_to_set(bot: Bot) -> None:
    assert "sets PUBLIC_URL" in await ask_for_link(bot, LEAD)


async def test_changes_need_the_sessions_csrf_token(bot: Bot) -> None:
    browser = await sign_in(bot)
    async with browser:
        _status, page = await get(browser, bot, "/dashboard/")
        token = csrf_of(page)
        for data in ({"minutes": "25"}, {"minutes": "25", "csrf": "forged-token"}):
            async with browser.post(bot.url + "/dashboard/baseline", data=data, allow_redirects=False) as r:
                assert r.status == 403
        ws = await bot.workspace_id()
        from storage import dashboard as store

        async with bot.runtime.db.read() as conn:
            assert await store.measurements(conn, ws) == []
        async with browser.post(bot.url + "/dashboard/signout", data={}, allow_redirects=False) as r:
            assert r.status == 403
        assert (await get(browser, bot, "/dashboard/"))[0] == 200  # still signed in
        async with browser.post(
            bot.url + "/dashboard/baseline", data={"minutes": "25", "csrf": token}, allow_redirects=False
        ) as r:
            assert r.status == 303
        async with bot.runtime.db.read() as conn:
            assert await store.measurements(conn, ws) == [25.0]
        async with browser.post(bot.url + "/dashboard/signout", data={"csrf": token}, allow_redirects=False) as r:
            assert r.status == 200 and "Signed out" in await r.text()
        assert (await get(browser, bot, "/dashboard/"))[0] == 401


@pytest.mark.parametrize("bot_overrides", [{"public_url": PUBLIC}])
async def test_a_lead_demoted_after_signing_in_is_refused_at_the_next_request(bot: Bot) -> None:
    ws = await bot.workspace_id()
    workspaces = bot.runtime.dashboard_access["slack"].workspaces
    cfg = await workspaces.config(ws)
    await workspaces.save(ws, replace(cfg, lead_user_ids=[LEAD]))  # a workspace admin made them a lead
    browser = await sign_in(bot)
    async with browser:
        assert (await get(browser, bot, "/dashboard/"))[0] == 200
        await workspaces.save(ws, replace(cfg, lead_user_ids=[SENIORS[5]]))  # and then someone else
        status, body = await get(browser, bot, "/dashboard/")
        assert status == 403 and "not a lead here any more" in body
        assert (await get(browser, bot, "/dashboard/"))[0] == 401  # and the session is gone


async def other_workspace(bot: Bot) -> tuple[int, Queue]:
    """Another workspace on the same bot, with a queue and an escalation of its own."""
    service = bot.runtime.service
    other = await service.workspace_id("slack", "T0OTHERCO")
    queue = await service.add_queue(other, Queue(id=0, workspace_id=other, name="Their queue", is_default=False))
    assert queue is not None
    draft = Draft(summary="Their secret outage", severity=Severity.P1, tried="x", customer="Initech")
    await service.escalate(other, "U0THEIRS", draft, key="other-1")
    return other, queue


async def test_a_session_sees_its_own_workspace_and_nothing_of_another(bot: Bot) -> None:
    await some_work(bot)
    _other, their_queue = await other_workspace(bot)
    browser = await sign_in(bot)
    async with browser:
        status, page = await get(browser, bot, f"/dashboard/?period=13w&queue={their_queue.id}")
        assert status == 200 and "Their queue" not in page and "Initech" not in page
        assert figure(page, "opened") == "3"  # this workspace's, all queues
        status, data = await get(browser, bot, f"/dashboard/export.csv?period=13w&queue={their_queue.id}&text=1")
        assert status == 200 and "Initech" not in data and "secret outage" not in data


async def test_a_queues_lead_sees_that_queue_only(bot: Bot) -> None:
    ws = await bot.workspace_id()
    billing = await bot.runtime.service.add_queue(
        ws,
        Queue(id=0, workspace_id=ws, name="Billing", is_default=False, lead_user_ids=(QUEUE_LEAD,), aliases=("bill",)),
    )
    assert billing is not None
    bot.runtime.service._queues.clear()  # the running bot would see it within QUEUES_TTL
    await some_work(bot)  # in the default queue
    browser = await sign_in(bot, QUEUE_LEAD)
    async with browser:
        status, page = await get(browser, bot, "/dashboard/?queue=all")
        assert status == 200 and "Escalations · This week · Billing" in page
        assert "All queues" not in page and figure(page, "opened") == "0"
        _status, data = await get(browser, bot, "/dashboard/export.csv?queue=all")
        assert len(list(csv.reader(io.StringIO(data)))) == 1  # the header: none of Billing's yet


async def test_the_csv_has_the_periods_escalations_numbers_always_and_typed_text_when_asked(bot: Bot) -> None:
    await some_work(bot)
    browser = await sign_in(bot)
    async with browser:
        async with browser.get(bot.url + "/dashboard/export.csv?period=this-week") as r:
            assert r.status == 200 and r.headers["Content-Type"].startswith("text/csv")
            assert re.match(
                r'attachment; filename="escalations-\d{4}-\d\d-\d\d-to-\d{4}-\d\d-\d\d\.csv"',
                r.headers["Content-Disposition"],
            )
            rows = list(csv.DictReader(io.StringIO(await r.text())))
        assert [row["number"] for row in rows] == ["1", "2", "3"]
        assert "summary" not in rows[0] and "customer" not in rows[0]
        assert rows[0]["resolved_by"] == SENIORS[0] and float(rows[0]["time_to_claim_seconds"]) >= 0
        _status, typed = await get(browser, bot, "/dashboard/export.csv?period=this-week&text=1")
        rows = list(csv.DictReader(io.StringIO(typed)))
        assert rows[0]["summary"] == "Checkout fails" and rows[0]["customer"] == "Acme"
        assert rows[2]["customer"] == "'=cmd|' /C calc'!A0"  # a spreadsheet shows it, never runs it


async def test_five_measured_handoffs_make_the_estimate_measured_on_the_page_and_in_the_weekly_post(bot: Bot) -> None:
    await some_work(bot)
    said = ""
    for minutes in ("20", "25 min", "30", "22", "28"):
        before = len(bot.fake.replies_to(LEAD))
        await bot.slack.command(LEAD, f"baseline {minutes}")
        said = (
            await bot.fake.wait_for(lambda b=before: len(bot.fake.replies_to(LEAD)) > b and bot.fake.replies_to(LEAD))
        )[-1].text
    assert said.startswith("Recorded: a handoff without the bot took 28 min.") and "median of the 5" in said
    browser = await sign_in(bot)
    async with browser:
        _status, page = await get(browser, bot, "/dashboard/")
    assert "Measured from 5 handoffs: a handoff without the bot took 25 min" in page
    # The weekly post says the same: its baseline measured, and how the last four weeks did.
    from handoff.report import as_text, build_report
    from handoff.schedule import week_start_of

    weekly = await build_report(
        bot.runtime.db, await bot.workspace_id(), week_start_of(utcnow().date()), timezone="UTC", baseline_minutes=30
    )
    text = as_text(weekly)
    assert "Measured from 5 handoffs: a handoff without the bot took 25 min" in text
    assert re.search(
        r"Last 4 weeks: -?\d+\.\d h a week recovered over the last 4 weeks: (more|less) than the 1\.0 h", text
    )
    refused_before = len(bot.fake.replies_to(JUNIOR))
    await bot.slack.command(JUNIOR, "baseline 10")
    refused = await bot.fake.wait_for(
        lambda: len(bot.fake.replies_to(JUNIOR)) > refused_before and bot.fake.replies_to(JUNIOR)
    )
    assert refused[-1].text.startswith("Only leads")


async def test_a_session_ends_after_eight_hours_and_the_scheduler_clears_old_links_and_sessions(bot: Bot) -> None:
    from sqlalchemy import func, select

    from storage.tables import dashboard_links, dashboard_sessions

    browser = await sign_in(bot)
    await ask_for_link(bot, LEAD)  # a second link, never used
    async with browser:
        assert (await get(browser, bot, "/dashboard/"))[0] == 200
        with time_machine.travel(utcnow() + timedelta(hours=8, minutes=1), tick=True):
            assert (await get(browser, bot, "/dashboard/"))[0] == 401
            done = await bot.runtime.service.purge(retention_days=None, outbox_keep_days=7)
    assert done.sign_ins == 3  # two links (one used) and the session
    async with bot.runtime.db.read() as conn:
        for table in (dashboard_links, dashboard_sessions):
            assert (await conn.execute(select(func.count()).select_from(table))).scalar() == 0


async def test_forgetting_a_lead_signs_them_out(bot: Bot, db_url: str) -> None:
    import asyncio

    from tests.test_forget import cli

    browser = await sign_in(bot)
    async with browser:
        assert (await get(browser, bot, "/dashboard/"))[0] == 200
        done = await asyncio.to_thread(cli, db_url, "forget", "--slack-user", LEAD)
        assert done.returncode == 0, done.stderr
        assert (await get(browser, bot, "/dashboard/"))[0] == 401
