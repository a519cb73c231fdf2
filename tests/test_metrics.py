"""`/metrics` by Prometheus' conventions, with what the alerts and the dashboard need, over HTTP
from the running bot (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from bot.metrics import ANSWER_BUCKETS, Metrics
from bot.sandbox.fake_slack import Fail
from handoff.service import utcnow
from storage.tables import workspaces
from tests.conftest import ESC_CHANNEL, JUNIOR, Bot
from tests.helpers import FORM, escalate, eventually, open_form, settle
from tests.test_slack_flow import click

ROOT = Path(__file__).resolve().parent.parent
LABELS = {
    "platform",
    "queue",
    "severity",
    "state",
    "method",
    "outcome",
    "status",
    "kind",
    "result",
    "request",
    "reason",
}


def families() -> dict[str, object]:
    return {f.name: f for f in Metrics(version="1.2.3").registry.collect()}


def test_every_metric_is_namespaced_typed_by_name_documented_and_has_bounded_labels() -> None:
    documented = (ROOT / "docs" / "operations.md").read_text()
    for name, family in families().items():
        if name.startswith("process_"):
            continue  # the standard process collector's names, as every exporter has them
        assert name.startswith("escalation_bot_"), name
        assert family.documentation.strip(), name  # type: ignore[attr-defined]
        kind = family.type  # type: ignore[attr-defined]
        exposed = f"{name}_total" if kind == "counter" else name
        assert not name.endswith("_total")  # prometheus_client adds it to counters, exactly once
        if kind == "histogram" or name.endswith(("_age_seconds", "_after_seconds", "_timestamp_seconds")):
            assert name.endswith("_seconds"), name  # base units
        assert f"`{exposed}" in documented, f"{exposed} is not in docs/operations.md's metrics table"
        labels = {label for sample in family.samples for label in sample.labels} - {"le", "version"}  # type: ignore[attr-defined]
        assert labels <= LABELS, (name, labels - LABELS)
    # Every metric in the docs' table is one the bot has (a renamed one must not linger there).
    listed = set(re.findall(r"^\| `(escalation_bot_[a-z_]+)", documented, flags=re.M))
    exposed_names = {f"{n}_total" if f.type == "counter" else n for n, f in families().items()}  # type: ignore[attr-defined]
    assert listed and listed <= exposed_names, listed - exposed_names


def test_answer_times_resolve_slacks_3_s_and_teams_15_s() -> None:
    assert 3.0 in ANSWER_BUCKETS and 15.0 in ANSWER_BUCKETS
    assert 2.5 in ANSWER_BUCKETS  # "near Slack's 3 s" is visible before it is crossed


async def scrape(bot: Bot) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with aiohttp.ClientSession() as s, s.get(bot.url + "/metrics") as r:
        assert r.status == 200
        text = await r.text()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float | None:  # type: ignore[type-arg]
    return samples.get((name, tuple(sorted(labels.items()))))


def fresh(bot: Bot) -> None:
    """Read the database again at the next scrape, not within the 5 s a reading is kept for."""
    bot.runtime.metrics._readings.clear()


async def test_the_queue_gauges_show_whats_open_the_oldest_unclaimed_and_when_leads_are_told(bot: Bot) -> None:
    view = await open_form(bot)
    await bot.slack.submit(JUNIOR, view, {**FORM, "severity": "P1", "summary": "Checkout down"})
    card = (await bot.fake.wait_for(lambda: bot.fake.channel_messages(ESC_CHANNEL)))[0]
    await escalate(bot, summary="A slow report")  # P2
    fresh(bot)
    samples = await scrape(bot)
    assert value(samples, "escalation_bot_open_escalations", queue="General", severity="P1", state="unclaimed") == 1
    assert value(samples, "escalation_bot_open_escalations", queue="General", severity="P2", state="unclaimed") == 1
    age = value(samples, "escalation_bot_oldest_unclaimed_age_seconds", queue="General", severity="P1")
    assert age is not None and 0 <= age < 60
    # LEAD_ALERT_MINUTES (30) for P2, a third of it for P1: what the business alert compares against.
    assert value(samples, "escalation_bot_lead_alert_after_seconds", queue="General", severity="P1") == 600
    assert value(samples, "escalation_bot_lead_alert_after_seconds", queue="General", severity="P2") == 1800
    assert value(samples, "escalation_bot_database_up") == 1
    assert value(samples, "escalation_bot_db_pool_connections_max") >= 1  # type: ignore[operator]

    await click(bot, "U0SENIOR01", card, "claim")
    await bot.fake.wait_for(lambda: bot.fake.replies_to("U0SENIOR01"))
    fresh(bot)
    samples = await scrape(bot)
    assert value(samples, "escalation_bot_open_escalations", queue="General", severity="P1", state="claimed") == 1
    assert value(samples, "escalation_bot_oldest_unclaimed_age_seconds", queue="General", severity="P1") is None
    assert value(samples, "escalation_bot_time_to_claim_seconds_count", platform="slack") == 1


async def test_the_database_gauges_are_read_once_in_five_seconds_however_many_scrapes(bot: Bot) -> None:
    from sqlalchemy import event

    statements: list[str] = []
    background = {t for t in asyncio.all_tasks() if t.get_name() in ("delivery-worker", "scheduler")}

    def scraping(*a: Any) -> None:  # what the requests ran, not the worker and the scheduler meanwhile
        if asyncio.current_task() not in background:
            statements.append(a[2])

    event.listen(bot.runtime.db.engine.sync_engine, "before_cursor_execute", scraping)
    fresh(bot)
    await scrape(bot)
    assert len(statements) >= 3  # the outbox, the queues, the weekly reports
    statements.clear()
    for _ in range(5):
        await scrape(bot)
    assert statements == []


async def test_the_outbox_gauges_show_the_backlog_and_its_oldest_row_while_slack_is_down(bot: Bot) -> None:
    bot.fake.chaos(1.0, ("chat.postMessage",), [Fail(status=500)])
    view = await open_form(bot)
    await bot.slack.submit(JUNIOR, view, FORM)
    await eventually(lambda: bot.fake.calls_to("chat.postMessage", ok=False))
    fresh(bot)
    samples = await scrape(bot)
    assert value(samples, "escalation_bot_outbox_rows", status="pending") >= 1  # type: ignore[operator]
    assert value(samples, "escalation_bot_outbox_oldest_pending_age_seconds") > 0  # type: ignore[operator]
    server_errors = value(
        samples,
        "escalation_bot_platform_api_calls_total",
        platform="slack",
        method="chat.postMessage",
        outcome="server_error",
    )
    assert server_errors is not None and server_errors >= 1
    bot.fake.calm()
    bot.runtime.worker.wake()
    await settle(bot, timeout=30)
    fresh(bot)
    samples = await scrape(bot)
    assert value(samples, "escalation_bot_outbox_rows", status="pending") == 0
    assert value(samples, "escalation_bot_outbox_oldest_pending_age_seconds") == 0


async def test_slacks_429s_are_counted_by_method_even_when_a_retry_then_succeeds(bot: Bot) -> None:
    await escalate(bot)
    card = bot.fake.channel_messages(ESC_CHANNEL)[0]
    bot.fake.fail_next("chat.update", Fail(status=429, retry_after=1))
    await click(bot, "U0SENIOR01", card, "claim")
    await bot.fake.wait_for(lambda: bot.fake.calls_to("chat.update", ok=True), timeout=15)
    samples = await scrape(bot)
    calls = "escalation_bot_platform_api_calls_total"
    assert value(samples, calls, platform="slack", method="chat.update", outcome="rate_limited") == 1
    assert value(samples, calls, platform="slack", method="chat.update", outcome="ok") >= 1  # type: ignore[operator]


# The scheduler would queue the report itself as soon as it is due: here the test does, when it says.
@pytest.mark.parametrize("bot_overrides", [{"slack_leads_channel": "C0LEADS", "scheduler_seconds": 3600}])
async def test_the_weekly_report_gauges_say_when_it_was_due_and_when_it_went_out(bot: Bot) -> None:
    ws = await bot.workspace_id()
    # Its first tick runs at start; one that read the workspace after the change below queued the
    # report before the test could (1 run in 5 on PostgreSQL). Let that tick finish, then no more.
    assert bot.runtime.scheduler is not None
    bot.runtime.scheduler.stop()
    await next(t for t in bot.runtime.tasks if t.get_name() == "scheduler")
    async with bot.runtime.db.write() as conn:  # installed a month ago: last week's report is due
        await conn.execute(update(workspaces).values(created_at=utcnow() - timedelta(days=30)))
    fresh(bot)
    samples = await scrape(bot)
    due = value(samples, "escalation_bot_weekly_report_due_timestamp_seconds")
    assert due is not None and utcnow().timestamp() - 7 * 86400 <= due <= utcnow().timestamp()
    assert value(samples, "escalation_bot_weekly_report_posted_timestamp_seconds", queue="(workspace)") == 0
    settings = bot.runtime.settings
    queued = await bot.runtime.service.queue_weekly_reports(
        weekday=settings.report_weekday, at=settings.report_time, timezone=settings.timezone
    )
    assert [w for w, _ in queued] == [ws]
    bot.runtime.worker.wake()
    await settle(bot, timeout=30)
    fresh(bot)
    samples = await scrape(bot)
    posted = value(samples, "escalation_bot_weekly_report_posted_timestamp_seconds", queue="(workspace)")
    assert posted is not None and posted >= due
