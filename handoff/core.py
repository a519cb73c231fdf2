"""What every part of the engine shares: the database, the clock, the wake-up after a commit,
workspaces and the directory, reading a handoff, and the messages every change queues.

Each change is one write transaction holding the compare-and-set, its audit event and the outbox
rows for the messages it causes. When that transaction commits, `on_commit` wakes the delivery
worker so the messages go out at once.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from handoff.domain import (
    Handoff,
    Outbound,
    Queue,
)
from handoff.ttl import TtlCache
from storage import directory, outbox
from storage import handoffs as q
from storage import queues as qs
from storage.db import Database
from storage.grouped import Batched


def utcnow() -> datetime:
    return datetime.now(UTC)


SIMILAR_BUDGET_SECONDS = 2.0
QUEUES_TTL = 5.0
# Home tabs are refreshed at most once per this many seconds per workspace, for everyone who
# looked at theirs within HOME_VIEWERS_WITHIN: a burst of changes is one refresh.
HOME_REFRESH_SECONDS = 2
HOME_VIEWERS_WITHIN = timedelta(hours=1)
HOME_VIEWERS_MAX = 100


@dataclass(frozen=True)
class HomeView:
    """What one person's App Home shows."""

    open: list[Handoff]
    open_total: int
    mine: list[Handoff]
    claims: list[Handoff]


def home_refresh_row(workspace_id: int, now: datetime) -> dict[str, Any]:
    bucket = int(now.timestamp()) // HOME_REFRESH_SECONDS
    return {
        "workspace_id": workspace_id,
        "kind": Outbound.REFRESH_HOME,
        "dedupe_key": f"home:{workspace_id}:{bucket}",
        "due": datetime.fromtimestamp((bucket + 1) * HOME_REFRESH_SECONDS, UTC),
    }


def moved_card_row(
    common: dict[str, Any], moves: int, said: dict[str, Any], channel: str, ref: str, from_name: str
) -> dict[str, Any]:
    """The change of a card left in a queue the escalation moved away from (its `moves`-th move),
    saying where it went: `said` is what the requester is told of the move (what, actor, to, note)."""
    return {
        **common,
        "kind": Outbound.MOVED_CARD,
        "dedupe_key": f"moved_card:{common['handoff_id']}:{moves}",
        "payload": {**said, "channel": channel, "ref": ref, "from": from_name},
    }


class DuplicateKey(Exception):
    """Two submissions with one idempotency key raced; the other one stored it."""


