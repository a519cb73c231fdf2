"""Multi-workspace install: Bolt's OAuth flow end to end against a fake oauth.v2.access, two
workspaces side by side with their own settings and tokens, uninstall and token revocation."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore
from sqlalchemy import MetaData, inspect

from storage.db import Database
from tests.conftest import Bot
from tests.helpers import card_text, eventually
from tests.multi import ALPHA, BETA, JUNIOR, SENIOR, Multi, configure, escalate_in


async def test_two_workspaces_install_configure_and_escalate_side_by_side(multi: Multi) -> None:
    m, fake = multi, multi.bot.fake
    store = m.bot.runtime.slack_app.installation_store  # type: ignore[union-attr]
    for team in (ALPHA, BETA):
        found = await store.async_find_bot(enterprise_id=None, team_id=team)
        assert found is not None and found.bot_token == m.tokens[team]

    # Installed but not configured yet: the junior is told what is missing, nothing is lost.
    answer = await m.sims[ALPHA].command(JUNIOR, "")
    assert "no escalation channel yet" in answer.json()["text"]

    await configure(m, ALPHA, "C0ALPHAESC", [SENIOR])
    await configure(m, BETA, "C0BETAESC", ["U0BETASENIOR"])
    a_card = await escalate_in(m, ALPHA, "C0ALPHAESC", "Alpha's problem")
    b_card = await escalate_in(m, BETA, "C0BETAESC", "Beta's problem")
    assert "ESC-1" in card_text(a_card) and "ESC-1" in card_text(b_card)  # numbered per workspace
    posts = {c.args["channel"]: c.token for c in fake.calls_to("chat.postMessage") if c.args["channel"][0] == "C"}
    assert posts == {"C0ALPHAESC": m.tokens[ALPHA], "C0BETAESC": m.tokens[BETA]}  # each with its own token

    # Each workspace's seniors are its own.
    before = len(fake.replies_to(SENIOR))
    assert (await m.sims[BETA].click(SENIOR, b_card, "claim")).status == 200
    reply = await fake.wait_for(lambda: len(fake.replies_to(SENIOR)) > before and fake.replies_to(SENIOR))
    assert "Only seniors can claim" in reply[-1].text
    assert (await m.sims[ALPHA].click(SENIOR, a_card, "claim")).status == 200
    await fake.wait_for(lambda: "Claimed by" in card_text(a_card))
    assert "Claimed by" not in card_text(b_card)


@pytest.mark.parametrize("how", ["app_uninstalled", "tokens_revoked"])
async def test_uninstall_or_revocation_removes_that_workspaces_tokens_only(multi: Multi, how: str) -> None:
    m, fake = multi, multi.bot.fake
    await configure(m, ALPHA, "C0ALPHAESC", [SENIOR])
    await configure(m, BETA, "C0BETAESC", [SENIOR])
    event: dict[str, Any] = {"type": how}
    if how == "tokens_revoked":
        event["tokens"] = {"oauth": [], "bot": [f"UBOT{BETA}"]}
    fake.revoke(BETA)
    assert (await m.sims[BETA].event(event)).status == 200
    store = m.bot.runtime.slack_app.installation_store  # type: ignore[union-attr]

    async def forgotten() -> bool:  # the event is acked first and handled just after
        return await store.async_find_bot(enterprise_id=None, team_id=BETA) is None

    await eventually(forgotten)
    assert await store.async_find_bot(enterprise_id=None, team_id=ALPHA) is not None
    # Alpha carries on as before.
    card = await escalate_in(m, ALPHA, "C0ALPHAESC", "Still works in Alpha")
    assert "Still works in Alpha" in card_text(card)
    # Its weekly report comes due: nobody is there to read it, so it is skipped, not a dead message.
    from datetime import date

    from storage import outbox

    b_ws = await m.bot.runtime.service.workspace_id("slack", BETA)
    await m.bot.runtime.service.queue_report_now(b_ws, date(2026, 11, 16))
    await m.bot.runtime.worker.drain()
    async with m.bot.runtime.db.read() as conn:
        assert (await outbox.counts(conn)).get("dead", 0) == 0
    # Beta's requests are no longer served with a token it revoked: no form opens there.
    calls = len(fake.calls)
    answer = await m.sims[BETA].command(JUNIOR, "")
    assert answer.status == 200
    told = await fake.wait_for(lambda: [r.text for r in fake.replies_to(JUNIOR)])
    assert "didn't confirm that Escalation Bot is installed in this workspace" in told[-1]
    assert not [c for c in fake.calls[calls:] if c.method == "views.open"]


async def test_single_workspace_mode_needs_no_install(bot: Bot) -> None:
    """SLACK_BOT_TOKEN alone: no install routes, and the flow works as it always did."""
    async with aiohttp.ClientSession() as s, s.get(bot.url + "/slack/install") as r:
        assert r.status in (404, 405)
    assert bot.runtime.slack_app is not None and bot.runtime.slack_app.installation_store is None


async def test_oauth_tables_are_exactly_what_slack_sdk_expects(db: Database) -> None:
    expected = MetaData()
    SQLAlchemyInstallationStore.build_installations_table(expected, "slack_installations")
    SQLAlchemyInstallationStore.build_bots_table(expected, "slack_bots")
    SQLAlchemyOAuthStateStore.build_oauth_states_table(expected, "slack_oauth_states")

    def reflect(conn: Any) -> dict[str, dict[str, tuple[bool, str]]]:
        insp = inspect(conn)
        return {
            t: {c["name"]: (c["nullable"], type(c["type"]).__name__) for c in insp.get_columns(t)}
            for t in expected.tables
        }

    async with db.read() as conn:
        actual = await conn.run_sync(reflect)
    for name, table in expected.tables.items():
        assert set(actual[name]) == {c.name for c in table.columns}, name
        for c in table.columns:
            assert actual[name][c.name][0] == c.nullable, (name, c.name)
