"""The report's facts kept on each escalation's row by the database (migration 0013's triggers) are
what its events say: after random histories of claims, lost claims, first actions and moves,
written through the bot's own event writer, the facts as of any moment equal those worked out here
from the events themselves, and equal what the migration computes for rows written before it.
SQLite and PostgreSQL."""

from __future__ import annotations

import importlib
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, text, update

from handoff.domain import Draft, Severity
from handoff.service import HandoffService
from storage import handoffs as q
from storage.db import Database
from storage.reports import fact_rows
from storage.tables import handoff_events, handoffs

FACTS = ("fact_first_claim_at", "fact_queue_claim_at", "fact_last_claim_at", "fact_acted_at",
         "fact_acted_claim_at", "fact_contested_at")  # fmt: skip
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


async def random_histories(db: Database, rng: random.Random, count: int) -> tuple[int, list[int]]:
    clock = Clock()
    service = HandoffService(db, clock=clock)
    ws = await service.workspace_id("slack", "T0FACTS")
    ids = []
    for i in range(count):
        clock.now = T0 + timedelta(minutes=7 * i)
        draft = Draft(summary=f"Escalation {i}", severity=Severity.P2, tried="restarts", customer="")
        ids.append((await service.escalate(ws, "U0JUNIOR", draft, key=f"k{i}")).handoff.id)
    async with db.write() as conn:
        for n, hid in enumerate(ids):
            at = T0 + timedelta(minutes=7 * n)
            for _ in range(rng.randrange(0, 7)):
                at += timedelta(seconds=rng.randrange(1, 900))
                kind = rng.choice(["claimed", "claimed", "claim_conflict", "first_action", "moved", "released"])
                if kind == "moved":  # as a move does: the queue's arrival time, and its event
                    await conn.execute(update(handoffs).where(handoffs.c.id == hid).values(queue_arrived_at=at))
                await q.add_event(conn, workspace_id=ws, handoff_id=hid, kind=kind, actor="U0SENIOR", at=at)
    return ws, ids


def from_events(created: datetime, arrived_at: datetime | None, events: list[Any], end: datetime) -> tuple[Any, ...]:
    """(to claim, to first action, contested) as of `end`, from the events: the report's definitions."""
    arrived = arrived_at if arrived_at is not None and arrived_at < end else created
    claims = [e.at for e in events if e.kind == "claimed" and e.at < end]
    first_claim = min((c for c in claims if c >= arrived), default=None)
    acted = min((e.at for e in events if e.kind == "first_action" and e.at < end), default=None)
    led = max((c for c in claims if acted is not None and c <= acted), default=None)
    contested = any(e.kind == "claim_conflict" and e.at < end for e in events)
    return (
        None if first_claim is None else (first_claim - arrived).total_seconds(),
        None if acted is None or led is None else (acted - led).total_seconds(),
        int(contested),
    )


async def test_the_facts_on_the_row_are_the_events_as_of_any_moment(db: Database) -> None:
    rng = random.Random(2026)
    ws, ids = await random_histories(db, rng, 60)
    async with db.read() as conn:
        rows = {r.id: r for r in (await conn.execute(select(handoffs).where(handoffs.c.id.in_(ids)))).all()}
        events = (await conn.execute(select(handoff_events).order_by(handoff_events.c.id))).all()
        start = T0 - timedelta(days=1)
        for end in (T0 + timedelta(minutes=m) for m in (5, 40, 130, 300, 480, 2000)):
            facts = await fact_rows(conn, ws, start, end)
            got = dict(zip(facts.id, zip(facts.to_claim, facts.to_action, facts.contested, strict=True), strict=True))
            for hid, row in rows.items():
                if row.created_at >= end:
                    assert hid not in got
                    continue
                want = from_events(
                    row.created_at, row.queue_arrived_at, [e for e in events if e.handoff_id == hid], end
                )
                have = got[hid]
                assert have[2] == want[2], (hid, end, have, want)
                for h, w in zip(have[:2], want[:2], strict=True):
                    assert (h is None) == (w is None) and (h is None or abs(h - w) < 0.01), (hid, end, have, want)


async def facts_of(conn: Any) -> dict[int, tuple[Any, ...]]:
    """Each row's facts; a first claim in the queue from before the queue's arrival means none (a
    trigger leaves it until the next claim, the migration writes none: the reports read both so)."""
    stmt = select(handoffs.c.id, handoffs.c.queue_arrived_at, *(handoffs.c[c] for c in FACTS))
    out = {}
    for hid, arrived, *values in (await conn.execute(stmt)).all():
        if values[1] is not None and arrived is not None and values[1] < arrived:
            values[1] = None
        out[hid] = tuple(values)
    return out


async def test_the_migration_fills_rows_written_before_it_as_the_triggers_keep_them(db: Database) -> None:
    rng = random.Random(7)
    _ws, ids = await random_histories(db, rng, 40)
    async with db.read() as conn:
        kept = await facts_of(conn)
    assert any(v[0] is not None for v in kept.values())  # the histories claimed something
    migration = importlib.import_module("storage.migrations.versions.0013_report_facts")
    async with db.write() as conn:
        await conn.execute(update(handoffs).values({c: None for c in FACTS}))  # as rows were before it
        await conn.execute(text(migration._fill(conn.dialect.name)), {"lo": 0, "hi": max(ids)})
    async with db.read() as conn:
        filled = await facts_of(conn)
    assert filled == kept
