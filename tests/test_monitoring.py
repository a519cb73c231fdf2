"""The dashboard and the alerts against a real Prometheus (Debian's `prometheus`, the same package as
promtool; .ci/run installs it), started here with the stack's own deploy/prometheus/prometheus.yml
(scraping every second, its targets two replicas on this machine) and its alert rules. After a
short load (escalations, contested claims, first actions, Slack rate-limiting some calls), every
panel's and every alert's expression is asked of Prometheus through its HTTP API: each must parse,
each panel must have data, and every metric they name must have been scraped. A metric renamed
without its panel or alert fails here.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from sqlalchemy import update

from bot.sandbox.fake_slack import Fail, FakeSlack
from bot.sandbox.process import ServeProcess, free_port
from bot.sandbox.simulator import SlackSimulator, button_value
from bot.slack.modals import escalate_modal
from handoff.service import utcnow
from storage.db import Database
from storage.tables import workspaces
from tests.conftest import ESC_CHANNEL, PG_URL, SECRET, SENIORS, TEAM, TOKEN, _drop_pg_database, _fresh_pg_database
from tests.helpers import FORM

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = json.loads((ROOT / "deploy" / "grafana" / "escalation-bot.json").read_text())
RULES = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
# Grafana fills in $__rate_interval; here it covers the whole short run.
RATE_INTERVAL = "5m"


def panel_queries() -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"])
        for panel in DASHBOARD["panels"]
        if panel["type"] != "row"
        for target in panel["targets"]
    ]


def alert_queries() -> list[tuple[str, str]]:
    return [(rule["alert"], rule["expr"]) for group in RULES["groups"] for rule in group["rules"]]


def test_the_dashboard_is_importable_anywhere_with_a_row_for_each_concern() -> None:
    """A data source variable, never a fixed data source uid; the four rows the issue names."""
    variables = {v["name"]: v for v in DASHBOARD["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for panel in DASHBOARD["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"]), panel["title"]
    rows = [p["title"] for p in DASHBOARD["panels"] if p["type"] == "row"]
    assert rows == ["What people feel", "Delivery", "The process", "The queue"]
    ids = [p["id"] for p in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    assert PG_URL, "TEST_DATABASE_URL must be set: the replicas share PostgreSQL"
    url, name = await _fresh_pg_database()
    try:
        yield url
    finally:
        await _drop_pg_database(name)


def start_prometheus(tmp_path: Path, targets: list[str]) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("prometheus")
    assert binary, "prometheus is not installed (Debian: apt-get install prometheus; .ci/run installs it)"
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(ROOT / "deploy" / "prometheus" / name) for name in config["rule_files"]]
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "escalation-bot"
    job["static_configs"] = [{"targets": targets}]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "prometheus.log", "wb"),
    )
    return proc, f"http://127.0.0.1:{port}"


async def ask(session: aiohttp.ClientSession, prometheus: str, query: str) -> dict[str, Any]:
    async with session.get(f"{prometheus}/api/v1/query", params={"query": query}) as r:
        return await r.json()  # type: ignore[no-any-return]


def new_view(n: int) -> dict[str, Any]:
    view = escalate_modal().to_dict()
    view["id"] = f"VMON{n:04d}"
    return view


async def sandbox_load(sims: list[SlackSimulator], fake: FakeSlack) -> None:
    """Escalations on both replicas, two seniors racing for most of them (one wins, one is told), the
    winner's first reply in the thread, Slack rate-limiting a few card updates; two left unclaimed."""
    for n in range(8):
        answers = {**FORM, "severity": "P1" if n % 4 == 0 else "P3", "summary": f"Problem {n}"}
        answer = await sims[n % 2].submit(f"U0REQ{n:02d}", new_view(n), answers)
        assert answer.status == 200 and not answer.body, answer.body
    cards = await fake.wait_for(
        lambda: len(fake.channel_messages(ESC_CHANNEL)) >= 8 and fake.channel_messages(ESC_CHANNEL)
    )
    fake.fail_next("chat.update", *[Fail(status=429, retry_after=1)] * 3)
    for n, card in enumerate(cards[:6]):
        value = button_value(card, "claim")
        await asyncio.gather(*(sims[i].click(SENIORS[i], card, "claim", value=value) for i in (0, 1)))
        for i, senior in enumerate(SENIORS[:2]):  # one of them holds it: theirs is the first action
            event = {
                "type": "message",
                "channel": card.channel,
                "user": senior,
                "text": "On it",
                "ts": f"{float(card.ts) + 5 + i:.6f}",
                "thread_ts": card.ts,
                "channel_type": "channel",
            }
            await sims[n % 2].event(event, event_id=f"EvMON{n:03d}{i}")
    await fake.wait_for(lambda: len(fake.replies) >= 12, timeout=30)


