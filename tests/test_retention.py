"""Data has a lifetime: after RETENTION_DAYS a closed escalation's free text is erased and its
numbers stay (old weeks' reports keep their figures); delivered messages and event ids are pruned;
in batches, one replica at a time, logged and counted. SQLite and PostgreSQL, over the real flows."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import func, select, update

from bot.sandbox.fake_slack import RESPONSE_URL
from bot.sandbox.faults import Fail
from bot.scheduler import Scheduler
from handoff import retention
from handoff.report import build_report
from handoff.retention import QUIET_SECONDS
from handoff.schedule import week_start_of
from handoff.service import utcnow
from storage.tables import handoff_events, handoffs, outbox, processed_events
from tests.conftest import SENIORS, Bot
from tests.helpers import card_text, escalate, settle
from tests.test_slack_depth import resolve

SECRET_TEXT = "Kiwi-Banana-4471 fails on checkout"


async def row(bot: Bot, number: int) -> dict:  # type: ignore[type-arg]
    async with bot.runtime.db.read() as conn:
        found = (await conn.execute(select(handoffs).where(handoffs.c.number == number))).one()
    return dict(found._mapping)


async def closed_escalation(bot: Bot, **answers: str) -> tuple[object, int]:
    card = await escalate(bot, **answers)
    number = int(card.text.split("ESC-")[1].split()[0].strip(":*"))
    await resolve(bot, SENIORS[0], card, note=f"Fixed it: {SECRET_TEXT} was a stale cache")
    await settle(bot)
    return card, number


@pytest.mark.parametrize("bot_overrides", [{"retention_days": 30}])
async def test_after_the_retention_period_the_text_goes_and_the_numbers_and_reports_stay(bot: Bot) -> None:
    _card, old = await closed_escalation(bot, summary=SECRET_TEXT, tried=f"Tried {SECRET_TEXT}", customer="Acme")
    probe_before = await escalate(bot, summary=SECRET_TEXT, tried="Restarted the checkout service")
    assert f"ESC-{old}" in card_text(probe_before)  # the similar lookup finds it while its text is there
    ws = await bot.workspace_id()
    week = week_start_of(utcnow().date())
    before = (await build_report(bot.runtime.db, ws, week, timezone="UTC", baseline_minutes=30)).to_json()
    kept = await row(bot, old)
    service = bot.runtime.service
    async with bot.runtime.db.write() as conn:  # a card it left when moved, saying why: the mover's note
        await conn.execute(
            outbox.insert().values(
                workspace_id=ws,
                handoff_id=kept["id"],
                kind="moved_card",
                dedupe_key=f"moved_card:{kept['id']}:1",
                payload={"note": f"Moved: {SECRET_TEXT}", "channel": "C0ESCALATE", "ref": "1.2"},
                status="sent",
                attempts=1,
                next_attempt_at=utcnow(),
                created_at=utcnow(),
                sent_at=utcnow(),
            )
        )

    with time_machine.travel(utcnow() + timedelta(days=29), tick=True):
        assert (await service.purge(retention_days=30, outbox_keep_days=60)).erased == 0  # not yet
    with time_machine.travel(utcnow() + timedelta(days=31), tick=True):  # messages kept longer than the text
        done = await service.purge(retention_days=30, outbox_keep_days=60)
    assert done.erased == 1
    erased = await row(bot, old)
    assert (erased["summary"], erased["details"], erased["tried"], erased["customer"]) == ("(erased)", "", "", "")
    assert erased["resolution"] == "" and erased["transcript"] is None and erased["erased_at"] is not None
    for kept_field in ("created_at", "claimed_at", "first_action_at", "resolved_at", "severity", "queue_id",
                       "requester_id", "claimed_by", "resolved_by", "status", "number"):  # fmt: skip
        assert erased[kept_field] == kept[kept_field], kept_field
    after = (await build_report(bot.runtime.db, ws, week, timezone="UTC", baseline_minutes=30)).to_json()
    # Every figure stays; only the busiest customers (what people typed in the customer field) go.
    for report in (before, after):
        for week in ("this", "last"):
            report[week].pop("top_customers")
    assert after == before
    # The open one keeps its text; the erased one's is nowhere, not even in its audit trail.
    assert SECRET_TEXT in (await row(bot, old + 1))["summary"]
    async with bot.runtime.db.read() as conn:
        events = (await conn.execute(select(handoff_events.c.data).where(handoff_events.c.data.is_not(None)))).all()
    assert not any(SECRET_TEXT in str(d) for (d,) in events)
    async with bot.runtime.db.read() as conn:  # nor in the messages sent about it, kept meanwhile
        payloads = (await conn.execute(select(outbox.c.payload).where(outbox.c.handoff_id == erased["id"]))).all()
    assert payloads and not any(SECRET_TEXT in str(p) for (p,) in payloads)
    # Erased text is out of the full-text search too: a new card with the same words lists it no more.
    probe_after = await escalate(bot, summary=SECRET_TEXT, tried="Restarted the checkout service")
    assert f"ESC-{old}" not in card_text(probe_after)


async def test_delivered_messages_and_event_ids_are_pruned_and_the_pending_kept(bot: Bot) -> None:
    await escalate(bot)
    await settle(bot)
    now = utcnow()
    async with bot.runtime.db.write() as conn:
        await conn.execute(
            processed_events.insert().values(source="slack", event_id="Ev0OLD", received_at=now - timedelta(days=3))
        )
        await conn.execute(
            processed_events.insert().values(source="slack", event_id="Ev0NEW", received_at=now - timedelta(hours=1))
        )
        sent = (await conn.execute(select(func.count()).select_from(outbox).where(outbox.c.status == "sent"))).scalar()
        pending = (
            await conn.execute(select(func.count()).select_from(outbox).where(outbox.c.status == "pending"))
        ).scalar()
    assert sent and sent >= 2
    service = bot.runtime.service
    first = await service.purge(retention_days=None, outbox_keep_days=7)
    assert (first.delivered, first.event_ids) == (0, 1)  # the event id from three days ago, not the new one
    with time_machine.travel(now + timedelta(days=6), tick=True):
        assert (await service.purge(retention_days=None, outbox_keep_days=7)).delivered == 0
    with time_machine.travel(now + timedelta(days=8), tick=True):
        done = await service.purge(retention_days=None, outbox_keep_days=7, batch=1, max_batches=None)
    assert done.delivered == sent  # in batches of one
    async with bot.runtime.db.read() as conn:
        left = (await conn.execute(select(outbox.c.status))).scalars().all()
    assert left.count("sent") == 0 and left.count("pending") == pending


@pytest.mark.parametrize("bot_overrides", [{"retention_days": 30}])
async def test_a_weeks_report_row_is_kept_while_it_is_the_latest_so_the_metrics_still_see_it_posted(bot: Bot) -> None:
    ws = await bot.workspace_id()
    key = await bot.runtime.service.queue_report_now(ws, week_start_of(utcnow().date()) - timedelta(days=7))
    await settle(bot)
    async with bot.runtime.db.write() as conn:  # delivered three days ago
        await conn.execute(update(outbox).where(outbox.c.dedupe_key == key).values(status="sent", sent_at=utcnow()))
    with time_machine.travel(utcnow() + timedelta(days=3), tick=True):
        await bot.runtime.service.purge(retention_days=30, outbox_keep_days=1, max_batches=None)
    assert await bot.runtime.service.outbox_row(key) is not None
    with time_machine.travel(utcnow() + timedelta(days=9), tick=True):
        await bot.runtime.service.purge(retention_days=30, outbox_keep_days=1, max_batches=None)
    assert await bot.runtime.service.outbox_row(key) is None


async def test_purging_in_small_batches_from_two_replicas_at_once_erases_each_once(bot: Bot) -> None:
    numbers = [(await closed_escalation(bot, summary=f"Problem {i} {SECRET_TEXT}"))[1] for i in range(5)]
    service = bot.runtime.service
    from handoff.service import HandoffService
    from storage.db import Database

    other_db = Database(bot.runtime.settings.database_url)  # a second replica's own connections
    try:
        other = HandoffService(other_db)
        with time_machine.travel(utcnow() + timedelta(days=2), tick=True):
            runs = await asyncio.gather(
                *(s.purge(retention_days=1, outbox_keep_days=7, batch=2, max_batches=None) for s in (service, other))
            )
            again = await service.purge(retention_days=1, outbox_keep_days=7, batch=2, max_batches=None)
    finally:
        await other_db.dispose()
    assert (sum(r.erased for r in runs) + again.erased == 5 and again.erased == 0) or sum(r.erased for r in runs) < 5
    for number in numbers:
        assert (await row(bot, number))["summary"] == "(erased)"


@pytest.mark.parametrize("bot_overrides", [{"retention_days": 30}])
async def test_the_scheduler_purges_logs_what_it_did_and_counts_it(bot: Bot, caplog: pytest.LogCaptureFixture) -> None:
    await closed_escalation(bot, summary=SECRET_TEXT)
    scheduler = Scheduler(bot.runtime.service, bot.runtime.settings, metrics=bot.runtime.metrics)
    caplog.set_level(logging.INFO, logger="bot.scheduler")
    with time_machine.travel(utcnow() + timedelta(days=31), tick=True):
        await scheduler.purge()
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("retention:")]
    assert said and "erased the text of 1 escalation(s) closed over 30 day(s) ago" in said[0]
    samples = {
        s.labels.get("what"): s.value
        for m in bot.runtime.metrics.retention.collect()
        for s in m.samples
        if s.name.endswith("_total")
    }
    assert samples.get("escalation_text") == 1


async def test_a_workspace_admin_sets_their_own_retention_in_slack(bot: Bot) -> None:
    from tests.test_slack_queues import ADMIN, block, command_form

    bot.fake.users.update({ADMIN: "Ada Admin"})
    bot.fake.admins.add(ADMIN)
    form = await command_form(bot, ADMIN, "config")
    assert block(form, "retention_days")["optional"] is True
    answer = await bot.slack.submit(ADMIN, form, {"escalation_channel": "C0ESCALATE", "retention_days": "ten"})
    assert "A number of days" in answer.body
    answer = await bot.slack.submit(ADMIN, form, {"escalation_channel": "C0ESCALATE", "retention_days": "10"})
    assert answer.status == 200 and not answer.body, answer.body
    _card, number = await closed_escalation(bot, summary=SECRET_TEXT)
    with time_machine.travel(utcnow() + timedelta(days=11), tick=True):
        done = await bot.runtime.service.purge(retention_days=None, outbox_keep_days=7)  # off for the installation
    assert done.erased == 1 and (await row(bot, number))["summary"] == "(erased)"
    again = await command_form(bot, ADMIN, "config")
    assert block(again, "retention_days")["element"]["initial_value"] == "10"


@pytest.mark.parametrize("bot_overrides", [{"retention_days": 30}])
async def test_the_purge_waits_while_the_replica_is_answering_a_senior(bot: Bot) -> None:
    """Retention gives way to people: while the work behind a senior's Claim is in hand (Slack slow to
    take a reply), the purge's batches wait; the old escalation is erased once that work is done."""
    _card, old = await closed_escalation(bot, summary=SECRET_TEXT)
    card = await escalate(bot, summary="Checkout is down")
    scheduler = bot.runtime.scheduler
    assert scheduler is not None
    with time_machine.travel(utcnow() + timedelta(days=31), tick=True):
        bot.fake.fail_next(RESPONSE_URL, Fail(stall=0.5))  # Slack takes half a second to take the reply
        answer = await bot.slack.click(SENIORS[0], card, "claim")
        assert answer.status == 200 and bot.runtime.busy()  # acknowledged; the work behind it in hand
        await scheduler.purge()
        in_hand_after = bot.runtime.busy()
    assert (await row(bot, old))["summary"] == "(erased)"
    assert not in_hand_after, "the purge went ahead while the work behind the senior's click was in hand"
    assert bot.fake.replies_to(SENIORS[0])


