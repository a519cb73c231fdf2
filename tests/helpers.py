"""Steps the tests share: what a junior and a senior do, through the real HTTP path."""

from __future__ import annotations

from typing import Any

from bot.sandbox.fake_slack import Message
from tests.conftest import ESC_CHANNEL, JUNIOR, Bot

FORM = {
    "summary": "Customer can't log in after the SSO change",
    "severity": "P2",
    "customer": "Acme Corp, ticket 4821",
    "tried": "Cleared sessions and re-sent the invite.",
    "details": "SAML error InvalidNameIDPolicy",
}


async def open_form(bot: Bot, user: str = JUNIOR, text: str = "") -> dict[str, Any]:
    before = len(bot.fake.views_for(user))
    answer = await bot.slack.command(user, text)
    assert answer.status == 200, answer.body
    views = await bot.fake.wait_for(lambda: len(bot.fake.views_for(user)) > before and bot.fake.views_for(user))
    return views[-1]


async def escalate(bot: Bot, user: str = JUNIOR, **answers: Any) -> Message:
    """Run /escalate, fill in the form, submit; return the card once it is in the channel."""
    before = len(bot.fake.channel_messages(ESC_CHANNEL))
    view = await open_form(bot, user)
    answer = await bot.slack.submit(user, view, {**FORM, **answers})
    assert answer.status == 200 and not answer.body, answer.body
    cards = await bot.fake.wait_for(
        lambda: len(bot.fake.channel_messages(ESC_CHANNEL)) > before and bot.fake.channel_messages(ESC_CHANNEL)
    )
    return cards[-1]


def card_text(message: Message) -> str:
    """Everything on a card a person could read, as one string."""
    parts = [message.text]
    for block in message.blocks or []:
        text = block.get("text")
        if isinstance(text, dict):
            parts.append(text.get("text", ""))
        for f in block.get("fields", []) or []:
            parts.append(f.get("text", ""))
        for el in block.get("elements", []):
            if isinstance(el.get("text"), str):
                parts.append(el["text"])
            elif isinstance(el.get("text"), dict):
                parts.append(el["text"].get("text", ""))
    return "\n".join(parts)


def buttons(message: Message) -> list[str]:
    return [
        el["action_id"]
        for block in message.blocks or []
        if block.get("type") == "actions"
        for el in block.get("elements", [])
    ]


async def settle(bot: Bot, timeout: float = 15.0) -> None:
    """Wait until the outbox has nothing due and nothing in flight."""
    import asyncio
    import time as _time

    from sqlalchemy import func, or_, select

    from handoff.service import utcnow
    from storage.tables import outbox

    bot.runtime.worker.wake()
    deadline = _time.monotonic() + timeout
    while True:
        now = utcnow()
        async with bot.runtime.db.read() as conn:
            busy = await conn.scalar(
                select(func.count()).where(
                    outbox.c.status == "pending",
                    or_(outbox.c.next_attempt_at <= now, outbox.c.leased_until > now),
                )
            )
        if not busy:
            return
        if _time.monotonic() > deadline:
            raise AssertionError(f"the outbox still had {busy} message(s) due or in flight after {timeout} s")
        await asyncio.sleep(0.05)


async def outbox_quiet(db_url: str, timeout: float = 15.0) -> None:
    """For bots in other processes: wait until their outbox has nothing left to send (every row sent
    or dead), so nothing can still arrive twice."""
    from sqlalchemy import func, select

    from storage.db import Database
    from storage.tables import outbox

    db = Database(db_url)
    try:

        async def quiet() -> bool:
            async with db.read() as conn:
                left = await conn.scalar(select(func.count()).select_from(outbox).where(outbox.c.status == "pending"))
            return left == 0

        await eventually(quiet, timeout=timeout)
    finally:
        await db.dispose()


async def eventually(check: Any, timeout: float = 10.0) -> Any:
    """Wait for an effect nobody announces (a row the bot writes after it has answered): ask
    `check()` (sync or async) until it is truthy; fail the test if it never is."""
    import asyncio
    import inspect
    import time as _time

    deadline = _time.monotonic() + timeout
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if _time.monotonic() > deadline:
            raise AssertionError(f"still not true after {timeout} s: {check}")
        await asyncio.sleep(0.02)


async def events_handled(bot: Bot, count: int, timeout: float = 10.0) -> None:
    """Wait until the bot has finished handling `count` Slack events (they are acknowledged first and
    handled just after), whatever it made of them."""
    await eventually(lambda: bot.runtime.metrics.handled("slack") >= count, timeout=timeout)
