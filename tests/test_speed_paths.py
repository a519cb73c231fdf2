"""What the speed work (issue 12) changed, shown as behaviour: SQLite statements run on the event
loop except what can wait, which never holds the loop; writes that people are waiting to see go
first; replies to clicks share connections; the event loop's lag is measured."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import make_url

from bot.sandbox.simulator import button_value
from handoff.domain import Draft, Severity
from handoff.service import HandoffService
from handoff.ttl import TtlCache
from storage import db as storage_db
from storage import handoffs as handoffs_store
from storage import sqlite_inline
from storage.db import Database, WriteTurn
from storage.grouped import Grouped
from tests.conftest import ESC_CHANNEL, SENIORS, Bot
from tests.helpers import FORM, escalate, open_form


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> Database:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'speed.db'}")
    async with db.write() as conn:
        await conn.execute(text("CREATE TABLE scratch (id INTEGER PRIMARY KEY, body TEXT)"))
    yield db
    await db.dispose()


async def _thread_of(db: Database, *, heavy: bool) -> int:
    async with db.read(heavy=heavy) as conn:
        raw = await conn.get_raw_connection()
        raw.driver_connection._conn.create_function("thread_id", 0, threading.get_ident)
        return int((await conn.execute(text("SELECT thread_id()"))).scalar_one())


async def test_quick_sqlite_reads_run_on_the_loop_and_heavy_ones_on_the_driver_thread(sqlite_db: Database) -> None:
    here = threading.get_ident()
    assert await _thread_of(sqlite_db, heavy=False) == here  # no thread hop for a lookup by key
    assert await _thread_of(sqlite_db, heavy=True) != here  # a search or a report never holds the loop
    assert await _thread_of(sqlite_db, heavy=False) == here  # and the connection goes back to quick


async def test_a_quick_sqlite_write_is_done_within_its_turn_of_the_loop(
    sqlite_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # In a storm every turn of the loop carries a hundred requests, tens of milliseconds: a claim's
    # transaction that waits for turns (SQLAlchemy closes a connection in a task of its own, two
    # turns) makes the card's change wait for them. Count the turns a write block takes.
    # Every 100th commit of the process checkpoints the WAL on the driver's thread, on purpose (see
    # the tests below); the count starts afresh so that none of these five is one.
    monkeypatch.setattr(sqlite_inline._SinceCheckpoint, "commits", 0)
    monkeypatch.setattr(sqlite_inline._SinceCheckpoint, "rows", 0)
    turns = 0

    async def count_turns() -> None:
        nonlocal turns
        while True:
            await asyncio.sleep(0)
            turns += 1

    counter = asyncio.create_task(count_turns())
    await asyncio.sleep(0)
    try:
        before = turns
        for i in range(5):
            async with sqlite_db.write() as conn:
                await conn.execute(text("INSERT INTO scratch (body) VALUES (:b)"), {"b": f"row {i}"})
            async with sqlite_db.read() as conn:
                await conn.execute(text("SELECT count(*) FROM scratch"))
        assert turns == before, f"ten blocks took {turns - before} turns of the loop"
    finally:
        counter.cancel()


async def test_a_write_waiting_for_another_process_does_not_hold_the_event_loop(sqlite_db: Database) -> None:
    path = make_url(sqlite_db.url).database or ""
    locked, release = threading.Event(), threading.Event()

    def other_process_writes() -> None:  # another process (a CLI command, say) holds the write lock
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        locked.set()
        release.wait(5)
        conn.execute("ROLLBACK")
        conn.close()

    holder = threading.Thread(target=other_process_writes)
    holder.start()
    await asyncio.to_thread(locked.wait, 5)

    async def write() -> float:
        async with sqlite_db.write() as conn:
            await conn.execute(text("INSERT INTO scratch (body) VALUES ('after the lock')"))
        return time.monotonic()

    writing = asyncio.create_task(write())
    # The loop keeps running while the write waits for the lock: other work goes on, reads included.
    # (Were the wait on the loop, nothing below would run until the other process gave up its lock.)
    for _ in range(10):
        await asyncio.sleep(0.05)
        async with sqlite_db.read() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM scratch"))).scalar_one() == 0
    assert not writing.done()
    released = time.monotonic()
    release.set()
    done = await asyncio.wait_for(writing, 5)
    holder.join()
    assert done >= released  # it waited for the lock, then went through
    async with sqlite_db.read() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM scratch"))).scalar_one() == 1


async def _wal_bytes(db: Database) -> int:
    """The size of the database's write-ahead log file."""
    return await asyncio.to_thread(os.path.getsize, (make_url(db.url).database or "") + "-wal")


