"""Invariant 1 over HTTP: many seniors click Claim on one card at once; exactly one wins."""

from __future__ import annotations

import asyncio
import re

from bot.sandbox.simulator import button_value
from tests.conftest import JUNIOR, SENIORS, Bot
from tests.helpers import card_text, escalate


async def test_fifty_concurrent_claims_one_winner(bot: Bot) -> None:
    card = await escalate(bot)
    value = button_value(card, "claim")
    clickers = SENIORS[:50]
    answers = await asyncio.gather(*(bot.slack.click(u, card, "claim", value=value) for u in clickers))
    assert [a.status for a in answers] == [200] * 50
    await bot.fake.wait_for(lambda: all(bot.fake.replies_to(u) for u in clickers), timeout=30)

    replies = {u: bot.fake.replies_to(u) for u in clickers}
    assert all(len(r) == 1 for r in replies.values()), "each clicker hears exactly once"
    winners = [u for u, r in replies.items() if r[0].text.startswith("You claimed ESC-1")]
    assert len(winners) == 1
    winner = winners[0]
    losers = [u for u in clickers if u != winner]
    for u in losers:
        text = replies[u][0].text
        assert re.fullmatch(rf"Already claimed by <@{winner}> less than a minute ago\.", text), text
        assert replies[u][0].response_type == "ephemeral"

    await bot.fake.wait_for(lambda: "Claimed by" in card_text(card))
    await bot.runtime.worker.drain()
    assert f"Claimed by <@{winner}>" in card_text(card)
    assert all(f"<@{u}>" not in card_text(card) for u in losers)
    ws = await bot.workspace_id()
    h = await bot.runtime.service.get(ws, 1)
    assert h is not None and h.claimed_by == winner and h.version == 2
    events = await bot.runtime.service.events(ws, 1)
    assert [e["actor"] for e in events if e["kind"] == "claimed"] == [winner]
    assert sorted(e["actor"] for e in events if e["kind"] == "claim_conflict") == sorted(losers)
    picked_up = await bot.fake.wait_for(lambda: [m for m in bot.fake.dms_to(JUNIOR) if "picked up" in m.text])
    await bot.runtime.worker.drain()
    picked_up = [m for m in bot.fake.dms_to(JUNIOR) if "picked up" in m.text]
    assert len(picked_up) == 1 and f"<@{winner}>" in picked_up[0].text