class ServiceCore:
    def __init__(
        self,
        db: Database,
        *,
        clock: Callable[[], datetime] = utcnow,
        on_commit: Callable[[], None] | None = None,
    ):
        self.db = db
        self.clock = clock
        self._on_commit = on_commit
        self._workspace_ids: dict[tuple[str, str], int] = {}
        self._names: dict[tuple[int, str], str] = {}
        self._queues: TtlCache[int, list[Queue]] = TtlCache(QUEUES_TTL)
        self._gets: Batched[tuple[int, int], Handoff] = Batched(self._get_many)

    def set_on_commit(self, callback: Callable[[], None] | None) -> None:
        self._on_commit = callback

    def _committed(self) -> None:
        if self._on_commit is not None:
            self._on_commit()

    # ---- workspaces -------------------------------------------------------

    async def workspace_id(self, platform: str, external_id: str, name: str | None = None) -> int:
        key = (platform, external_id)
        cached = self._workspace_ids.get(key)
        if cached is not None:
            return cached
        async with self.db.write() as conn:
            ws = await q.ensure_workspace(conn, platform, external_id, self.clock(), name)
        self._workspace_ids[key] = ws
        return ws

    async def workspace(self, workspace_id: int) -> Any:
        async with self.db.read() as conn:
            return await q.get_workspace(conn, workspace_id)

    # ---- queues (kept and moved between in `handoff.queues`) -----------------

    async def queues(self, workspace_id: int) -> list[Queue]:
        """The workspace's queues, the default first (made if the workspace has none yet). Read at
        most every QUEUES_TTL seconds: a change made on another replica applies within that."""
        return await self._queues.get(workspace_id, lambda: self._read_queues(workspace_id))

    async def _read_queues(self, workspace_id: int) -> list[Queue]:
        async with self.db.read() as conn:
            rows = await qs.of_workspace(conn, workspace_id)
        if not rows or not rows[0]._mapping["is_default"]:
            async with self.db.write() as conn:
                await qs.ensure_default(conn, workspace_id, self.clock())
                rows = await qs.of_workspace(conn, workspace_id)
        return [Queue.from_row(r) for r in rows]

    async def queue(self, workspace_id: int, queue_id: int | None) -> Queue:
        """A queue of this workspace by id; the default one for None or an id it does not have."""
        found = await self.queues(workspace_id)
        return next((x for x in found if x.id == queue_id), found[0])

    # ---- the directory: where to write later, and people's names ------------

    async def remember_conversation(self, workspace_id: int, key: str, reference: dict[str, Any]) -> None:
        async with self.db.write() as conn:
            await directory.save_reference(conn, workspace_id, key, reference, self.clock())

    async def conversation(self, workspace_id: int, key: str) -> dict[str, Any] | None:
        async with self.db.read() as conn:
            return await directory.reference(conn, workspace_id, key)

    async def remember_person(self, workspace_id: int, user_id: str, name: str) -> None:
        key = (workspace_id, user_id)
        if self._names.get(key) == name:
            return
        async with self.db.write() as conn:
            await directory.save_person(conn, workspace_id, user_id, name, self.clock())
        self._names[key] = name

    async def names(self, workspace_id: int, user_ids: list[str]) -> dict[str, str]:
        async with self.db.read() as conn:
            return await directory.names(conn, workspace_id, user_ids)

    # ---- reading ----------------------------------------------------------

    async def get(self, workspace_id: int, handoff_id: int) -> Handoff | None:
        async with self.db.read() as conn:
            row = await q.get(conn, workspace_id, handoff_id)
        return Handoff.from_row(row) if row else None

    async def get_together(self, workspace_id: int, handoff_id: int) -> Handoff | None:
        """As `get`, but the handoffs asked for in the same turn of the loop (the rows one lease
        hands the delivery worker) are read in one statement."""
        return await self._gets.get((workspace_id, handoff_id))

    async def _get_many(self, wanted: list[tuple[int, int]]) -> dict[tuple[int, int], Handoff]:
        async with self.db.read() as conn:
            rows = await q.get_many(conn, wanted)
        return {key: Handoff.from_row(row) for key, row in rows.items()}

    async def by_ref(self, workspace_id: int, ref: str) -> Handoff | None:
        """An escalation of this workspace by its number as people write it: `ESC-12`, `esc 12`, `12`."""
        digits = re.fullmatch(r"\s*(?:esc[-\s]?)?(\d{1,9})\s*", ref, re.IGNORECASE)
        if digits is None:
            return None
        async with self.db.read() as conn:
            row = await q.get_by_number(conn, workspace_id, int(digits.group(1)))
        return Handoff.from_row(row) if row else None

    async def events(self, workspace_id: int, handoff_id: int) -> list[dict[str, Any]]:
        async with self.db.read() as conn:
            rows = await q.events(conn, workspace_id, handoff_id)
        return [dict(r._mapping) for r in rows]

    async def _refresh_homes(self, conn: Any, workspace_id: int, now: datetime) -> None:
        """Queue a refresh of the Home tabs people in this workspace have looked at lately (if any)."""
        if await directory.home_viewers_since(conn, workspace_id, now - HOME_VIEWERS_WITHIN, 1):
            await outbox.enqueue_many(conn, [home_refresh_row(workspace_id, now)], now)

    async def _queue_change(self, conn: Any, h: Handoff, what: str, actor: str, now: datetime) -> None:
        """The messages every change causes: the card re-rendered, the requester told, a thread note,
        and the Home tabs of those looking at them refreshed."""
        common = {"workspace_id": h.workspace_id, "handoff_id": h.id, "handoff_version": h.version}
        said = {"what": what, "actor": actor}
        await outbox.enqueue_many(
            conn,
            [
                {**common, "kind": Outbound.UPDATE_CARD, "dedupe_key": f"update_card:{h.id}:{h.version}"},
                {
                    **common,
                    "kind": Outbound.NOTIFY_REQUESTER,
                    "dedupe_key": f"notify:{h.id}:{what}:{h.version}",
                    "payload": said,
                },
                {
                    **common,
                    "kind": Outbound.THREAD_NOTE,
                    "dedupe_key": f"note:{h.id}:{what}:{h.version}",
                    "payload": said,
                },
            ],
            now,
        )
        await self._refresh_homes(conn, h.workspace_id, now)