async def test_the_wal_is_checkpointed_off_the_loop_so_it_stays_small(sqlite_db: Database) -> None:
    body = "x" * 3000  # about a page a transaction: 1000 of them are 4 MB of WAL if nothing checkpoints
    for _ in range(1000):
        async with sqlite_db.write() as conn:
            await conn.execute(text("INSERT INTO scratch (body) VALUES (:b)"), {"b": body})
    wal = await _wal_bytes(sqlite_db)
    per_checkpoint = sqlite_inline.CHECKPOINT_EVERY * 2 * 4096
    assert wal <= 2 * per_checkpoint, wal
    async with sqlite_db.read() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM scratch"))).scalar_one() == 1000


async def test_big_transactions_checkpoint_sooner_so_the_wal_stays_small(
    sqlite_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A hundred transactions of 50 rows each (retention's batches are of this kind): 5,000 pages of
    # WAL, 20 MB, if only every 100th commit checkpoints. CHECKPOINT_ROWS is lowered so the test
    # writes little: with it, a checkpoint every 4 transactions.
    monkeypatch.setattr(sqlite_inline, "CHECKPOINT_ROWS", 200)
    body = "x" * 3000  # about a page a row
    for _ in range(100):
        async with sqlite_db.write() as conn:
            await conn.execute(text("INSERT INTO scratch (body) VALUES (:b)"), [{"b": body}] * 50)
    wal = await _wal_bytes(sqlite_db)
    assert wal <= 2 * 200 * 2 * 4096, f"{wal / 2**20:.1f} MB of WAL"
    async with sqlite_db.read() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM scratch"))).scalar_one() == 5000


async def test_a_burst_of_writes_does_not_leave_its_wal_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SQLite reuses its WAL file instead of shrinking it: a 20 MB transaction (a purge's burst under a
    # long read, at scale a gigabyte) would keep 20 MB on disk for good. The limit is lowered to 1 MB here.
    monkeypatch.setattr(storage_db, "SQLITE_WAL_KEPT_BYTES", 2**20)
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'burst.db'}")
    try:
        async with db.write() as conn:
            await conn.execute(text("CREATE TABLE scratch (id INTEGER PRIMARY KEY, body TEXT)"))
            await conn.execute(text("INSERT INTO scratch (body) VALUES (:b)"), [{"b": "x" * 3000}] * 5000)
        peak = await _wal_bytes(db)
        for i in range(3):  # the bot's next writes: the checkpoint has emptied the WAL, the next one restarts it
            async with db.write() as conn:
                await conn.execute(text("INSERT INTO scratch (body) VALUES (:b)"), {"b": f"row {i}"})
        after = await _wal_bytes(db)
        assert peak > 15 * 2**20 and after <= 2**20, f"WAL {peak / 2**20:.1f} MB, then {after / 2**20:.1f} MB"
        async with db.read() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM scratch"))).scalar_one() == 5003
    finally:
        await db.dispose()


async def test_an_urgent_writer_goes_before_those_waiting_but_not_before_the_one_writing() -> None:
    turn = WriteTurn()
    order: list[str] = []
    await turn.acquire()  # someone is writing

    async def writer(name: str, urgent: bool) -> None:
        await turn.acquire(urgent=urgent)
        order.append(name)
        turn.release()

    waiting = [asyncio.create_task(writer(f"click {i}", False)) for i in range(3)]
    await asyncio.sleep(0)
    urgent = asyncio.create_task(writer("card update", True))
    await asyncio.sleep(0)
    cancelled = asyncio.create_task(writer("gave up", False))
    await asyncio.sleep(0)
    cancelled.cancel()
    assert order == []
    turn.release()
    await asyncio.gather(*waiting, urgent)
    assert order == ["card update", "click 0", "click 1", "click 2"]
    await asyncio.wait_for(turn.acquire(), 1)  # the cancelled waiter did not keep the turn


async def test_replies_to_many_clicks_share_connections(bot: Bot) -> None:
    card = await escalate(bot)
    value = button_value(card, "claim")

    async def storm(seniors: list[str]) -> list:
        answers = await asyncio.gather(*(bot.slack.click(s, card, "claim", value=value) for s in seniors))
        assert all(a.status == 200 for a in answers)
        await bot.fake.wait_for(lambda: len([r for r in bot.fake.replies if r.user in seniors]) >= len(seniors))
        return [r for r in bot.fake.replies if r.user in seniors]

    # Two storms, one after the other. Replies told at once each need a connection of their own; the
    # second storm's go out on the first's, kept alive. Bolt's own respond() opens a session, so a
    # connection, per reply and closes it: no peer would come back.
    first, second = await storm(SENIORS[:6]), await storm(SENIORS[6:12])
    assert sum(r.text.startswith("You claimed") for r in first + second) == 1
    assert {r.peer for r in second} & {r.peer for r in first}, ([r.peer for r in first], [r.peer for r in second])


async def test_metrics_show_the_event_loop_lag(bot: Bot) -> None:
    view = await open_form(bot)
    await bot.slack.submit("U0JUNIOR", view, FORM)
    await bot.fake.wait_for(lambda: bot.fake.channel_messages(ESC_CHANNEL))

    async def lag_samples() -> float:
        async with aiohttp.ClientSession() as s, s.get(bot.url + "/metrics") as r:
            body = await r.text()
        lag = "escalation_bot_event_loop_lag_seconds_count"
        count = next(line for line in body.splitlines() if line.startswith(lag))
        return float(count.split()[-1])

    # The watch samples the loop as it runs: wait for the count to grow (polled, not slept for).
    samples = 0.0
    for _ in range(200):
        if (samples := await lag_samples()) >= 2:
            break
        await asyncio.sleep(0.05)
    assert samples >= 2


async def test_writes_made_at_once_are_grouped_and_each_caller_waits_for_its_own() -> None:
    written: list[list[int]] = []

    async def write(items: list[int]) -> None:
        await asyncio.sleep(0.01)  # a transaction takes a while; more callers arrive meanwhile
        if 13 in items:
            raise RuntimeError("the database said no")
        written.append(items)

    grouped: Grouped[int] = Grouped(write)

    async def caller(i: int) -> int:
        await asyncio.sleep(0.001 * (i % 5))
        await grouped.add(i)
        assert any(i in group for group in written)  # back only once its own item is stored
        return i

    results = await asyncio.gather(*(caller(i) for i in range(60)), return_exceptions=True)
    failed = [i for i, r in enumerate(results) if isinstance(r, RuntimeError)]
    assert 13 in failed and set(failed) == {i for i in range(60) if not any(i in g for g in written)}
    assert sorted(i for g in written for i in g) == [i for i in range(60) if i not in failed]
    assert len(written) + 1 < 10  # sixty writes, a handful of transactions


async def test_handoffs_asked_for_together_are_read_in_one_statement_within_each_workspace(db: Database) -> None:
    # The delivery worker reads the escalation of every row one lease handed it: one statement for
    # all, each caller its own answer, and a handoff asked for under another workspace is not found.
    service = HandoffService(db)
    a = await service.workspace_id("slack", "T0A")
    b = await service.workspace_id("slack", "T0B")
    drafts = [Draft(summary=f"Problem {i}", severity=Severity.P3, tried="x") for i in range(4)]
    made = [
        (await service.escalate(ws, "UJUNIOR", drafts[i], key=f"k{i}")).handoff for i, ws in enumerate([a, a, b, a])
    ]
    statements: list[str] = []
    event.listen(db.engine.sync_engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    wanted = [(h.workspace_id, h.id) for h in made] + [(a, made[2].id), (a, 999_999)]
    got = await asyncio.gather(*(service.get_together(ws, h) for ws, h in wanted))
    assert [h.summary if h else None for h in got] == ["Problem 0", "Problem 1", "Problem 2", "Problem 3", None, None]
    assert len([s for s in statements if "FROM handoffs" in s]) == 1


async def test_card_links_are_built_from_the_workspace_address_asked_for_once(bot: Bot) -> None:
    asked: list[int] = []
    for i in range(3):
        card = await escalate(bot, user=f"U0JUNIOR{i}")
        dm = await bot.fake.wait_for(lambda i=i: bot.fake.dms_to(f"U0JUNIOR{i}"))
        # The link Slack's chat.getPermalink would give (the fake answers it as Slack documents it).
        assert f"<{bot.fake.permalink_of(ESC_CHANNEL, card.ts)}|" in dm[-1].text, dm[-1].text
        asked.append(len(bot.fake.calls_to("auth.test")))
    assert asked[0] == asked[-1]  # the address is not asked for again (Bolt's own auth.test included)
    assert bot.fake.calls_to("chat.getPermalink") == []


async def test_a_burst_of_escalations_reads_the_queues_and_settings_once(bot: Bot) -> None:
    # The bot keeps the workspace's queues and settings for a few seconds. When they are not in hand (a
    # fresh replica, or they just ran out) and twenty juniors submit at once, one read serves them all:
    # with three replicas under load, a read per waiting request was ~100 reads every five seconds.
    statements: list[str] = []
    event.listen(bot.runtime.db.engine.sync_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    view = await open_form(bot)
    ws = await bot.workspace_id()
    # As when they run out (QUEUES_TTL, CONFIG_TTL), without waiting five seconds.
    bot.runtime.service._queues.clear()
    (await bot.runtime.worker.deliverer_for(ws)).workspaces._configs.clear()  # type: ignore[attr-defined]
    reads_before = list(statements)
    answers = await asyncio.gather(
        *(
            bot.slack.submit(f"U0JUNIOR{i:02d}", {**view, "id": f"V0BURST{i:02d}"}, {**FORM, "summary": f"Problem {i}"})
            for i in range(20)
        )
    )
    assert all(a.status == 200 and not a.body for a in answers), [a.body for a in answers]
    # Every card's first try (Slack posts one message a second to a channel: the rest are refused for now).
    await bot.fake.wait_for(lambda: len(bot.fake.calls_to("chat.postMessage")) >= 20)
    burst = statements[len(reads_before) :]
    assert len([s for s in burst if "FROM queues" in s]) == 1, burst
    assert len([s for s in burst if "FROM workspaces" in s]) == 1, burst


async def test_kept_values_are_read_again_after_a_change_here_and_after_a_failed_read() -> None:
    cache: TtlCache[str, str] = TtlCache(ttl=60)
    stored = {"queues": "before"}
    reads: list[str] = []
    gates: list[asyncio.Event] = []
    started: asyncio.Queue[None] = asyncio.Queue()

    async def read() -> str:
        value = stored["queues"]
        reads.append(value)
        gates.append(gate := asyncio.Event())
        started.put_nowait(None)
        await gate.wait()
        if value == "broken":
            raise ConnectionError("the database went away")
        return value

    async def reading(n: int) -> None:
        await started.get()
        assert len(reads) == n

    # A read under way when a change is made here: whoever asks after the change reads again and sees
    # it, and the older read, finishing last, does not put the old value back for the next minute.
    early = asyncio.create_task(cache.get("ws", read))
    await reading(1)
    stored["queues"] = "after"
    cache.forget("ws")
    late = asyncio.create_task(cache.get("ws", read))
    await reading(2)
    gates[1].set()
    assert await late == "after"
    gates[0].set()
    assert await early == "before"
    assert await cache.get("ws", read) == "after" and reads == ["before", "after"]

    # A read that fails fails for everyone waiting on it, once, and is not kept: the next caller reads.
    cache.forget("ws")
    stored["queues"] = "broken"
    waiting = [asyncio.create_task(cache.get("ws", read)) for _ in range(5)]
    await reading(3)
    await asyncio.sleep(0)
    gates[2].set()
    failed = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(f, ConnectionError) for f in failed) and reads.count("broken") == 1
    stored["queues"] = "mended"
    gates.clear()
    mended = asyncio.create_task(cache.get("ws", read))
    await reading(4)
    gates[0].set()
    assert await mended == "mended"


async def test_escalations_stored_on_a_new_postgresql_connection_ask_the_server_nothing_about_types(
    db: Database,
) -> None:
    # asyncpg asks the server what an integer[] or timestamptz[] parameter is (a query PostgreSQL
    # spends ~5 ms planning) on every connection where such a statement is first prepared: a replica
    # has up to DATABASE_POOL_SIZE of them. The escalations go in as text[], which it knows.
    if not db.is_postgres:
        pytest.skip("asyncpg's type introspection: PostgreSQL only")
    service = HandoffService(db)
    ws = await service.workspace_id("slack", "T0A")
    await db.engine.dispose()  # every connection from here on is new
    asked: list[str] = []
    event.listen(
        db.engine.sync_engine,
        "connect",
        lambda conn, _record: conn.driver_connection.add_query_logger(lambda q: asked.append(q.query)),
    )
    drafts = [Draft(summary=f"Problem {i}", severity=Severity.P3, tried="x") for i in range(6)]
    made = await asyncio.gather(*(service.escalate(ws, "UJUNIOR", d, key=f"k{i}") for i, d in enumerate(drafts)))
    assert sorted(m.handoff.number for m in made) == [1, 2, 3, 4, 5, 6]
    assert [q for q in asked if "typeinfo" in q] == []


async def test_handoffs_read_together_are_one_statement_whatever_their_number_on_postgresql(db: Database) -> None:
    # The delivery worker reads as many handoffs as a lease gave it, a different number each time. As
    # `IN (…)` each number was a statement of its own, prepared (a round trip more) and planned afresh
    # on every connection; as `= ANY(array)` it is one.
    if not db.is_postgres:
        pytest.skip("SQLite prepares nothing across calls: IN (…) costs it nothing more")
    service = HandoffService(db)
    ws = await service.workspace_id("slack", "T0A")
    made = [
        (await service.escalate(ws, "UJUNIOR", Draft(summary=f"P{i}", severity=Severity.P3, tried="x"), key=f"k{i}"))
        for i in range(6)
    ]
    ids = [m.handoff.id for m in made]
    statements: list[str] = []
    event.listen(db.engine.sync_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    for n in (1, 2, 5, 6):
        async with db.read() as conn:
            found = await handoffs_store.get_many(conn, [(ws, h) for h in ids[:n]] + [(ws + 1, ids[-1])])
        assert sorted(h for _, h in found) == sorted(ids[:n])  # another workspace's pair is not found
    assert len(statements) == 4 and len(set(statements)) == 1, statements


async def test_cards_that_went_out_together_are_recorded_together_each_in_its_own_place(db: Database) -> None:
    # The delivery worker posts many cards at once; each is recorded once (where it went, its
    # `posted` event, the requester's note released), and on PostgreSQL in one statement for all.
    service = HandoffService(db)
    ws = await service.workspace_id("slack", "T0A")
    other = await service.workspace_id("slack", "T0B")
    made = [
        (await service.escalate(w, "UJUNIOR", Draft(summary=f"P{i}", severity=Severity.P3, tried="x"), key=f"k{i}"))
        for i, w in enumerate([ws, ws, other, ws, other])
    ]
    statements: list[str] = []
    event.listen(db.engine.sync_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    recorded = await asyncio.gather(
        *(
            service.card_posted(m.handoff.workspace_id, m.handoff.id, channel="C0ESC", ref=f"1.{i}", url=None)
            for i, m in enumerate(made)
        ),
        # A button from another workspace naming this handoff records nothing (tenant walls).
        service.card_posted(other, made[0].handoff.id, channel="C0ESC", ref="9.9", url=None),
    )
    assert recorded == [True] * 5 + [False]
    for i, m in enumerate(made):
        h = await service.get(m.handoff.workspace_id, m.handoff.id)
        assert h is not None and h.card_ref == f"1.{i}"
        events = [e["kind"] for e in await service.events(m.handoff.workspace_id, m.handoff.id)]
        assert events.count("posted") == 1
    if db.is_postgres:
        assert len([s for s in statements if "UPDATE handoffs" in s]) == 1
    # A second post of a card never moves it.
    again = await service.card_posted(ws, made[0].handoff.id, channel="C0ESC", ref="2.0", url=None)
    assert again is False and (await service.get(ws, made[0].handoff.id)).card_ref == "1.0"  # type: ignore[union-attr]