@pytest.mark.parametrize("bot_overrides", [{"retention_days": 30}])
async def test_the_purge_waits_for_the_replica_to_be_quiet(bot: Bot) -> None:
    """Requests come in bursts: a purge that starts just after a senior's claim was answered waits
    until the replica has had no request for a moment before its first batch, so the next click of
    the burst does not meet a batch (batches run back to back in the gaps made every claim of the
    retention bench pay for one: p50 21 -> 29 ms)."""
    _card, old = await closed_escalation(bot, summary=SECRET_TEXT)
    card = await escalate(bot, summary="Checkout is down")
    scheduler = bot.runtime.scheduler
    assert scheduler is not None
    answer = await bot.slack.click(SENIORS[0], card, "claim")
    assert answer.status == 200
    while bot.runtime.busy():  # noqa: ASYNC110  (the work behind the click: the claim, the reply)
        await asyncio.sleep(0.005)
    assert bot.fake.replies_to(SENIORS[0]) and bot.runtime.idle_for() < QUIET_SECONDS
    with time_machine.travel(utcnow() + timedelta(days=31), tick=True):
        await scheduler.purge()
        quiet = bot.runtime.idle_for()
    assert (await row(bot, old))["summary"] == "(erased)"
    assert quiet >= QUIET_SECONDS, f"the purge began {quiet:.3f} s after the senior's claim was answered"