async def test_every_panel_and_alert_evaluates_against_a_real_prometheus_scraping_two_replicas(
    pg_url: str, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    env = {
        "DATABASE_URL": pg_url,
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_BASE_URL": fake_slack.base_url,
        "SLACK_ESCALATION_CHANNEL": ESC_CHANNEL,
        "SLACK_LEADS_CHANNEL": "C0LEADS",
        "SLACK_SENIOR_USER_IDS": ",".join(SENIORS[:2]),
        "OUTBOX_POLL_SECONDS": "0.3",
        "LOG_LEVEL": "WARNING",
    }
    first = ServeProcess(env, cwd=tmp_path, log_path=tmp_path / "bot-1.log").start()
    await first.wait_ready()  # it migrates; then the second starts on a ready schema
    second = ServeProcess(env, cwd=tmp_path, log_path=tmp_path / "bot-2.log").start()
    replicas = [first, second]
    prometheus: subprocess.Popen[bytes] | None = None
    try:
        await second.wait_ready()
        prometheus, api = start_prometheus(tmp_path, [f"127.0.0.1:{r.port}" for r in replicas])
        async with aiohttp.ClientSession() as session:
            sims = [SlackSimulator(r.url, SECRET, fake=fake_slack, team_id=TEAM, session=session) for r in replicas]
            await sandbox_load(sims, fake_slack)
            db = Database(pg_url)
            try:  # installed a month ago: last week's report is due, so its gauges are there to see
                async with db.write() as conn:
                    await conn.execute(update(workspaces).values(created_at=utcnow() - timedelta(days=30)))
            finally:
                await db.dispose()

            # Scraped for a while after the load (every second; the database gauges are re-read every 5 s).
            deadline = time.monotonic() + 40
            while True:
                up = await ask(session, api, 'sum(up{job="escalation-bot"})')
                posted = await ask(session, api, "count(escalation_bot_weekly_report_posted_timestamp_seconds)")
                if (
                    up.get("status") == "success"
                    and up["data"]["result"]
                    and float(up["data"]["result"][0]["value"][1]) == 2
                    and posted["data"]["result"]
                ):
                    break
                assert time.monotonic() < deadline, (up, posted, (tmp_path / "prometheus.log").read_text()[-2000:])
                await asyncio.sleep(0.5)
            await asyncio.sleep(3)

            empty, failed = [], []
            for title, expr in panel_queries():
                answer = await ask(session, api, expr.replace("$__rate_interval", RATE_INTERVAL))
                if answer.get("status") != "success":
                    failed.append((title, expr, answer.get("error")))
                elif not answer["data"]["result"]:
                    empty.append((title, expr))
            assert failed == [], failed
            assert empty == [], f"panels with no data after the load: {empty}"

            for name, expr in alert_queries():
                answer = await ask(session, api, expr)
                assert answer.get("status") == "success", (name, answer.get("error"))
            async with session.get(f"{api}/api/v1/rules") as r:
                loaded = [rule for group in (await r.json())["data"]["groups"] for rule in group["rules"]]
            assert sorted(rule["name"] for rule in loaded) == sorted(name for name, _ in alert_queries())
            assert all(rule["health"] == "ok" for rule in loaded), [(r["name"], r.get("lastError")) for r in loaded]

            # Every metric the panels and alerts name was scraped (a rename without them fails here).
            named = set()
            for _, expr in panel_queries() + alert_queries():
                named |= set(re.findall(r"\b((?:escalation_bot|process)_[a-z_]+)\b", expr))
            missing = []
            for metric in sorted(named):
                answer = await ask(session, api, f"count({metric})")
                if not answer["data"]["result"]:
                    missing.append(metric)
            assert missing == [], f"named by a panel or alert, never scraped: {missing}"
    finally:
        if prometheus is not None:
            prometheus.send_signal(signal.SIGTERM)
            try:
                prometheus.wait(10)
            except subprocess.TimeoutExpired:
                prometheus.kill()
        for r in replicas:
            r.stop()
