"""Forgetting one person (`escalation-bot forget`): after it, a scan of every text column of every
table finds neither their id, nor their name, nor what they typed; their escalations stay for the
figures under a pseudonym; a second run finds nothing; an id of the wrong shape is refused."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import MetaData, String, Text, cast, func, select

from bot.sandbox.teams_simulator import Person
from handoff.report import build_report
from handoff.schedule import week_start_of
from handoff.service import utcnow
from storage.db import Database
from storage.tables import handoffs
from tests.conftest import JUNIOR, SENIORS, Bot
from tests.helpers import escalate, settle
from tests.teams import ANA, TeamsHarness, set_up
from tests.teams import escalate as teams_escalate
from tests.test_slack_depth import open_home, resolve

ASKED = "Platypus-Zeta-998 broke the export"  # what the person forgotten typed, asking
NOTED = "Rotated the Wombat-Key-112 and it worked"  # and as a senior, resolving


def cli(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "TEAMS_", "DATABASE_"))}
    env["DATABASE_URL"] = db_url
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )


async def everything_that_holds(db: Database, needles: list[str]) -> list[tuple[str, str, str]]:
    """(table, column, needle) for each text column of each table (the bot's, slack_sdk's) holding a needle.
    SQLite's full-text index keeps its tokens in binary shadow tables: the table it indexes is scanned."""
    found = []
    async with db.read() as conn:
        tables = MetaData()
        await conn.run_sync(lambda sync: tables.reflect(sync))
        for table in tables.sorted_tables:
            if table.name.startswith("handoffs_fts"):
                continue
            for column in table.columns:
                if not isinstance(column.type, String | Text) and "JSON" not in type(column.type).__name__.upper():
                    continue
                for needle in needles:
                    hits = await conn.scalar(
                        select(func.count())
                        .select_from(table)
                        .where(cast(column, Text).contains(needle, autoescape=True))
                    )
                    if hits:
                        found.append((table.name, column.name, needle))
    return found


async def test_a_slack_user_forgotten_leaves_no_trace_and_their_escalations_keep_the_figures(
    bot: Bot, db_url: str
) -> None:
    forgotten = SENIORS[0]
    ws = await bot.workspace_id()
    # They asked for help once, and as a senior claimed and resolved someone else's; a colleague
    # mentioned them; they looked at their Home tab.
    own = await escalate(bot, user=forgotten, summary=ASKED, tried=f"I tried {ASKED}")
    theirs = await escalate(bot, user=JUNIOR, summary="Login loops", details=f"<@{forgotten}> said to ask here")
    await resolve(bot, forgotten, theirs, note=NOTED)
    await open_home(bot, forgotten)
    await settle(bot)
    week = week_start_of(utcnow().date())
    before = (await build_report(bot.runtime.db, ws, week, timezone="UTC", baseline_minutes=30)).to_json()
    needles = [forgotten, ASKED, NOTED, "Platypus", "Wombat"]
    assert {n for _t, _c, n in await everything_that_holds(bot.runtime.db, needles)} == set(needles)  # all there

    done = await asyncio.to_thread(cli, db_url, "forget", "--slack-user", forgotten)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"forgot {forgotten} in T0ACME; where they were, they are now forgotten-")
    assert "escalations they asked for, text erased: 1" in done.stdout
    assert "resolution notes they wrote, erased: 1" in done.stdout
    assert await everything_that_holds(bot.runtime.db, needles) == []

    # Their escalations stay, counted as before: only the text people typed in them went.
    after = (await build_report(bot.runtime.db, ws, week, timezone="UTC", baseline_minutes=30)).to_json()
    for report in (before, after):
        for w in ("this", "last"):
            report[w].pop("top_customers")
            report[w].pop("claims_by", None)
            report[w].pop("resolves_by", None)
            report[w].pop("action_median_by", None)  # by person: the forgotten one's is now the pseudonym's
    assert after == before
    async with bot.runtime.db.read() as conn:
        rows = (
            await conn.execute(select(handoffs.c.requester_id, handoffs.c.resolved_by).order_by(handoffs.c.id))
        ).all()
    pseudonym = done.stdout.split("they are now ")[1].split(":")[0]
    assert rows[0][0] == pseudonym and rows[1] == (JUNIOR, pseudonym)

    again = await asyncio.to_thread(cli, db_url, "forget", "--slack-user", forgotten)
    assert again.returncode == 0 and again.stdout.startswith(f"nothing of {forgotten} in T0ACME")
    assert own.text  # their card is still in Slack: the bot does not edit old messages


async def test_an_id_of_the_wrong_shape_is_refused(bot: Bot, db_url: str) -> None:
    await bot.workspace_id()
    for flag, value in (("--slack-user", "alice"), ("--slack-user", "U0"), ("--teams-user", "aad-junior-jo")):
        refused = await asyncio.to_thread(cli, db_url, "forget", flag, value)
        assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
        assert value in refused.stderr


async def test_a_teams_user_forgotten_leaves_neither_their_id_nor_their_name(
    teams: TeamsHarness, tmp_path: Path
) -> None:
    t = teams
    jo = Person("3f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b", "Joanna Quillfeather")
    await set_up(t)
    card = await teams_escalate(t, jo, summary=ASKED, tried=f"I tried {ASKED}")
    await t.teams.execute(ANA, card, "claim")
    await t.connector.wait_for(lambda: card.updates and "Claimed by" in str(card.card))
    await t.runtime.worker.drain()
    db = t.runtime.db
    needles = [jo.aad, jo.name, ASKED]
    assert {n for *_, n in await everything_that_holds(db, needles)} == set(needles)
    url = t.runtime.settings.database_url
    done = await asyncio.to_thread(cli, url, "forget", "--teams-user", jo.aad.upper())  # any case, as Entra shows it
    assert done.returncode == 0, done.stderr
    assert await everything_that_holds(db, needles) == []
