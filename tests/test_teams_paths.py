"""Every Teams path a person can take, with real tokens both ways (the SDK's validator on what
Teams sends, MSAL's client-credentials token on what the bot sends) and every card checked
against the Adaptive Card schema by the fake connector."""

from __future__ import annotations

from typing import Any

import pytest

from bot.sandbox.fake_slack import Fail
from tests.helpers import eventually
from tests.teams import ANA, BEN, ESC, FORM, JUNIOR, SENIORS, TeamsHarness, escalate, open_form, set_up, texts

OUTSIDER = SENIORS[30]


async def claimed(t: TeamsHarness, who: Any = ANA) -> Any:
    await set_up(t)
    card = await escalate(t)
    answer = await t.teams.execute(who, card, "claim")
    assert answer.status == 200 and "Claimed by" in texts(answer.body["value"])
    await t.connector.wait_for(lambda: "Claimed by" in texts(card.card))
    return card


async def test_release_opens_it_again_and_the_requester_hears(teams: TeamsHarness) -> None:
    t = teams
    card = await claimed(t)
    released = await t.teams.execute(ANA, card, "release")
    assert released.status == 200 and [a["verb"] for a in released.body["value"]["actions"]] == ["claim"]
    await t.connector.wait_for(lambda: [a.get("verb") for a in card.card.get("actions", [])] == ["claim"])
    told = await t.connector.wait_for(
        lambda: [a for a in t.connector.in_conversation(f"a:personal-{JUNIOR.aad}") if "released" in a.text]
    )
    assert told[0].text.startswith("Senior 00 released ESC-1")
    again = await t.teams.execute(BEN, card, "claim")
    assert "Claimed by" in texts(again.body["value"]) and "Senior 01" in texts(again.body["value"])


async def test_only_the_holder_may_release_or_resolve(teams: TeamsHarness) -> None:
    t = teams
    card = await claimed(t)
    data = {"h": 1, "v": 2}
    for verb, extra in (("release", {}), ("resolve", {"note": "Not mine to fix"})):
        answer = await t.teams.execute(BEN, card, verb, data={**data, **extra})
        assert answer.body["value"] == "Senior 00 holds ESC-1 now, so only they can do that. Nothing changed."
    h = await t.runtime.service.get(await t.runtime.service.workspace_id("teams", t.teams.tenant), 1)
    assert h is not None and h.claimed_by == ANA.aad and h.status == "claimed"


async def test_a_resolved_escalation_is_closed_to_claims_and_changes(teams: TeamsHarness) -> None:
    t = teams
    card = await claimed(t)
    done = await t.teams.execute(ANA, card, "resolve", inputs={"note": "Restarted the export worker."})
    assert "Resolved by" in texts(done.body["value"])
    for who, verb in ((BEN, "claim"), (ANA, "release"), (ANA, "resolve")):
        answer = await t.teams.execute(who, card, verb, data={"h": 1, "v": 2, "note": "again"})
        assert answer.body["value"] == "ESC-1 is already resolved.", (who, verb)


async def test_nobody_claims_their_own_escalation(teams: TeamsHarness) -> None:
    t = teams
    await set_up(t)
    card = await escalate(t)
    own = await t.teams.execute(JUNIOR, card, "claim")
    assert own.body["value"] == "You can't claim your own escalation; a senior will pick it up."
    assert "Claimed by" not in texts(card.card)


@pytest.mark.parametrize("teams_overrides", [{"teams_senior_user_ids": [ANA.aad, BEN.aad]}])
async def test_only_the_configured_seniors_may_claim_and_the_form_offers_them(teams: TeamsHarness) -> None:
    t = teams
    await set_up(t)
    await t.teams.execute(ANA, await escalate(t, summary="warm-up"), "claim")  # the bot meets Senior 00
    form = await open_form(t)
    picker = next(el for el in form.card["body"] if el.get("id") == "requested_senior")
    assert picker["type"] == "Input.ChoiceSet" and "choices.data" not in picker  # no People Picker
    assert [c["value"] for c in picker["choices"]] == [ANA.aad, BEN.aad]
    assert picker["choices"][0]["title"] == "Senior 00"
    card = await escalate(t)
    refused = await t.teams.execute(OUTSIDER, card, "claim")
    assert refused.body["value"].startswith("Only the seniors configured")
    assert (await t.teams.execute(BEN, card, "claim")).body["type"].endswith("card.adaptive")


async def test_a_form_with_mistakes_is_answered_on_the_form_and_stores_nothing(teams: TeamsHarness) -> None:
    t = teams
    await set_up(t)
    form = await open_form(t)
    answer = await t.teams.submit_form(JUNIOR, form, {**FORM, "summary": " ", "tried": ""})
    assert answer.status in (200, 202)
    shown = await t.connector.wait_for(lambda: form.updates and "Please fix" in texts(form.card) and texts(form.card))
    assert "Say in one line what is wrong." in shown and "Say what you have already tried" in shown
    assert t.connector.cards_in(ESC) == []
    ws = await t.runtime.service.workspace_id("teams", t.teams.tenant)
    assert await t.runtime.service.get(ws, 1) is None


@pytest.mark.parametrize("data", [{"h": True}, {"h": 2**31}, {"h": "1"}, {}, {"h": -1}])
async def test_a_broken_button_says_so_and_changes_nothing(teams: TeamsHarness, data: dict[str, Any]) -> None:
    t = teams
    await set_up(t)
    card = await escalate(t)
    for verb in ("claim", "release", "resolve"):
        answer = await t.teams.execute(ANA, card, verb, data=data)
        assert answer.body["value"] == "That button doesn't carry a valid escalation; nothing changed."
    assert "Claimed by" not in texts(card.card)


async def test_a_button_aimed_at_another_workspaces_escalation_finds_nothing(teams: TeamsHarness) -> None:
    """Tenant walls: Slack's ESC-1 has the same id as Teams' would; a Teams click never reaches it."""
    t = teams
    service = t.runtime.service
    slack_ws = await service.workspace_id("slack", "T0OTHER")
    from handoff.domain import Draft, Severity

    other = await service.escalate(slack_ws, "U0SLACKJUNIOR", Draft("Slack's", Severity.P2, "tried"), key="k")
    await set_up(t)
    card = await escalate(t)
    answer = await t.teams.execute(ANA, card, "claim", data={"h": other.handoff.id})
    assert answer.body["value"] == "I can't find that escalation in this organisation."
    assert (await service.get(slack_ws, other.handoff.id)).status == "open"  # type: ignore[union-attr]


async def test_a_throttled_connector_is_waited_out_and_the_card_arrives_once(teams: TeamsHarness) -> None:
    t = teams
    await set_up(t)
    t.connector.fail_next(Fail(status=429, retry_after=1), conversation=ESC)
    card = await escalate(t)
    assert "ESC-1" in texts(card.card)
    throttled = [c for c in t.connector.calls if c.status == 429]
    posted = [c for c in t.connector.calls if c.applied and c.conversation == ESC and c.body.get("attachments")]
    assert len(throttled) == 1 and len(posted) == 1
    assert posted[0].at - throttled[0].at >= 1.0  # Retry-After was honoured
    row = await eventually(lambda: _sent(t, "post_card:1"))
    assert row.attempts == 2


async def _sent(t: TeamsHarness, key: str) -> Any:
    row = await t.runtime.service.outbox_row(key)
    return row if row is not None and row.status == "sent" else None
