"""Teams end to end: activities posted to /api/messages as Teams posts them, and a fake
connector service on 127.0.0.1 receiving what the bot sends."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import aiohttp

from bot.sandbox.fake_slack import Fail
from tests.helpers import eventually, settle
from tests.teams import (
    ANA,
    BEN,
    ESC,
    FORM,
    JUNIOR,
    LEAD,
    LEADS,
    SENIORS,
    TeamsHarness,
    escalate,
    open_form,
    set_up,
    texts,
)


async def test_the_whole_flow_in_teams(teams: TeamsHarness) -> None:
    t = teams
    await set_up(t)
    card = await escalate(t)
    shown = texts(card.card)
    assert "ESC-1" in shown and FORM["summary"] in shown and FORM["tried"] in shown and "Jo Junior" in shown
    assert [a["verb"] for a in card.card["actions"]] == ["claim"]
    assert card.card["version"] == "1.5"
    # The form itself now says where it went.
    form_updates = [a for a in t.connector.activities if a.updates and "Escalated as ESC-1" in texts(a.card or {})]
    assert form_updates
    told = await t.connector.wait_for(
        lambda: [a for a in t.connector.in_conversation(f"a:personal-{JUNIOR.aad}") if "is posted" in a.text]
    )
    assert "ESC-1" in told[0].text

    won = await t.teams.execute(ANA, card, "claim")
    assert won.status == 200
    assert won.body["type"] == "application/vnd.microsoft.card.adaptive"
    assert "Claimed by" in texts(won.body["value"]) and "Senior 00" in texts(won.body["value"])
    await t.connector.wait_for(lambda: card.updates and "Claimed by" in texts(card.card))
    assert [a["verb"] for a in won.body["value"]["actions"]] == ["resolve", "release"]  # the winner's view
    # Everyone sees who holds it and no buttons that can only fail; the holder's client refreshes to theirs.
    assert "actions" not in card.card and card.card["refresh"]["userIds"] == [ANA.aad]
    refresh = card.card["refresh"]["action"]
    assert refresh["type"] == "Action.Execute" and refresh["verb"] == "refresh"
    holders = await t.teams.execute(ANA, card, "refresh", data=refresh["data"])
    assert [a["verb"] for a in holders.body["value"]["actions"]] == ["resolve", "release"]
    others = await t.teams.execute(BEN, card, "refresh", data=refresh["data"])
    assert "actions" not in others.body["value"] and "Claimed by" in texts(others.body["value"])
    lost = await t.teams.execute(BEN, card, "claim", data={"h": 1, "v": 1})
    assert lost.body["type"] == "application/vnd.microsoft.activity.message"
    assert lost.body["value"] == "Already claimed by Senior 00 less than a minute ago."
    again = await t.teams.execute(ANA, card, "claim", data={"h": 1, "v": 1})
    assert again.body["value"] == "You already have this one."
    picked = await t.connector.wait_for(
        lambda: [a for a in t.connector.in_conversation(f"a:personal-{JUNIOR.aad}") if "picked up" in a.text]
    )
    assert picked[0].text.startswith("Senior 00 picked up ESC-1")
    replies = await t.connector.wait_for(lambda: t.connector.in_conversation(f"{ESC};messageid={card.id}"))
    assert "Senior 00 claimed ESC-1" in replies[0].text

    empty = await t.teams.execute(ANA, card, "resolve", inputs={"note": " "})
    assert "what fixed it" in empty.body["value"].lower()
    done = await t.teams.execute(ANA, card, "resolve", inputs={"note": "Raised the proxy timeout."})
    assert "Resolved by" in texts(done.body["value"])
    await t.connector.wait_for(lambda: "Resolved by" in texts(card.card))
    assert "Raised the proxy timeout." in texts(card.card) and "actions" not in card.card
    resolved = await t.connector.wait_for(
        lambda: [a for a in t.connector.in_conversation(f"a:personal-{JUNIOR.aad}") if "was resolved" in a.text]
    )
    assert "Raised the proxy timeout." in resolved[0].text


async def test_thirty_concurrent_claims_one_winner_and_everyone_told(teams: TeamsHarness) -> None:
    t = teams
    await set_up(t)
    card = await escalate(t)
    clickers = SENIORS[:30]
    answers = await asyncio.gather(*(t.teams.execute(p, card, "claim", data={"h": 1, "v": 1}) for p in clickers))
    assert [a.status for a in answers] == [200] * 30
    winners = [p for p, a in zip(clickers, answers, strict=True) if a.body["type"].endswith("card.adaptive")]
    assert len(winners) == 1
    for p, a in zip(clickers, answers, strict=True):
        if p is not winners[0]:
            assert a.body["value"] == f"Already claimed by {winners[0].name} less than a minute ago."
    await t.connector.wait_for(lambda: "Claimed by" in texts(card.card))
    await settle(t)  # nothing due or in flight: a second update would have gone out
    assert texts(card.card).count("Claimed by") == 1 and winners[0].name in texts(card.card)
    states = {texts(u) for u in [card.body, *card.updates] if "Claimed by" in texts(u)}
    assert all(winners[0].name in s for s in states)


HOSTILE = "**bold** _it_ <at>Everyone</at> [click](https://evil.example) ![x](https://evil.example/x.png) # H"


def plain_only(card: dict[str, Any]) -> None:
    """Every piece of typed text sits in a TextRun (shown as written), never in markdown-parsed text."""

    def walk(el: Any, in_run: bool = False) -> None:
        if isinstance(el, dict):
            if el.get("type") == "TextBlock":
                assert "evil.example" not in el.get("text", "") and "<at>" not in el.get("text", ""), el
            for v in el.values():
                walk(v, in_run or el.get("type") == "TextRun")
        elif isinstance(el, list):
            for v in el:
                walk(v, in_run)

    walk(card)


async def test_markdown_mentions_and_links_stay_plain_text(teams: TeamsHarness) -> None:
    t = teams
    await set_up(t)
    card = await escalate(t, summary=HOSTILE[:140], customer=HOSTILE, tried=HOSTILE, details=HOSTILE)
    plain_only(card.card)
    assert "entities" not in card.body  # no mention entities: nobody is pinged
    runs = [r["text"] for b in card.card["body"] if b["type"] == "RichTextBlock" for r in b["inlines"]]
    assert sum(HOSTILE in r for r in runs) >= 3 and any(r.startswith("**bold**") for r in runs)
    won = await t.teams.execute(ANA, card, "claim")
    plain_only(won.body["value"])
    done = await t.teams.execute(ANA, card, "resolve", inputs={"note": HOSTILE})
    plain_only(done.body["value"])


async def test_connector_failing_then_ok_the_card_arrives_once(teams: TeamsHarness) -> None:
    t = teams
    await set_up(t)
    t.connector.fail_next(Fail(status=500), conversation=ESC)  # the channel post fails once
    card = await escalate(t)
    await t.connector.wait_for(
        lambda: [a for a in t.connector.in_conversation(f"a:personal-{JUNIOR.aad}") if "is posted" in a.text],
        timeout=20,
    )
    await t.runtime.worker.drain()
    assert len(t.connector.cards_in(ESC)) == 1 and card.card is not None
    assert [c.status for c in t.connector.calls if c.status != 200] == [500]
    # The metrics count connector calls by operation and outcome, the failed one included.
    async with aiohttp.ClientSession() as s, s.get(t.url + "/metrics") as r:
        text = await r.text()
    calls = 'escalation_bot_platform_api_calls_total{method="send_to_conversation",outcome="%s",platform="teams"}'
    assert calls % "server_error" + " 1.0" in text and calls % "ok" in text
    assert 'escalation_bot_submission_to_card_seconds_count{platform="teams"} 1.0' in text


async def test_a_missing_or_malformed_token_is_401_and_slack_is_untouched(teams: TeamsHarness) -> None:
    t = teams
    activity = t.teams._base(LEAD, t.teams.personal_conversation(LEAD))
    activity.update(type="message", text="escalate")
    missing = await t.teams.post(activity, headers={"Authorization": ""})
    assert missing.status == 401
    for header in ("Bearer not-a-jwt", "Bearer a.b.c", "Basic dXNlcjpwYXNz", "Bearer"):
        malformed = await t.teams.post(activity, headers={"Authorization": header})
        assert malformed.status == 401, header
    assert t.connector.calls == []
    # Slack's path keeps its own (signature) check and works as before.
    from bot.sandbox.simulator import SlackSimulator
    from tests.conftest import SECRET, TEAM

    async with SlackSimulator(t.url, SECRET, team_id=TEAM) as slack:
        answer = await slack.command("U0JUNIOR", "help")
    assert answer.status == 200 and "/escalate" in answer.json()["text"]


def test_teams_package_has_a_valid_manifest_and_icons_of_the_right_sizes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json
    import os
    import subprocess
    import sys
    import zipfile

    from tests.test_report import png_size

    app_id = "1b2c3d4e-0000-4000-8000-00000000b0b0"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "TEAMS_"))}
    env["TEAMS_APP_ID"] = app_id
    out = tmp_path / "pkg.zip"
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "teams-package", "--out", str(out)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    with zipfile.ZipFile(out) as z:
        assert sorted(z.namelist()) == ["color.png", "manifest.json", "outline.png"]
        m = json.loads(z.read("manifest.json"))
        color, outline = z.read("color.png"), z.read("outline.png")
    for key in (
        "$schema",
        "manifestVersion",
        "version",
        "id",
        "developer",
        "name",
        "description",
        "icons",
        "accentColor",
    ):
        assert m[key], key
    assert m["$schema"].endswith(f"/v{m['manifestVersion']}/MicrosoftTeams.schema.json")
    # Against Microsoft's own schema for the version it declares (tests/schemas/README.md says where from).
    import jsonschema

    from tests.cardcheck import SCHEMAS

    schema = json.loads((SCHEMAS / f"teams-manifest-{m['manifestVersion']}.json").read_text())
    problems = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in jsonschema.Draft4Validator(schema).iter_errors(m)
    ]
    assert problems == []
    assert m["id"] == app_id and m["bots"][0]["botId"] == app_id
    assert set(m["bots"][0]["scopes"]) == {"personal", "team"}
    commands = {c["title"] for cl in m["bots"][0]["commandLists"] for c in cl["commands"]}
    assert {"escalate", "queue", "mine", "stats", "help", "setup"} <= commands
    assert len(m["name"]["short"]) <= 30 and len(m["description"]["short"]) <= 80
    for k in ("websiteUrl", "privacyUrl", "termsOfUseUrl"):
        assert m["developer"][k].startswith("https://")
    assert png_size(color) == (192, 192) and png_size(outline) == (32, 32)
    assert outline[25] == 6  # RGBA: the outline icon has a transparent background
    bad = subprocess.run(
        [sys.executable, "-m", "bot.cli", "teams-package"],
        env={**env, "TEAMS_APP_ID": "not-a-guid"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "TEAMS_APP_ID" in bad.stderr


async def test_reminders_and_the_weekly_report_reach_teams(teams: TeamsHarness) -> None:
    from datetime import UTC, datetime, timedelta

    import time_machine

    from tests.test_report import png_size
    from tests.test_schedule import next_monday

    t = teams
    await set_up(t)
    await t.teams.say_in_channel(LEAD, LEADS, "setup leads")
    await t.connector.wait_for(lambda: any("weekly report" in a.text for a in t.connector.activities))
    scheduler = t.runtime.scheduler
    assert scheduler is not None
    with time_machine.travel(datetime.now(UTC), tick=True) as tm:
        card = await escalate(t)
        tm.shift(timedelta(minutes=10, seconds=10))
        await scheduler.tick()
        t.runtime.worker.wake()
        pings = await t.connector.wait_for(lambda: t.connector.in_conversation(f"{ESC};messageid={card.id}"))
        assert "ESC-1" in pings[0].text and "waited 10 min" in pings[0].text
        tm.shift(timedelta(minutes=20))
        await scheduler.tick()
        t.runtime.worker.wake()
        alerts = await t.connector.wait_for(
            lambda: [a for a in t.connector.in_conversation(LEADS) if "nobody has claimed it" in a.text]
        )
        assert "ESC-1" in alerts[0].text
    # A Teams workspace's reports keep UTC: 10:00 UTC on its coming Monday, the 09:00 UTC post is due.
    with time_machine.travel(next_monday(10, 0, UTC), tick=True):
        await scheduler.tick()
        t.runtime.worker.wake()
        reports = await t.connector.wait_for(
            lambda: [
                a for a in t.connector.cards_in(LEADS) if a.card.get("fallbackText", "").startswith("Escalations, week")
            ],
            timeout=20,
        )
    assert len(reports) == 1
    report = reports[0].card
    facts = {f["title"]: f["value"] for el in report["body"] if el["type"] == "FactSet" for f in el["facts"]}
    assert facts["Opened"] == "1 (was 0, +1)" and facts["Still open"] == "1" and facts["By severity"] == "P2 1"
    image = next(el for el in report["body"] if el["type"] == "Image")
    assert image["url"].startswith("data:image/png;base64,") and image["altText"]
    assert png_size(base64.b64decode(image["url"].split(",", 1)[1])) == (1200, 600)
    assert report["fallbackText"].startswith("Escalations, week") and "1 opened" in report["fallbackText"]


async def test_an_escalation_made_before_setup_waits_and_goes_out_when_setup_runs(teams: TeamsHarness) -> None:
    t = teams
    form = await open_form(t)
    answer = await t.teams.submit_form(JUNIOR, form, FORM)
    assert answer.status in (200, 202)
    said = await t.connector.wait_for(lambda: "Escalated as ESC-1" in texts(form.card or {}) and texts(form.card))
    assert "as soon as a lead runs setup" in said

    async def waiting() -> object:
        row = await t.runtime.service.outbox_row("post_card:1")
        return row is not None and row.attempts == 0 and row.last_error and row.last_error.startswith("waiting")

    await eventually(waiting)  # tried, and waiting: not dead
    assert (await t.runtime.service.outbox_row("post_card:1")).status == "pending"
    await set_up(t)
    card = (await t.connector.wait_for(lambda: t.connector.cards_in(ESC)))[0]
    assert "ESC-1" in texts(card.card)
    told = await t.connector.wait_for(
        lambda: [a for a in t.connector.in_conversation(f"a:personal-{JUNIOR.aad}") if "is posted" in a.text]
    )
    assert "ESC-1" in told[0].text
