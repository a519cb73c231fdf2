"""What a Teams user types, as Microsoft's Agents Playground showed people type it (issue 15): every
text command with text after it, a mention before it, mixed case and stray whitespace; and a
greeting when the app is installed for a person or added to a team. With real tokens, on both
databases."""

from __future__ import annotations

from typing import Any

import pytest

from bot.sandbox.fake_teams import BOT_ID
from tests.teams import ESC, JUNIOR, LEAD, LEADS, TeamsHarness, set_up


async def said_to(t: TeamsHarness, conversation: str, act: Any) -> list[Any]:
    before = len(t.connector.in_conversation(conversation))
    answer = await act
    assert answer.status in (200, 202), answer
    return await t.connector.wait_for(lambda: t.connector.in_conversation(conversation)[before:])


def form_summary(posted: Any) -> str | None:
    card = posted.card or {}
    if not card.get("actions") or card["actions"][0].get("title") != "Escalate":
        return None
    return next((el.get("value") for el in card["body"] if el.get("id") == "summary"), None)


@pytest.mark.parametrize(
    ("typed", "summary"),
    [
        ("escalate Printer on fire", "Printer on fire"),
        ("ESCALATE printer on fire  ", "printer on fire"),
        ("  Escalate\nprinter on fire", "printer on fire"),
        ("escalate", ""),
        ("escalate   ", ""),
    ],
)
async def test_escalate_with_a_summary_opens_the_form_prefilled(teams: TeamsHarness, typed: str, summary: str) -> None:
    chat = f"a:personal-{JUNIOR.aad}"
    answers = await said_to(teams, chat, teams.teams.say_personal(JUNIOR, typed))
    assert [form_summary(a) for a in answers] == [summary], [a.text for a in answers]


async def test_escalate_after_a_mention_in_a_channel_opens_the_form_there(teams: TeamsHarness) -> None:
    await set_up(teams)
    answers = await said_to(teams, ESC, teams.teams.say_in_channel(JUNIOR, ESC, "Escalate printer on fire"))
    assert [form_summary(a) for a in answers] == ["printer on fire"]


@pytest.mark.parametrize(
    ("typed", "expect"),
    [
        ("SETUP  ", "gets the escalation cards."),
        ("setup leads ", "gets the weekly report"),
        ("Setup Leads", "gets the weekly report"),
        ("setup queue  Billing ", "cards for the Billing queue"),
    ],
)
async def test_setup_with_any_case_and_spacing(teams: TeamsHarness, typed: str, expect: str) -> None:
    channel = LEADS if "leads" in typed.lower() else ESC
    answers = await said_to(teams, channel, teams.teams.say_in_channel(LEAD, channel, typed))
    assert any(expect in a.text for a in answers), [a.text for a in answers]


@pytest.mark.parametrize(
    ("typed", "expect"),
    [
        ("Queue ", "waiting for a senior"),
        ("queue please", "waiting for a senior"),
        ("MINE", "no open escalations"),
        ("help me", "**queue** shows what is waiting"),
        ("Stats  ", "This week so far"),
    ],
)
async def test_own_work_commands_with_any_case_and_text_after(teams: TeamsHarness, typed: str, expect: str) -> None:
    chat = f"a:personal-{JUNIOR.aad}"
    answers = await said_to(teams, chat, teams.teams.say_personal(JUNIOR, typed))
    shown = " ".join(a.text + str(a.card or "") for a in answers)
    assert expect in shown, shown


async def test_installed_for_a_person_it_says_how_to_use_it(teams: TeamsHarness) -> None:
    t = teams
    a = t.teams._base(JUNIOR, t.teams.personal_conversation(JUNIOR))
    a.update(type="installationUpdate", action="add")
    answers = await said_to(t, f"a:personal-{JUNIOR.aad}", t.teams.post(a))
    assert "Hi!" in answers[-1].text and "**escalate**" in answers[-1].text


async def test_added_to_a_team_it_asks_a_lead_to_run_setup_and_says_nothing_when_others_join(
    teams: TeamsHarness,
) -> None:
    t = teams
    a = t.teams._base(LEAD, t.teams.channel_conversation(ESC))
    a.update(type="conversationUpdate", membersAdded=[{"id": BOT_ID}])
    answers = await said_to(t, ESC, t.teams.post(a))
    assert "mention me with **setup**" in answers[-1].text
    before = len(t.connector.activities)
    b = t.teams._base(LEAD, t.teams.channel_conversation(ESC))
    b.update(type="conversationUpdate", membersAdded=[{"id": "29:someone-new"}])
    assert (await t.teams.post(b)).status in (200, 202)
    assert len(t.connector.activities) == before
