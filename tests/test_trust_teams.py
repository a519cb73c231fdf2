"""`/api/messages` trusts an activity only as far as its token says: who signed it, for whom, from
which tenant, and where the bot may answer. Tokens here are real JWTs, signed with keys a fake
of Microsoft's sign-in service publishes, and checked by the Agents SDK's validator."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.sandbox.fake_login import FakeLogin
from bot.sandbox.fake_slack import FakeSlack
from bot.sandbox.teams_simulator import Person
from tests.edge import Outside, tracebacks
from tests.teams import (
    ANA,
    APP_ID,
    JUNIOR,
    TENANT,
    TeamsHarness,
    escalate,
    running_teams,
    set_up,
    texts,
)

OTHER_TENANT = "11111111-2222-4333-8444-555555555555"


@pytest.fixture
async def guarded(db_url: str, fake_slack: FakeSlack, login: FakeLogin) -> AsyncIterator[TeamsHarness]:
    """The bot with Teams tokens required (no anonymous mode)."""
    async with running_teams(db_url, fake_slack, login) as harness:
        yield harness


def claim_invoke(t: TeamsHarness, who: Person, *, service_url: str | None = None, **changes: Any) -> dict[str, Any]:
    """An Action.Execute claim on escalation 999 (none exists): answered in the invoke response
    itself, so an admitted request is visible without the bot sending anything anywhere."""
    a = t.teams._base(who, t.teams.channel_conversation("19:escalations@thread.tacv2", "1700000000001"))
    a.update(
        type="invoke",
        name="adaptiveCard/action",
        value={"action": {"type": "Action.Execute", "verb": "claim", "data": {"h": 999}}, "trigger": "manual"},
    )
    if service_url is not None:
        a["serviceUrl"] = service_url
    a.update(changes)
    return a


NOT_FOUND = "I can't find that escalation in this organisation."


async def test_a_properly_signed_invoke_is_admitted(guarded: TeamsHarness) -> None:
    answer = await guarded.teams.post(claim_invoke(guarded, ANA))
    assert answer.status == 200 and answer.body["value"] == NOT_FOUND


async def test_a_token_from_the_tenants_own_entra_is_admitted(guarded: TeamsHarness, login: FakeLogin) -> None:
    activity = claim_invoke(guarded, ANA)
    token = login.token(service_url=activity["serviceUrl"], issuer="entra")
    answer = await guarded.teams.post(activity, headers={"Authorization": f"Bearer {token}"})
    assert answer.status == 200 and answer.body["value"] == NOT_FOUND


def bad_tokens(login: FakeLogin, service_url: str) -> dict[str, str]:
    return {
        "no kid": login.token(service_url=service_url, kid=False),
        "unpublished key": login.token(service_url=service_url, key=login.rogue),
        "another tenant's issuer": login.token(
            service_url=service_url, issuer=f"https://login.microsoftonline.com/{OTHER_TENANT}/v2.0"
        ),
        "attacker's issuer": login.token(service_url=service_url, issuer="https://attacker.example/"),
        "another tenant through Entra": login.token(service_url=service_url, issuer="entra", tenant=OTHER_TENANT),
        "someone else's bot": login.token(service_url=service_url, audience="99999999-0000-4000-8000-000000000000"),
        "expired": login.token(service_url=service_url, lifetime=-3600),
        "alg none": "eyJhbGciOiJub25lIiwia2lkIjoiYmYta2V5LTEifQ.eyJhdWQiOiJ4In0.",
        "not a jwt": "hello",
    }


async def test_every_kind_of_bad_token_is_401_never_500(
    guarded: TeamsHarness, login: FakeLogin, caplog: pytest.LogCaptureFixture
) -> None:
    activity = claim_invoke(guarded, ANA)
    for what, token in bad_tokens(login, activity["serviceUrl"]).items():
        answer = await guarded.teams.post(activity, headers={"Authorization": f"Bearer {token}"})
        assert answer.status == 401, what
    assert guarded.connector.calls == []
    assert tracebacks(caplog.records) == []


async def test_the_service_url_must_be_the_tokens_and_on_the_allow_list(
    guarded: TeamsHarness, login: FakeLogin, outside: Outside, caplog: pytest.LogCaptureFixture
) -> None:
    elsewhere = outside.url + "/"
    # Signed for the real connector, but the activity says to answer somewhere else.
    activity = claim_invoke(guarded, ANA, service_url=elsewhere)
    token = login.token(service_url=guarded.connector.service_url)
    mismatch = await guarded.teams.post(activity, headers={"Authorization": f"Bearer {token}"})
    assert mismatch.status == 401
    # A token that really names that host (an attacker's own bot registration can't get one
    # for us, but a misissued one must still not send our token there): not on the allow-list.
    activity = claim_invoke(guarded, ANA, service_url=elsewhere, type="message", text="help")
    del activity["value"], activity["name"]
    not_allowed = await guarded.teams.post(activity)  # the simulator signs it for `elsewhere`
    assert not_allowed.status == 403
    assert outside.hits == []
    # Someone trying the Agents Playground meets this first: it names what was refused and what allows it.
    said = (not_allowed.body or {})["error"]
    assert outside.url.rstrip("/") in said and "TEAMS_SERVICE_URLS" in said, said
    assert any(said in r.getMessage() for r in caplog.records if r.levelname == "WARNING")


async def test_the_tenant_comes_from_the_token_and_must_be_ours(guarded: TeamsHarness, login: FakeLogin) -> None:
    activity = claim_invoke(guarded, ANA)
    url = activity["serviceUrl"]
    theirs = login.token(service_url=url, tenant=OTHER_TENANT)
    assert (await guarded.teams.post(activity, headers={"Authorization": f"Bearer {theirs}"})).status == 403
    for where in ("conversation", "channelData"):
        other = claim_invoke(guarded, ANA)
        if where == "conversation":
            other["conversation"]["tenantId"] = OTHER_TENANT
        else:
            other["channelData"]["tenant"]["id"] = OTHER_TENANT
        assert (await guarded.teams.post(other)).status == 403, where
    none = claim_invoke(guarded, ANA)
    del none["conversation"]["tenantId"], none["channelData"]["tenant"]
    assert (await guarded.teams.post(none)).status == 400


@pytest.mark.parametrize("body", [b"{not json", b"[1,2]", b'"x"', b"\xff\xfe"])
async def test_a_signed_body_that_is_not_an_activity_is_400(
    guarded: TeamsHarness, login: FakeLogin, body: bytes
) -> None:
    token = login.token(service_url=guarded.connector.service_url)
    async with aiohttp.ClientSession() as s:
        async with s.post(
            guarded.url + "/api/messages",
            data=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        ) as resp:
            assert resp.status == 400


async def test_an_activity_of_the_wrong_shape_is_400_not_500(guarded: TeamsHarness) -> None:
    activity = claim_invoke(guarded, ANA)
    activity["from"] = "not an object"
    assert (await guarded.teams.post(activity)).status == 400
    activity = claim_invoke(guarded, ANA)
    activity["value"] = {"action": {"type": "Action.Execute", "verb": "claim", "data": {"h": True}}}
    answer = await guarded.teams.post(activity)
    assert answer.status == 200 and "doesn't carry a valid escalation" in answer.body["value"]


# ---- anonymous mode (local development) keeps the allow-list and the tenant check -------------------


@pytest.fixture
async def anonymous(db_url: str, fake_slack: FakeSlack, login: FakeLogin) -> AsyncIterator[TeamsHarness]:
    """The bot in local-development mode: TEAMS_ALLOW_ANONYMOUS on, no secret, requests without tokens.
    (The one place the tests run it: to show what it still refuses.)"""
    async with running_teams(db_url, fake_slack, login, anonymous=True) as harness:
        yield harness


async def test_anonymous_mode_still_never_answers_outside_the_allow_list(
    anonymous: TeamsHarness, outside: Outside
) -> None:
    t = anonymous
    assert t.runtime.settings.teams_allow_anonymous and t.teams.login is None and t.teams.token is None
    admitted = await t.teams.say_personal(JUNIOR, "help")  # no token, and let in: that is the mode
    assert admitted.status in (200, 202)
    activity = t.teams._base(JUNIOR, t.teams.personal_conversation(JUNIOR))
    activity.update(type="message", text="help", serviceUrl=outside.url + "/")
    answer = await t.teams.post(activity)
    assert answer.status == 403
    await t.runtime.worker.drain()
    assert outside.hits == []


# ---- 5. TEAMS_TENANT_ID is required -------------------------------------------------------------


def refused_line(tmp_path: Path, env: dict[str, str]) -> str:
    """`serve` with these settings: it must stop with exit 2 and one line on stderr, returned."""
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "serve", "--port", "0"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("tenant", "said"), [(None, "TEAMS_TENANT_ID: missing"), ("contoso", "TEAMS_TENANT_ID: must be")]
)
def test_teams_without_a_tenant_stops_start_up_with_one_line(tmp_path: Path, tenant: str | None, said: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "TEAMS_", "DATABASE_URL"))}
    env.update({"TEAMS_APP_ID": APP_ID, "TEAMS_APP_PASSWORD": "secret-value-1"})
    if tenant is not None:
        env["TEAMS_TENANT_ID"] = tenant
    assert refused_line(tmp_path, env).startswith(f"escalation-bot: {said}")


def test_anonymous_mode_refuses_to_start_without_its_explicit_flag(tmp_path: Path) -> None:
    # A Teams app id and tenant but no client secret: the bot could neither check who calls it nor
    # sign its own calls. It starts only if TEAMS_ALLOW_ANONYMOUS=true says that is meant (locally).
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "TEAMS_", "DATABASE_URL"))}
    env.update({"TEAMS_APP_ID": APP_ID, "TEAMS_TENANT_ID": TENANT})
    line = refused_line(tmp_path, env)
    assert line.startswith("escalation-bot: TEAMS_APP_PASSWORD: missing")
    assert "TEAMS_ALLOW_ANONYMOUS=true" in line


# ---- 6. user text in Teams text messages cannot forge links or formatting --------------------------

FORGED = "Fixed. [Reset your password](https://evil.example/login) <a href='https://evil.example'>x</a> **now**"


async def test_a_resolution_note_cannot_forge_a_link_in_teams_messages(teams: TeamsHarness) -> None:
    t = teams
    await set_up(t)
    card = await escalate(t)
    await t.teams.execute(ANA, card, "claim")
    await t.connector.wait_for(lambda: "Claimed by" in texts(card.card))
    done = await t.teams.execute(ANA, card, "resolve", inputs={"note": FORGED})
    assert done.status == 200
    told = await t.connector.wait_for(
        lambda: [a for a in t.connector.in_conversation(f"a:personal-{JUNIOR.aad}") if "was resolved" in a.text]
    )
    replies = await t.connector.wait_for(
        lambda: [
            a
            for a in t.connector.in_conversation(f"19:escalations@thread.tacv2;messageid={card.id}")
            if "resolved" in a.text
        ]
    )
    for message in (told[0].text, replies[0].text):
        assert "](https://evil.example" not in message  # no markdown link
        assert "<a " not in message and "**now**" not in message  # no HTML, no bold
        assert r"\[Reset your password\]\(https://evil.example/login\)" in message  # shown as typed
        assert "&lt;a href='https://evil.example'&gt;" in message