@pytest.mark.parametrize("bot_overrides", [{"retention_days": 30}])
async def test_a_replica_told_to_stop_does_not_wait_for_retention(bot: Bot) -> None:
    """Retention works through a backlog in the quiet moments between people's requests; a replica
    told to stop (SIGTERM) ends it before the next batch instead of waiting for a quiet moment and
    purging on, so its stop is not held up by a backlog: the rest is left for the next run."""
    _card, old = await closed_escalation(bot, summary=SECRET_TEXT)
    scheduler = Scheduler(bot.runtime.service, bot.runtime.settings, idle=lambda: 0.0)  # never quiet
    with time_machine.travel(utcnow() + timedelta(days=31), tick=True):
        purging = asyncio.create_task(scheduler.purge())
        await asyncio.sleep(0.2)  # waiting for a quiet moment
        scheduler.stop()
        more = await asyncio.wait_for(purging, timeout=1.5)  # not the 20 s a batch waits at most
    assert more, "the purge said it was done though it stopped before its batch"
    assert SECRET_TEXT in (await row(bot, old))["summary"]


@pytest.mark.parametrize("bot_overrides", [{"retention_days": 30}])
async def test_a_scheduler_cancelled_without_being_told_to_stop_takes_retention_with_it(bot: Bot) -> None:
    """A scheduler task cancelled outright (its owner went away without stop()) ends at once and
    leaves no retention task behind, waiting for a quiet moment and then erasing on its own."""
    _card, old = await closed_escalation(bot, summary=SECRET_TEXT)
    scheduler = Scheduler(bot.runtime.service, bot.runtime.settings, every_seconds=0.05, idle=lambda: 0.0)
    theirs = {t for t in asyncio.all_tasks() if t.get_name() == "retention"}  # the bot's own scheduler's
    with time_machine.travel(utcnow() + timedelta(days=31), tick=True):
        running = asyncio.create_task(scheduler.run())
        await asyncio.sleep(0.3)  # its retention task waits for a quiet moment (GIVE_WAY_SECONDS)
        running.cancel()
        done, _ = await asyncio.wait({running}, timeout=1.5)  # not the 20 s a batch waits at most
        left = [t for t in asyncio.all_tasks() - theirs if t.get_name() == "retention" and not t.done()]
        for task in left:
            task.cancel()
    assert done, "the cancelled scheduler waited for its retention task"
    assert not left, "the retention task outlived its scheduler"
    assert SECRET_TEXT in (await row(bot, old))["summary"]


async def test_a_replica_that_is_never_idle_still_purges(bot: Bot, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under steady traffic each batch waits a while at most (twice GIVE_WAY_SECONDS, shortened
    here so the test does not wait 20 s): the text still goes."""
    monkeypatch.setattr(retention, "GIVE_WAY_SECONDS", 0.2)
    _card, old = await closed_escalation(bot, summary=SECRET_TEXT)
    with time_machine.travel(utcnow() + timedelta(days=2), tick=True):
        done = await bot.runtime.service.purge(retention_days=1, outbox_keep_days=7, idle=lambda: 0.0)
    assert done.erased == 1 and (await row(bot, old))["summary"] == "(erased)"
