"""Tenant walls: a request signed for workspace A that carries workspace B's handoff ids,
channel ids or button values can neither read nor change B's escalations, in any handler."""

from __future__ import annotations

from typing import Any

from bot.sandbox.fake_slack import Message
from bot.slack.ids import CardAction, ResolveMeta
from tests.helpers import card_text
from tests.multi import ALPHA, BETA, JUNIOR, SENIOR, Multi, configure, escalate_in

NOT_FOUND = "I can't find that escalation in this workspace."


async def setup(m: Multi) -> tuple[Message, Message, int, int]:
    """A's and B's escalations (the same junior and senior ids in both), B's claimed by B's senior."""
    await configure(m, ALPHA, "C0ALPHAESC", [SENIOR])
    await configure(m, BETA, "C0BETAESC", [SENIOR])
    a_card = await escalate_in(m, ALPHA, "C0ALPHAESC", "Alpha's own problem")
    b_card = await escalate_in(m, BETA, "C0BETAESC", "Beta's secret problem")
    assert (await m.sims[BETA].click(SENIOR, b_card, "claim")).status == 200
    await m.bot.fake.wait_for(lambda: "Claimed by" in card_text(b_card))
    b_ws = await m.bot.runtime.service.workspace_id("slack", BETA)
    (b,) = await m.bot.runtime.service.mine(b_ws, JUNIOR)
    return a_card, b_card, b_ws, b.id


async def beta_state(m: Multi, b_ws: int, b_id: int) -> tuple[Any, ...]:
    h = await m.bot.runtime.service.get(b_ws, b_id)
    assert h is not None and h.summary == "Beta's secret problem"
    return (h.status, h.claimed_by, h.version, h.resolution, h.first_action_at)


async def reply(m: Multi, user: str, send: Any) -> str:
    fake = m.bot.fake
    before = len(fake.replies_to(user))
    answer = await send()
    assert answer.status == 200
    replies = await fake.wait_for(lambda: len(fake.replies_to(user)) > before and fake.replies_to(user))
    return replies[-1].text


async def test_buttons_carrying_another_workspaces_handoff_change_nothing(multi: Multi) -> None:
    m = multi
    _a_card, b_card, b_ws, b_id = await setup(m)
    before = await beta_state(m, b_ws, b_id)
    alpha = m.sims[ALPHA]
    value = CardAction(h=b_id, v=2).dump()  # B's handoff, at the version B's card shows
    for action in ("claim", "release", "resolve"):
        # B's own card, B's channel, B's button value, B's claimer id: only the signed team is A.
        text = await reply(m, SENIOR, lambda action=action: alpha.click(SENIOR, b_card, action, value=value))
        assert text == NOT_FOUND, (action, text)
    assert not [v for v in m.bot.fake.views_for(SENIOR) if v.get("callback_id") == "resolve_note"]
    # A resolve form forged to point at B's handoff.
    forged = {
        "type": "modal",
        "callback_id": "resolve_note",
        "private_metadata": ResolveMeta(h=b_id, channel="C0BETAESC").dump(),
        "blocks": [
            {"type": "input", "block_id": "note", "element": {"type": "plain_text_input", "action_id": "value"}}
        ],
    }
    answer = await alpha.submit(SENIOR, forged, {"note": "Closed by A"})
    assert answer.json()["errors"]["note"] == NOT_FOUND
    # A thread reply in B's card's thread, sent as A: no first action for B.
    assert (
        await alpha.event(
            {
                "type": "message",
                "channel": b_card.channel,
                "user": SENIOR,
                "text": "on it",
                "ts": "9.1",
                "thread_ts": b_card.ts,
            }
        )
    ).status == 200
    await m.bot.runtime.worker.drain()
    assert await beta_state(m, b_ws, b_id) == before
    assert "Closed by A" not in card_text(b_card)


async def test_home_and_commands_show_only_the_signed_workspaces_escalations(multi: Multi) -> None:
    m, fake = multi, multi.bot.fake
    _a_card, b_card, b_ws, b_id = await setup(m)
    before = await beta_state(m, b_ws, b_id)
    alpha = m.sims[ALPHA]

    # Home for a user who exists in both workspaces: only A's queue and A's claims.
    assert (await alpha.open_home(SENIOR)).status == 200
    homes = await fake.wait_for(lambda: [v for v in fake.views_for(SENIOR) if v.get("_home")])
    home = str(homes[-1]["blocks"])
    assert "Alpha's own problem" in home and "Beta's secret problem" not in home
    # A Home click carrying B's button value.
    from bot.sandbox.simulator import button_value

    assert (await alpha.home_click(SENIOR, "release", button_value(b_card, "release"))).status == 200
    await fake.wait_for(lambda: NOT_FOUND in str([v for v in fake.views_for(SENIOR) if v.get("_home")][-1]["blocks"]))

    mine = await reply(m, JUNIOR, lambda: alpha.command(JUNIOR, "mine"))
    assert "Alpha's own problem" in mine and "Beta's secret problem" not in mine
    stats = await reply(m, JUNIOR, lambda: alpha.command(JUNIOR, "stats"))
    assert "1 opened, 0 claimed" in stats  # B's claimed escalation is not counted in A
    assert await beta_state(m, b_ws, b_id) == before
