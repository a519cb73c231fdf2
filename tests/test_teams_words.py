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


async def test_one_install_announced_twice_greets_once(teams: TeamsHarness) -> None:
    # Teams (and the Agents Playground) announce an install twice: an installationUpdate and a
    # conversationUpdate with the bot among the members added. The person hears one greeting.
    t = teams
    conversation = t.teams.personal_conversation(JUNIOR)
    installed = t.teams._base(JUNIOR, conversation)
    installed.update(type="installationUpdate", action="add")
    await said_to(t, f"a:personal-{JUNIOR.aad}", t.teams.post(installed))
    joined = t.teams._base(JUNIOR, conversation)
    joined.update(type="conversationUpdate", membersAdded=[{"id": BOT_ID}, {"id": JUNIOR.aad}])
    assert (await t.teams.post(joined)).status in (200, 202)
    greetings = [a for a in t.connector.activities if "Hi!" in (a.text or "")]
    assert len(greetings) == 1, [a.text for a in greetings]


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


def support_message(text: str) -> dict[str, Any]:
    return {
        "id": "1700000000777",
        "body": {"contentType": "text", "content": text},
        "from": {"user": {"id": "aad-carol", "displayName": "Carol"}},
        "linkToMessage": "https://teams.microsoft.com/l/message/19:support@thread.tacv2/1700000000777",
    }


async def escalate_from_support(t: TeamsHarness, who: Any) -> None:
    message = support_message("VPN drops every 10 minutes")
    asked = await t.teams.message_action(who, "19:support@thread.tacv2", message)
    data = {
        **asked.body["task"]["value"]["card"]["content"]["actions"][0]["data"],
        "summary": "VPN drops",
        "severity": "P3",
    }
    done = await t.teams.message_action(who, "19:support@thread.tacv2", message, data=data)
    assert done.body["task"]["value"].startswith("Escalated as")


async def test_a_requester_who_never_chatted_with_the_bot_is_told_in_a_chat_it_opens(teams: TeamsHarness) -> None:
    t = teams
    await set_up(t)
    t.connector.installed_for.add(JUNIOR.aad)
    await escalate_from_support(t, JUNIOR)
    told = await t.connector.wait_for(
        lambda: [a for a in t.connector.activities if a.conversation.startswith("a:") and "is posted" in a.text]
    )
    chat = told[-1].conversation
    assert chat != f"a:personal-{JUNIOR.aad}"  # a conversation the bot opened itself
    assert not [a for a in t.connector.in_conversation("19:support@thread.tacv2") if "is posted" in a.text]
    opened = [c for c in t.connector.calls if c.method == "POST" and c.path == "/v3/conversations"]
    assert len(opened) == 1 and opened[0].body["members"][0]["id"] == JUNIOR.aad
    # What follows goes to the same chat, without opening another.
    card = (await t.connector.wait_for(lambda: t.connector.cards_in(ESC)))[-1]
    from tests.teams import ANA

    await t.teams.execute(ANA, card, "claim")
    await t.connector.wait_for(lambda: [a for a in t.connector.in_conversation(chat) if "picked up" in a.text])
    assert len([c for c in t.connector.calls if c.path == "/v3/conversations"]) == 1


async def test_where_the_app_is_not_installed_for_them_the_thread_hears_it_and_the_log_says_so(
    teams: TeamsHarness, caplog: pytest.LogCaptureFixture
) -> None:
    t = teams
    await set_up(t)
    with caplog.at_level("INFO", logger="bot.teams.delivery"):
        await escalate_from_support(t, JUNIOR)
        await t.connector.wait_for(
            lambda: [a for a in t.connector.in_conversation("19:support@thread.tacv2") if "is posted" in a.text]
        )
    assert any("could not open a chat with its requester" in r.getMessage() for r in caplog.records)
    assert any(status == 403 for status in (c.status for c in t.connector.calls if c.path == "/v3/conversations"))


async def test_a_requested_senior_the_bot_never_met_is_named_from_the_team(teams: TeamsHarness) -> None:
    from tests.teams import SENIORS, escalate, texts

    t = teams
    await set_up(t)
    stranger = SENIORS[7]  # never messaged the bot nor pressed a button
    t.connector.roster[stranger.aad] = stranger.name
    card = await escalate(t, requested_senior=stranger.aad)
    shown = " ".join(texts(card.card).split())
    assert f"Asked for {stranger.name}" in shown and "Asked for someone" not in shown
    looked = [c for c in t.connector.calls if c.method == "GET" and c.path.endswith("/pagedmembers")]
    assert len(looked) == 1 and looked[0].status == 200
    # Kept: the next card that names them asks nobody.
    await escalate(t, requested_senior=stranger.aad, summary="Another one")
    assert len([c for c in t.connector.calls if c.method == "GET"]) == 1


@pytest.mark.parametrize("teams_overrides", [{"teams_senior_user_ids": ["aad-senior-05", "aad-senior-06"]}])
async def test_setup_learns_the_seniors_names_so_the_form_offers_them_by_name(teams: TeamsHarness) -> None:
    # The seniors are configured by Entra id and may never have met the bot: without their names
    # the form's "ask a specific senior" offered "Senior aad-seni" twice (seen in the playground).
    from tests.teams import SENIORS, open_form

    t = teams
    t.connector.roster.update({f"aad-other-{i}": f"Other {i}" for i in range(600)})
    t.connector.roster.update({p.aad: p.name for p in SENIORS})  # on the second page of the team's members
    await set_up(t)
    form = await open_form(t)
    picker = next(el for el in form.card["body"] if el.get("id") == "requested_senior")
    assert [c["title"] for c in picker["choices"]] == ["Senior 05", "Senior 06"]


async def test_someone_the_team_does_not_have_stays_someone(teams: TeamsHarness) -> None:
    from tests.teams import SENIORS, escalate, texts

    t = teams
    await set_up(t)
    card = await escalate(t, requested_senior=SENIORS[8].aad)
    assert "Asked for someone" in " ".join(texts(card.card).split())
