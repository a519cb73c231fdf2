"""The engine and the storage underneath it, on SQLite and PostgreSQL, without any chat platform."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import event, select

from handoff.domain import (
    AlreadyYours,
    Closed,
    Conflict,
    Done,
    Draft,
    NotAllowed,
    NotFound,
    NotHolder,
    Severity,
    Won,
)
from handoff.service import HandoffService, utcnow
from storage import migrate, outbox
from storage.db import Database
from storage.tables import metadata
from storage.tables import outbox as outbox_table

DRAFT = Draft(summary="Checkout fails", severity=Severity.P2, tried="Retried the payment")


async def new_service(db: Database) -> tuple[HandoffService, int]:
    service = HandoffService(db)
    ws = await service.workspace_id("slack", "T0ONE")
    return service, ws


async def test_migrations_build_exactly_the_declared_schema(db: Database) -> None:
    assert await migrate.current_revision(db) == migrate.head_revision()
    async with db.read() as conn:
        diff = await conn.run_sync(
            lambda c: compare_metadata(
                MigrationContext.configure(c, opts={"include_object": migrate.include_object}), metadata
            )
        )
    assert diff == []
    await migrate.upgrade(db)  # a second upgrade is a no-op


async def test_escalate_is_idempotent_on_its_key_even_concurrently(db: Database) -> None:
    service, ws = await new_service(db)
    results = await asyncio.gather(*(service.escalate(ws, "U1", DRAFT, key="view-1") for _ in range(10)))
    assert len({r.handoff.id for r in results}) == 1
    assert sum(r.created for r in results) == 1
    # The id is not always 1 on PostgreSQL: a losing INSERT … ON CONFLICT DO NOTHING still takes a
    # value from the sequence, and it may take it before the winner does.
    h = results[0].handoff.id
    async with db.read() as conn:
        rows = (await conn.execute(select(outbox_table.c.dedupe_key))).scalars().all()
    assert sorted(rows) == [f"notify:{h}:created", f"post_card:{h}"]


async def test_numbers_are_unique_and_dense_per_workspace(db: Database) -> None:
    service, ws = await new_service(db)
    other = await service.workspace_id("slack", "T0TWO")
    results = await asyncio.gather(*(service.escalate(ws, "U1", DRAFT, key=f"k{i}") for i in range(20)))
    assert sorted(r.handoff.number for r in results) == list(range(1, 21))
    # A form submitted again is the same escalation and uses up no number.
    again = await service.escalate(ws, "U1", DRAFT, key="k3")
    assert not again.created and again.handoff.number == results[3].handoff.number
    assert (await service.escalate(ws, "U1", DRAFT, key="k20")).handoff.number == 21
    theirs = await service.escalate(other, "U1", DRAFT, key="k0")
    assert theirs.handoff.number == 1 and theirs.created


async def test_an_escalation_is_stored_with_its_event_and_messages_in_one_statement_on_postgresql(db: Database) -> None:
    service, ws = await new_service(db)
    quiet = await service.workspace_id("slack", "T0QUIET")
    await service.escalate(quiet, "U1", DRAFT, key="warm-up")  # the workspaces' queues are read once, then kept
    await service.escalate(ws, "U1", DRAFT, key="warm-up")
    await service.home_opened(ws, "U0LOOKER")  # someone in `ws` looks at their Home tab; nobody in `quiet`
    statements: list[str] = []
    event.listen(db.engine.sync_engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    made = await service.escalate(ws, "U1", DRAFT, key="one")
    if db.is_postgres:  # SQLite takes one writer at a time: its statements share a transaction instead
        assert len(statements) == 1, statements
    h = made.handoff
    assert made.created and h.number == 2 and h.summary == DRAFT.summary and h.version == 1
    assert [(e["kind"], e["actor"], e["data"]) for e in await service.events(ws, h.id)] == [
        ("created", "U1", {"severity": "P2"})
    ]
    again = await service.escalate(ws, "U1", DRAFT, key="one")
    assert not again.created and again.handoff.id == h.id
    quiet_one = (await service.escalate(quiet, "U2", DRAFT, key="one")).handoff

    async with db.read() as conn:
        rows = (await conn.execute(select(outbox_table).order_by(outbox_table.c.id))).mappings().all()
    mine = [(r["kind"], r["dedupe_key"], r["payload"], r["handoff_version"]) for r in rows if r["handoff_id"] == h.id]
    assert mine == [
        ("post_card", f"post_card:{h.id}", {}, 1),
        ("notify_requester", f"notify:{h.id}:created", {"what": "created", "actor": "U1"}, 1),
    ]
    homes = [r for r in rows if r["kind"] == "refresh_home"]
    # The Home tabs of those who looked are refreshed (once, a little later); nobody looked in `quiet`.
    assert [r["workspace_id"] for r in homes] == [ws] and homes[0]["next_attempt_at"] > h.created_at
    assert {r["dedupe_key"] for r in rows if r["handoff_id"] == quiet_one.id} == {
        f"post_card:{quiet_one.id}",
        f"notify:{quiet_one.id}:created",
    }


async def test_escalations_submitted_together_are_stored_together_numbered_in_the_order_they_came(
    db: Database,
) -> None:
    service, ws = await new_service(db)
    await service.escalate(ws, "U1", DRAFT, key="warm-up")
    statements: list[str] = []
    event.listen(db.engine.sync_engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    # Twenty submissions at once; the last five are forms submitted a second time (a double click).
    results = await asyncio.gather(
        *(service.escalate(ws, f"U{i}", replace(DRAFT, summary=f"#{i}"), key=f"k{i % 15}") for i in range(20))
    )
    assert [(r.created, r.handoff.number, r.handoff.summary) for r in results[:15]] == [
        (True, n, f"#{n - 2}") for n in range(2, 17)
    ]
    for again, first in zip(results[15:], results[:5], strict=True):
        assert not again.created and again.handoff.id == first.handoff.id
    # The first goes at once, those arriving meanwhile together: not a statement (or, on SQLite, a
    # write transaction) each.
    assert len([s for s in statements if "INSERT INTO handoffs" in s]) <= 3, len(statements)
    async with db.read() as conn:
        keys = (await conn.execute(select(outbox_table.c.dedupe_key))).scalars().all()
    assert len([k for k in keys if k.startswith("post_card:")]) == 16  # one card each, the warm-up's too


async def test_claim_outcomes(db: Database) -> None:
    service, ws = await new_service(db)
    h = (await service.escalate(ws, "UREQ", DRAFT, key="a")).handoff
    assert isinstance(await service.claim(ws, h.id, "UREQ"), NotAllowed)
    assert isinstance(await service.claim(ws, h.id, "UOUT", may_claim=False), NotAllowed)
    won = await service.claim(ws, h.id, "UANA")
    assert isinstance(won, Won) and won.handoff.version == 2
    assert isinstance(await service.claim(ws, h.id, "UANA"), AlreadyYours)
    lost = await service.claim(ws, h.id, "UBEN")
    assert isinstance(lost, Conflict) and lost.winner == "UANA" and lost.claimed_at == won.handoff.claimed_at
    assert isinstance(await service.claim(ws, 9999, "UBEN"), NotFound)
    assert isinstance(await service.resolve(ws, h.id, "UANA", "done"), Done)
    assert isinstance(await service.claim(ws, h.id, "UBEN"), Closed)


async def test_claims_from_separate_connection_pools_have_one_winner(db: Database) -> None:
    # Three engines on one database stand in for three processes: no shared memory, no lock but the row.
    service, ws = await new_service(db)
    h = (await service.escalate(ws, "UREQ", DRAFT, key="race")).handoff
    others = [Database(db.url) for _ in range(3)]
    try:
        services = [HandoffService(d) for d in others]
        outcomes = await asyncio.gather(*(services[i % 3].claim(ws, h.id, f"USENIOR{i}") for i in range(30)))
    finally:
        for d in others:
            await d.dispose()
    winners = [o for o in outcomes if isinstance(o, Won)]
    assert len(winners) == 1
    conflicts = [o for o in outcomes if isinstance(o, Conflict)]
    assert len(conflicts) == 29 and {c.winner for c in conflicts} == {winners[0].handoff.claimed_by}


async def test_clicks_that_arrive_together_are_decided_in_arrival_order_in_one_transaction_per_card(
    db: Database,
) -> None:
    service, ws = await new_service(db)
    first = (await service.escalate(ws, "UREQ", DRAFT, key="one")).handoff
    second = (await service.escalate(ws, "UREQ", DRAFT, key="two")).handoff
    statements: list[str] = []
    event.listen(db.engine.sync_engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    # All in one turn of the loop, as a storm arrives: each click is still answered on its own terms.
    outcomes = await asyncio.gather(
        service.claim(ws, first.id, "UREQ"),  # their own escalation
        service.claim(ws, first.id, "UBEN", may_claim=False),  # not a senior
        service.claim(ws, first.id, "UANA"),  # the first senior: wins
        service.claim(ws, second.id, "UCAT"),  # another card, decided apart
        *(service.claim(ws, first.id, f"USENIOR{i}") for i in range(20)),  # told Ana has it
        service.claim(ws, first.id, "UANA"),  # Ana again
        service.claim(ws, second.id, "UDAN"),
        service.claim(ws, 9999, "UEVE"),  # no such escalation
    )
    own, not_senior, ana, cat, *told, ana_again, dan, missing = outcomes
    assert isinstance(own, NotAllowed) and own.reason == "own"
    assert isinstance(not_senior, NotAllowed) and not_senior.reason == "not_senior"
    assert isinstance(ana, Won) and ana.handoff.claimed_by == "UANA"
    assert isinstance(cat, Won) and cat.handoff.claimed_by == "UCAT"
    assert all(isinstance(t, Conflict) and t.winner == "UANA" for t in told)
    assert isinstance(ana_again, AlreadyYours)
    assert isinstance(dan, Conflict) and dan.winner == "UCAT"
    assert isinstance(missing, NotFound)
    # Each losing click is kept for the weekly figures, naming the winner.
    conflicts = [e for e in await service.events(ws, first.id) if e["kind"] == "claim_conflict"]
    assert sorted(e["actor"] for e in conflicts) == sorted(f"USENIOR{i}" for i in range(20))
    assert {e["data"]["winner"] for e in conflicts} == {"UANA"}
    # Twenty-two losing clicks cost no claim statement each: the card was known to be Ana's.
    claim_statements = [s for s in statements if s.lstrip().upper().startswith("UPDATE HANDOFFS SET STATUS")]
    assert len(claim_statements) <= 6, claim_statements


async def test_release_and_resolve_are_compare_and_set(db: Database) -> None:
    service, ws = await new_service(db)
    h = (await service.escalate(ws, "UREQ", DRAFT, key="a")).handoff
    assert isinstance(await service.release(ws, h.id, "UANA"), NotHolder)  # nobody holds it
    await service.claim(ws, h.id, "UANA")
    assert isinstance(await service.release(ws, h.id, "UBEN"), NotHolder)
    assert isinstance(await service.resolve(ws, h.id, "UBEN", "x"), NotHolder)
    assert isinstance(await service.release(ws, h.id, "UANA"), Done)
    await service.claim(ws, h.id, "UBEN")
    # Ana's stale clicks from when she held it change nothing.
    stale_release = await service.release(ws, h.id, "UANA")
    assert isinstance(stale_release, NotHolder) and stale_release.handoff.claimed_by == "UBEN"
    assert isinstance(await service.resolve(ws, h.id, "UANA", "x"), NotHolder)
    done = await service.resolve(ws, h.id, "UBEN", "fixed")
    assert isinstance(done, Done) and done.handoff.resolution == "fixed"
    assert isinstance(await service.release(ws, h.id, "UBEN"), Closed)
    assert isinstance(await service.resolve(ws, h.id, "UBEN", "again"), Closed)
    current = await service.get(ws, h.id)
    assert current is not None and current.resolution == "fixed" and current.status == "resolved"


async def test_resolve_sets_first_action_once(db: Database) -> None:
    service, ws = await new_service(db)
    h = (await service.escalate(ws, "UREQ", DRAFT, key="a")).handoff
    await service.claim(ws, h.id, "UANA")
    done = await service.resolve(ws, h.id, "UANA", "fixed")
    assert isinstance(done, Done) and done.handoff.first_action_at == done.handoff.resolved_at
    kinds = [e["kind"] for e in await service.events(ws, h.id)]
    assert kinds.count("first_action") == 1


async def test_tenant_walls_in_the_service(db: Database) -> None:
    service, ws = await new_service(db)
    other = await service.workspace_id("slack", "T0EVIL")
    h = (await service.escalate(ws, "UREQ", DRAFT, key="a")).handoff
    assert await service.get(other, h.id) is None
    assert isinstance(await service.claim(other, h.id, "UMALLORY"), NotFound)
    await service.claim(ws, h.id, "UANA")
    assert isinstance(await service.release(other, h.id, "UANA"), NotFound)
    assert isinstance(await service.resolve(other, h.id, "UANA", "x"), NotFound)
    current = await service.get(ws, h.id)
    assert current is not None and current.claimed_by == "UANA" and current.status == "claimed"


async def test_each_change_writes_its_event_and_outbox_rows_together(db: Database) -> None:
    service, ws = await new_service(db)
    woken: list[int] = []
    service.set_on_commit(lambda: woken.append(1))
    h = (await service.escalate(ws, "UREQ", DRAFT, key="a")).handoff
    await service.claim(ws, h.id, "UANA")
    await service.claim(ws, h.id, "UBEN")  # a conflict: an event, but nothing to send
    async with db.read() as conn:
        keys = (await conn.execute(select(outbox_table.c.dedupe_key).order_by(outbox_table.c.id))).scalars().all()
    assert keys == ["post_card:1", "notify:1:created", "update_card:1:2", "notify:1:claimed:2", "note:1:claimed:2"]
    assert len(woken) == 2
    kinds = [e["kind"] for e in await service.events(ws, h.id)]
    assert kinds == ["created", "claimed", "claim_conflict"]


async def test_outbox_lease_is_exclusive_expires_and_keeps_lanes_in_order(db: Database) -> None:
    service, ws = await new_service(db)
    h = (await service.escalate(ws, "UREQ", DRAFT, key="a")).handoff
    now = utcnow()
    lease = timedelta(seconds=30)
    async with db.write() as conn:
        first = await outbox.lease(conn, owner="A", now=now, lease_for=lease, limit=10)
    # The card first: nothing else about the handoff goes before it is posted.
    assert [i.kind for i in first] == ["post_card"]
    async with db.write() as conn:
        assert await outbox.lease(conn, owner="B", now=now, lease_for=lease, limit=10) == []
    # A dies; after its lease runs out, B takes the row, and A can no longer complete it.
    later = now + timedelta(seconds=31)
    async with db.write() as conn:
        taken = await outbox.lease(conn, owner="B", now=later, lease_for=lease, limit=10)
    assert [i.id for i in taken] == [first[0].id] and taken[0].attempts == 2
    async with db.write() as conn:
        assert not await outbox.complete(conn, first[0].id, "A", later)
        assert await outbox.complete(conn, first[0].id, "B", later)
    await service.card_posted(ws, h.id, channel="C1", ref="1.1", url=None)
    await service.claim(ws, h.id, "UANA")
    await service.release(ws, h.id, "UANA")
    async with db.write() as conn:
        batch = await outbox.lease(conn, owner="B", now=later, lease_for=lease, limit=10)
    # One row per (handoff, kind) lane: the requester's "created" goes before "claimed" and "released".
    assert sorted(i.dedupe_key for i in batch) == ["note:1:claimed:2", "notify:1:created", "update_card:1:2"]


async def test_parallel_leases_never_share_a_row(db: Database) -> None:
    service, ws = await new_service(db)
    for i in range(40):
        await service.escalate(ws, "UREQ", DRAFT, key=f"k{i}")
    engines = [Database(db.url) for _ in range(4)]
    try:

        async def take(d: Database, owner: str) -> list[int]:
            async with d.write() as conn:
                items = await outbox.lease(conn, owner=owner, now=utcnow(), lease_for=timedelta(seconds=30), limit=15)
            return [i.id for i in items]

        batches = await asyncio.gather(*(take(d, f"w{n}") for n, d in enumerate(engines)))
    finally:
        for d in engines:
            await d.dispose()
    ids = [i for b in batches for i in b]
    assert len(ids) == len(set(ids)) == 40  # every post_card once; "created" notes wait for their cards


async def test_sqlite_runs_in_wal_with_a_busy_timeout_and_foreign_keys(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError

    db = Database(f"sqlite:///{tmp_path / 'x.db'}")  # the plain URL operators type is accepted too
    try:
        await migrate.upgrade(db)
        async with db.read() as conn:
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
            assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1
            assert (await conn.execute(text("PRAGMA busy_timeout"))).scalar() >= 5000
        try:
            async with db.write() as conn:
                await outbox.enqueue(conn, workspace_id=999, kind="post_card", dedupe_key="x", now=utcnow())
        except IntegrityError:
            pass
        else:
            raise AssertionError("a row for a missing workspace was accepted")
    finally:
        await db.dispose()


async def test_a_write_that_fails_half_way_leaves_nothing_behind(db: Database) -> None:
    """Writes are real transactions (on PostgreSQL connections otherwise rest in autocommit)."""
    from storage.tables import workspaces

    with pytest.raises(RuntimeError):
        async with db.write() as conn:
            await conn.execute(workspaces.insert().values(platform="slack", external_id="T0HALF", created_at=utcnow()))
            raise RuntimeError("the second statement failed")
    async with db.read() as conn:
        assert await conn.scalar(select(workspaces.c.id).where(workspaces.c.external_id == "T0HALF")) is None


async def test_a_card_posted_is_recorded_once_with_its_event_and_wakes_what_waited(db: Database) -> None:
    service, ws = await new_service(db)
    h = (await service.escalate(ws, "U0JUNIOR", DRAFT, key="posted-once")).handoff
    later = utcnow() + timedelta(hours=1)
    async with db.write() as conn:  # the requester's DM, waiting for the card (as the worker leaves it)
        await conn.execute(
            outbox_table.update()
            .where(outbox_table.c.handoff_id == h.id, outbox_table.c.kind == "notify_requester")
            .values(next_attempt_at=later, last_error=outbox.WAITING + "the card is not posted yet")
        )
    statements: list[str] = []
    event.listen(db.engine.sync_engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    similar = [{"id": 7, "number": 7, "summary": "Checkout failed before"}]
    assert await service.card_posted(ws, h.id, channel="C1", ref="1.1", url="https://x/1", similar=similar)
    if db.is_postgres:
        assert len(statements) == 1  # one round trip: place, event and wake-up together
    assert not await service.card_posted(ws, h.id, channel="C2", ref="2.2", url=None)  # a second post moves nothing
    stored = await service.get(ws, h.id)
    assert stored is not None and (stored.card_channel, stored.card_ref, stored.similar) == ("C1", "1.1", similar)
    assert [e["kind"] for e in await service.events(ws, h.id)].count("posted") == 1
    async with db.read() as conn:
        due = (
            await conn.execute(
                select(outbox_table.c.next_attempt_at).where(
                    outbox_table.c.handoff_id == h.id, outbox_table.c.kind == "notify_requester"
                )
            )
        ).scalar_one()
    assert due < later - timedelta(minutes=30)  # woken: due now, not in an hour
