"""The leads' page in a real browser: Debian's Chromium, driven by Playwright for Python.

The bot runs with the fake Slack; a junior escalates, seniors claim and resolve, over two weeks and
two queues; a lead gets the link with `/escalate dashboard` and opens it in headless Chromium. The
figures the page shows are `escalation-bot report --format json`'s for the same week and queue; the
lead changes the period and the queue with the form (no script runs on the page), downloads the CSV,
and screenshots are written at a desktop's and a phone's width to TEST_OUTPUT (default
test-output/)/dashboard/. Without Chromium or Playwright the test fails: `.ci/run` installs both.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine

from handoff.domain import Queue
from handoff.schedule import iso_week, week_start_of
from handoff.service import utcnow
from tests.conftest import JUNIOR, SENIORS, Bot
from tests.helpers import FORM, escalate, open_form, settle
from tests.test_dashboard import PUBLIC, ask_for_link, link_path
from tests.test_slack_depth import resolve

LEAD = "U0LEADLUCY"
TIMEZONE = "Europe/Berlin"
BILLING_CHANNEL = "C0NEWESC"  # a channel the bot is in (tests/conftest.py)
OUTPUT = Path(os.environ.get("TEST_OUTPUT", "test-output")) / "dashboard"
FIGURES = ("opened", "claimed", "resolved", "still_open", "contested",
           "to_claim_median", "to_claim_p90", "to_action_median", "to_resolve_median")  # fmt: skip
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update"]  # fmt: skip
# What sticks out past the right edge of the screen (for the message when something does).
WIDER_THAN_THE_SCREEN = """[...document.querySelectorAll('body *')]
  .filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5 || e.scrollWidth > e.clientWidth + 1)
  .slice(0, 8).map(e => `${e.tagName}.${e.className} ${e.scrollWidth}px in ${e.clientWidth}px`)"""


@pytest.fixture
def bot_overrides() -> dict[str, Any]:
    return {"public_url": PUBLIC, "slack_lead_user_ids": [LEAD], "timezone": TIMEZONE}


@pytest.fixture
async def chromium() -> AsyncIterator[Any]:
    """Headless Debian Chromium under Playwright; a failure, not a skip, when either is missing."""
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.fail("Debian's chromium is not installed (apt-get install -y chromium; .ci/run does it)")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.fail("playwright is not installed (it is in requirements-dev.lock)")
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def report_json(bot: Bot, db_url: str, week: str, queue: str | None = None) -> dict[str, Any]:
    """`escalation-bot report --format json` for the bot's workspace, run as a lead would run it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_", "TIMEZONE", "TEAMS_"))}
    env.update(DATABASE_URL=db_url, TIMEZONE=TIMEZONE)
    command = [str(Path(sys.executable).parent / "escalation-bot"), "report", "--week", week, "--workspace", "T0ACME",
               "--format", "json", *(["--queue", queue] if queue else [])]  # fmt: skip
    done = await asyncio.to_thread(subprocess.run, command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    [report] = json.loads(done.stdout)
    return report["this"]


async def shown(page: Any) -> dict[str, float | None]:
    """The figures the page shows, as their exact values (the data-value beside each)."""
    out: dict[str, float | None] = {}
    for name in FIGURES:
        raw = await page.locator(f'[data-figure="{name}"]').get_attribute("data-value")
        out[name] = None if raw in (None, "None") else float(raw)
    return out


def expected(report: dict[str, Any]) -> dict[str, float | None]:
    return {name: None if report[name] is None else float(report[name]) for name in FIGURES}


def assert_same(page_figures: dict[str, float | None], report: dict[str, Any]) -> None:
    want = expected(report)
    for name in FIGURES:
        assert page_figures[name] == pytest.approx(want[name], abs=1e-3), (name, page_figures, want)


async def make_two_weeks(bot: Bot) -> None:
    """Last week: three escalations (one resolved, one claimed with a lost claim, one open); this
    week: four (two to Billing, one of them resolved; one claimed; one open)."""
    ws = await bot.workspace_id()
    billing = await bot.runtime.service.add_queue(
        ws,
        Queue(id=0, workspace_id=ws, name="Billing", is_default=False, aliases=("bill",),
              escalation_channel=BILLING_CHANNEL),
    )  # fmt: skip
    assert billing is not None
    done = await escalate(bot, customer="Acme", summary="Checkout fails", severity="P1")
    await resolve(bot, SENIORS[0], done, note="Cleared the cache")
    contested = await escalate(bot, customer="Globex", summary="Exports slow", severity="P2")
    assert (await bot.slack.click(SENIORS[1], contested, "claim")).status == 200
    assert (await bot.slack.click(SENIORS[2], contested, "claim")).status == 200  # too late: a contested claim
    await escalate(bot, customer="Initech", summary="Login loops", severity="P3")
    await settle(bot)


async def make_this_week(bot: Bot) -> None:
    for n, summary in enumerate(("Invoice shows twice", "Refund stuck")):
        view = await open_form(bot, text=f"bill: {summary}")
        answer = await bot.slack.submit(JUNIOR, view, {**FORM, "summary": summary, "customer": "Acme"})
        assert answer.status == 200 and not answer.body, answer.body
        cards = await bot.fake.wait_for(lambda n=n: len(bot.fake.channel_messages(BILLING_CHANNEL)) > n and
                                        bot.fake.channel_messages(BILLING_CHANNEL))  # fmt: skip
        if n == 0:
            await resolve(bot, SENIORS[3], cards[-1], note="Voided the duplicate")
    claimed = await escalate(bot, customer="Umbrella", summary="API 500s", severity="P1")
    assert (await bot.slack.click(SENIORS[0], claimed, "claim")).status == 200
    await escalate(bot, customer="Acme", summary="Slow search", severity="P2")
    await settle(bot)


async def test_a_lead_reads_the_page_in_chromium_and_its_figures_are_the_reports(
    bot: Bot, db_url: str, chromium: Any, tmp_path: Path
) -> None:
    tz = ZoneInfo(TIMEZONE)
    bot.fake.users.update({SENIORS[0]: "Ana Araújo", SENIORS[1]: "Bo <b>Bold</b>"})
    await make_two_weeks(bot)
    last_week = week_start_of(utcnow().astimezone(tz).date())
    with time_machine.travel(utcnow() + timedelta(days=7), tick=True):  # a week later
        await make_this_week(bot)
        this_week = week_start_of(utcnow().astimezone(tz).date())
        assert this_week == last_week + timedelta(days=7)
        path = link_path(await ask_for_link(bot, LEAD))
        context = await chromium.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        page = await context.new_page()
        try:
            await page.goto(bot.url + path)
            assert page.url == bot.url + "/dashboard/"  # the link signed in and led to the page
            assert await page.locator("h1").inner_text() == "Escalations · This week"
            this = await report_json(bot, db_url, iso_week(this_week))
            assert this["opened"] == 4 and this["resolved"] == 1
            assert_same(await shown(page), this)
            assert await page.locator('[data-figure="opened"]').inner_text() == "4"  # as a person reads it

            OUTPUT.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(OUTPUT / "desktop-1280-this-week.png"), full_page=True)

            # Last week, picked with the form's labelled controls.
            await page.get_by_label("Period", exact=True).select_option("last-week")
            await page.get_by_role("button", name="Show").click()
            await page.wait_for_url("**/dashboard/?period=last-week*")
            before = await report_json(bot, db_url, iso_week(last_week))
            assert before["opened"] == 3 and before["contested"] == 1
            assert_same(await shown(page), before)
            # Seniors by the names Slack gives them (users.info), what they typed shown, never run.
            seniors = await page.locator('[data-table="seniors"] tbody tr').all_inner_texts()
            assert any(row.startswith("Ana Araújo") for row in seniors), seniors
            assert any(row.startswith("Bo <b>Bold</b>") for row in seniors), seniors
            assert "<b>Bold</b>" not in await page.content()

            # This week's Billing queue alone: the URL holds the view, so a lead can share it.
            await page.get_by_label("Period", exact=True).select_option("this-week")
            await page.get_by_label("Queue", exact=True).select_option(label="Billing")
            await page.get_by_role("button", name="Show").click()
            await page.wait_for_url("**queue=*")
            assert await page.locator("h1").inner_text() == "Escalations · This week · Billing"
            billing = await report_json(bot, db_url, iso_week(this_week), queue="Billing")
            assert billing["opened"] == 2 and billing["resolved"] == 1
            assert_same(await shown(page), billing)
            shared = page.url

            # The CSV of what the page shows.
            async with page.expect_download() as download_info:
                await page.get_by_role("link", name="Download the escalations (CSV)").click()
            download = await download_info.value
            saved = tmp_path / download.suggested_filename
            await download.save_as(saved)
            assert download.suggested_filename == f"escalations-{this_week}-to-{this_week + timedelta(days=6)}.csv"
            rows = list(csv.DictReader(saved.open(encoding="utf-8")))
            assert len(rows) == 2 and {r["queue"] for r in rows} == {"Billing"}
            assert "summary" not in rows[0]  # numbers and times only, unless asked for

            # The same view on a phone: nothing wider than the screen.
            phone = await chromium.new_context(viewport={"width": 390, "height": 844}, is_mobile=True,
                                               storage_state=await context.storage_state())  # fmt: skip
            small = await phone.new_page()
            await small.goto(shared)
            assert_same(await shown(small), billing)
            width = await small.evaluate("document.documentElement.scrollWidth")
            wider = await small.evaluate(WIDER_THAN_THE_SCREEN)
            assert width <= 390, f"the page is {width}px wide on a 390px phone: {wider}"
            await small.screenshot(path=str(OUTPUT / "phone-390-billing.png"), full_page=True)
            await phone.close()

            # Keyboard only: skip link, sign out, then the filters in order; Enter on Show submits.
            await page.goto(bot.url + "/dashboard/")
            reached: list[str] = []
            for _ in range(20):  # a date field takes a Tab per part (day, month, year)
                await page.keyboard.press("Tab")
                now = (await page.evaluate("document.activeElement.id || document.activeElement.textContent")).strip()
                if not reached or reached[-1] != now:
                    reached.append(now)
                if now == "Show":
                    break
            assert reached == ["Skip to the figures", "Sign out", "period", "from", "to", "queue", "Show"]
            await page.keyboard.press("Enter")
            await page.wait_for_url("**/dashboard/?period=this-week&*")
        finally:
            await context.close()
    assert (OUTPUT / "desktop-1280-this-week.png").stat().st_size > 10_000
    assert (OUTPUT / "phone-390-billing.png").stat().st_size > 10_000
