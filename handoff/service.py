"""The engine: escalate, claim, release, resolve, record what the platforms did.

Each change is one write transaction holding the compare-and-set, its audit
event and the outbox rows for the messages it causes. When that transaction
commits, `on_commit` wakes the delivery worker so the messages go out at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from handoff import similar
from handoff.domain import (
    AlreadyYours,
    ChangeOutcome,
    ClaimOutcome,
    Closed,
    Conflict,
    Done,
    Draft,
    Escalated,
    Handoff,
    NotAllowed,
    NotFound,
    NotHolder,
    Outbound,
    Severity,
    Status,
    Won,
)
from handoff.schedule import last_due, reminder_after, week_bounds
from storage import directory, outbox, search
from storage import handoffs as q
from storage.db import Database


def utcnow() -> datetime:
    return datetime.now(UTC)


log = logging.getLogger(__name__)

_OPEN_AGAIN: ClaimOutcome = NotFound()  # sentinel, compared by identity


SIMILAR_BUDGET_SECONDS = 2.0
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


class DuplicateKey(Exception):
    """Two submissions with one idempotency key raced; the other one stored it."""


class HandoffService:
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

    async def events(self, workspace_id: int, handoff_id: int) -> list[dict[str, Any]]:
        async with self.db.read() as conn:
            rows = await q.events(conn, workspace_id, handoff_id)
        return [dict(r._mapping) for r in rows]

    # ---- escalate ---------------------------------------------------------

    async def escalate(self, workspace_id: int, requester_id: str, draft: Draft, *, key: str) -> Escalated:
        """Store an escalation and queue its card. The same key twice stores it once."""
        try:
            return await self._escalate(workspace_id, requester_id, draft, key)
        except DuplicateKey:
            async with self.db.read() as conn:
                row = await q.get_by_key(conn, workspace_id, key)
            assert row is not None
            return Escalated(Handoff.from_row(row), created=False)

    async def _escalate(self, workspace_id: int, requester_id: str, draft: Draft, key: str) -> Escalated:
        number: int | None = None
        if self.db.is_postgres:
            # Replicas would queue on the workspace's counter row for as long as a transaction
            # holds it; take the number in a statement of its own instead. A number is only
            # skipped if storing then fails, or two submissions of one form race past this check.
            async with self.db.autocommit() as conn:
                number = await q.take_number_if_new(conn, workspace_id, key)
                if number is None:
                    existing = await q.get_by_key(conn, workspace_id, key)
                    if existing is None:
                        raise LookupError(f"workspace {workspace_id} does not exist")
                    return Escalated(Handoff.from_row(existing), created=False)
        async with self.db.write() as conn:
            now = self.clock()
            if number is None:
                # SQLite: one writer at a time anyway, so the number is taken inside, and stays dense:
                # a re-submission below rolls the whole transaction back, the number with it.
                number = await q.take_number(conn, workspace_id)
            row = await q.insert(
                conn,
                {
                    "workspace_id": workspace_id,
                    "number": number,
                    "status": Status.OPEN.value,
                    "severity": draft.severity.value,
                    "category": draft.category,
                    "summary": draft.summary,
                    "details": draft.details,
                    "tried": draft.tried,
                    "customer": draft.customer,
                    "links": draft.links,
                    "transcript": draft.transcript,
                    "source": draft.source,
                    "requester_id": requester_id,
                    "requested_senior_id": draft.requested_senior_id,
                    "origin_channel": draft.origin_channel,
                    "version": 1,
                    "idempotency_key": key,
                    "created_at": now,
                    "updated_at": now,
                },
            )
            if row is None:
                raise DuplicateKey(key)  # a re-submission: nothing new
            new_id = row._mapping["id"]
            await q.add_event(
                conn,
                workspace_id=workspace_id,
                handoff_id=new_id,
                kind="created",
                actor=requester_id,
                at=now,
                data={"severity": draft.severity.value},
            )
            common = {"workspace_id": workspace_id, "handoff_id": new_id, "handoff_version": 1}
            await outbox.enqueue_many(
                conn,
                [
                    {**common, "kind": Outbound.POST_CARD, "dedupe_key": f"post_card:{new_id}"},
                    # Queued now so it is first in the requester's lane; it waits until the card is up.
                    {
                        **common,
                        "kind": Outbound.NOTIFY_REQUESTER,
                        "dedupe_key": f"notify:{new_id}:created",
                        "payload": {"what": "created", "actor": requester_id},
                    },
                ],
                now,
            )
            await self._refresh_homes(conn, workspace_id, now)
            h = Handoff.from_row(row)
        self._committed()
        return Escalated(h, created=True)

    # ---- claim ------------------------------------------------------------

    async def claim(self, workspace_id: int, handoff_id: int, user: str, *, may_claim: bool = True) -> ClaimOutcome:
        """Exactly one caller per open escalation gets Won, on any number of replicas."""
        now = self.clock()
        async with self.db.write() as conn:
            outcome: ClaimOutcome = NotFound()
            for _ in range(3):
                row = await q.claim(conn, workspace_id, handoff_id, user, now) if may_claim else None
                if row is not None:
                    h = Handoff.from_row(row)
                    await q.add_event(
                        conn,
                        workspace_id=workspace_id,
                        handoff_id=handoff_id,
                        kind="claimed",
                        actor=user,
                        at=now,
                    )
                    await self._queue_change(conn, h, "claimed", user, now)
                    outcome = Won(h)
                    break
                current = await q.get(conn, workspace_id, handoff_id)
                outcome = self._why_not(current, user, may_claim)
                if outcome is not _OPEN_AGAIN:
                    break
            if isinstance(outcome, Conflict):
                # Contested claims are a weekly figure: keep each losing click.
                await q.add_event(
                    conn,
                    workspace_id=workspace_id,
                    handoff_id=handoff_id,
                    kind="claim_conflict",
                    actor=user,
                    at=now,
                    data={"winner": outcome.winner},
                )
            elif outcome is _OPEN_AGAIN:
                outcome = NotFound()
        if isinstance(outcome, Won):
            self._committed()
        return outcome

    @staticmethod
    def _why_not(row: Any, user: str, may_claim: bool) -> ClaimOutcome:
        if row is None:
            return NotFound()
        h = Handoff.from_row(row)
        if h.status in (Status.RESOLVED, Status.CANCELLED):
            return Closed(h)
        if h.requester_id == user:
            return NotAllowed("own", h)
        if h.status == Status.CLAIMED and h.claimed_by == user:
            return AlreadyYours(h)
        if not may_claim:
            return NotAllowed("not_senior", h)
        if h.status == Status.CLAIMED:
            assert h.claimed_by is not None and h.claimed_at is not None
            return Conflict(h.claimed_by, h.claimed_at, h)
        # Released again between our UPDATE and our read: try the claim again.
        return _OPEN_AGAIN

    # ---- release / resolve ------------------------------------------------

    async def release(self, workspace_id: int, handoff_id: int, user: str) -> ChangeOutcome:
        now = self.clock()
        async with self.db.write() as conn:
            row = await q.release(conn, workspace_id, handoff_id, user, now)
            if row is None:
                return self._not_changed(await q.get(conn, workspace_id, handoff_id))
            h = Handoff.from_row(row)
            await q.add_event(
                conn, workspace_id=workspace_id, handoff_id=handoff_id, kind="released", actor=user, at=now
            )
            await self._queue_change(conn, h, "released", user, now)
        self._committed()
        return Done(h)

    async def resolve(self, workspace_id: int, handoff_id: int, user: str, note: str) -> ChangeOutcome:
        now = self.clock()
        async with self.db.write() as conn:
            first = await q.mark_first_action(conn, workspace_id, handoff_id, user, now)
            row = await q.resolve(conn, workspace_id, handoff_id, user, note, now)
            if row is None:
                return self._not_changed(await q.get(conn, workspace_id, handoff_id))
            h = Handoff.from_row(row)
            if first:
                await q.add_event(
                    conn,
                    workspace_id=workspace_id,
                    handoff_id=handoff_id,
                    kind="first_action",
                    actor=user,
                    at=now,
                    data={"via": "resolve"},
                )
            await q.add_event(
                conn, workspace_id=workspace_id, handoff_id=handoff_id, kind="resolved", actor=user, at=now
            )
            await self._queue_change(conn, h, "resolved", user, now)
        self._committed()
        return Done(h)

    @staticmethod
    def _not_changed(row: Any) -> ChangeOutcome:
        if row is None:
            return NotFound()
        h = Handoff.from_row(row)
        if h.status in (Status.RESOLVED, Status.CANCELLED):
            return Closed(h)
        return NotHolder(h)

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

    # ---- first action ------------------------------------------------------

    async def first_reply(
        self, workspace_id: int, *, channel: str, thread_ref: str, user: str, event_id: str | None, source: str
    ) -> str:
        """A reply in a card's thread. If it is the claimer's first, it is the escalation's first action.

        Returns what happened: "recorded", "duplicate" (this event was handled before),
        "not_a_card", or "ignored" (not the claimer, or not their first).
        The de-duplication and the change are one transaction, so a retried event counts once
        and a failed one is not lost.
        """
        now = self.clock()
        async with self.db.write() as conn:
            if event_id is not None and not await q.mark_processed(conn, source, event_id, now):
                return "duplicate"
            row = await q.get_by_card(conn, workspace_id, channel, thread_ref)
            if row is None:
                return "not_a_card"
            h = Handoff.from_row(row)
            if not await q.mark_first_action(conn, workspace_id, h.id, user, now):
                return "ignored"
            await q.add_event(
                conn,
                workspace_id=workspace_id,
                handoff_id=h.id,
                kind="first_action",
                actor=user,
                at=now,
                data={"via": "thread_reply"},
            )
        return "recorded"

    async def seen_event(self, source: str, event_id: str) -> bool:
        async with self.db.read() as conn:
            return await q.is_processed(conn, source, event_id)

    # ---- reminders and the weekly report -----------------------------------

    async def queue_reminders(self, *, reminder_minutes: int, lead_alert_minutes: int) -> int:
        """Chase open escalations nobody has claimed: the seniors after `reminder_minutes`, the
        leads after `lead_alert_minutes` (a third of each for P1). Each happens once per
        escalation however many replicas run this at the same moment. Returns how many were queued."""
        now = self.clock()
        queued = 0
        for kind, event, minutes in (
            (Outbound.REMIND_SENIORS, "reminded", reminder_minutes),
            (Outbound.ALERT_LEADS, "lead_alerted", lead_alert_minutes),
        ):
            earliest = now - reminder_after(Severity.P1, minutes)
            async with self.db.read() as conn:
                candidates = await q.open_without_event(conn, before=earliest, kind=event)
            for row in candidates:
                h = Handoff.from_row(row)
                if h.created_at > now - reminder_after(h.severity, minutes):
                    continue
                async with self.db.write() as conn:
                    fresh = await outbox.enqueue(
                        conn,
                        workspace_id=h.workspace_id,
                        handoff_id=h.id,
                        handoff_version=h.version,
                        kind=kind,
                        dedupe_key=f"{event}:{h.id}",
                        payload={"minutes": minutes if h.severity != Severity.P1 else round(minutes / 3, 1)},
                        now=now,
                    )
                    if fresh:
                        await q.add_event(
                            conn,
                            workspace_id=h.workspace_id,
                            handoff_id=h.id,
                            kind=event,
                            actor=None,
                            at=now,
                            data={"after_minutes": (now - h.created_at).total_seconds() / 60},
                        )
                queued += int(fresh)
        if queued:
            self._committed()
        return queued

    async def queue_weekly_reports(self, *, weekday: str, at: time, timezone: str) -> list[tuple[int, date]]:
        """Queue each workspace's report for the week that ended before the latest scheduled
        moment, once per workspace and week, even from several replicas, and late if the bot
        was down when it was due."""
        now = self.clock()
        tz = ZoneInfo(timezone)
        _slot, week = last_due(now, weekday, at, tz)
        _start, week_end = week_bounds(week, tz)
        queued: list[tuple[int, date]] = []
        async with self.db.read() as conn:
            workspace_ids = await q.workspaces_created_before(conn, week_end)
        for ws in workspace_ids:
            async with self.db.write() as conn:
                if not await q.claim_weekly_report(conn, ws, week, now):
                    continue
                await outbox.enqueue(
                    conn,
                    workspace_id=ws,
                    kind=Outbound.WEEKLY_REPORT,
                    dedupe_key=f"weekly_report:{ws}:{week.isoformat()}",
                    payload={"week": week.isoformat()},
                    now=now,
                )
            queued.append((ws, week))
        if queued:
            self._committed()
        return queued

    async def queue_report_now(self, workspace_id: int, week: date) -> str:
        """`escalation-bot report --post`: post a week's report now, whether or not it went out before.
        Returns the outbox key, to follow what became of it."""
        now = self.clock()
        key = f"weekly_report:{workspace_id}:{week.isoformat()}:manual:{now.isoformat()}"
        async with self.db.write() as conn:
            await outbox.enqueue(
                conn,
                workspace_id=workspace_id,
                kind=Outbound.WEEKLY_REPORT,
                dedupe_key=key,
                payload={"week": week.isoformat()},
                now=now,
            )
        self._committed()
        return key

    async def outbox_row(self, dedupe_key: str) -> outbox.OutboxItem | None:
        async with self.db.read() as conn:
            return await outbox.by_key(conn, dedupe_key)

    async def queue_notice(self, workspace_id: int, notice: str) -> bool:
        """Tell a workspace's leads something once, ever (each platform words it): True if queued now."""
        now = self.clock()
        async with self.db.single() as conn:
            fresh = await outbox.enqueue(
                conn,
                workspace_id=workspace_id,
                kind=Outbound.NOTICE,
                dedupe_key=f"notice:{notice}:{workspace_id}",
                payload={"notice": notice},
                now=now,
            )
        if fresh:
            self._committed()
        return fresh

    # ---- similar past resolutions, the thread an escalation came from ---------

    async def similar_resolved(self, workspace_id: int, h: Handoff, limit: int = 3) -> list[dict[str, Any]]:
        """Up to `limit` resolved escalations of this workspace that look like `h`, best first."""
        terms = similar.query_terms(h.summary, h.details, h.tried)
        async with self.db.read(heavy=True) as conn:
            candidates = await search.resolved_candidates(conn, workspace_id, terms, exclude_id=h.id)
        return [m.as_json() for m in similar.pick(terms, candidates, limit)]

    async def with_similar(self, h: Handoff, *, budget: float = SIMILAR_BUDGET_SECONDS) -> Handoff:
        """The handoff with its similar resolutions: those kept when its card was posted, or found now
        (to be kept by `card_posted`). The card does not wait longer than `budget` for them: past
        it, the card goes out without."""
        if h.similar is not None:
            return h
        try:
            async with asyncio.timeout(budget):
                found = await self.similar_resolved(h.workspace_id, h)
        except TimeoutError:
            log.warning("%s: similar resolutions took over %.1f s; the card goes out without them", h.ref, budget)
            return h
        return replace(h, similar=found)

    async def record_thread(
        self, h: Handoff, transcript: list[dict[str, Any]] | None, source: dict[str, Any]
    ) -> Handoff:
        async with self.db.write() as conn:
            await q.set_transcript(conn, h.workspace_id, h.id, transcript, source)
        return replace(h, transcript=transcript, source=source)

    # ---- one person's view: App Home, `/escalate mine` ---------------------

    async def open_queue(self, workspace_id: int, limit: int = 20) -> tuple[list[Handoff], int]:
        """The open escalations everyone's Home shows (most severe, then oldest, first), and how many."""
        async with self.db.read() as conn:
            rows, total = await q.open_queue(conn, workspace_id, limit)
        return [Handoff.from_row(r) for r in rows], total

    async def home(
        self, workspace_id: int, user: str, *, queue: tuple[list[Handoff], int] | None = None, own_limit: int = 10
    ) -> HomeView:
        """One person's Home; pass `queue` (from `open_queue`) when drawing several people's at once."""
        if queue is None:
            queue = await self.open_queue(workspace_id)
        async with self.db.read() as conn:
            mine = await q.of_person(conn, workspace_id, requester=user, statuses=("open", "claimed"), limit=own_limit)
            claims = await q.of_person(conn, workspace_id, claimer=user, statuses=("claimed",), limit=own_limit)
        return HomeView(
            open=queue[0],
            open_total=queue[1],
            mine=[Handoff.from_row(r) for r in mine],
            claims=[Handoff.from_row(r) for r in claims],
        )

    async def mine(self, workspace_id: int, user: str, limit: int = 20) -> list[Handoff]:
        async with self.db.read() as conn:
            rows = await q.of_person(conn, workspace_id, requester=user, statuses=("open", "claimed"), limit=limit)
        return [Handoff.from_row(r) for r in rows]

    async def home_opened(self, workspace_id: int, user: str) -> None:
        async with self.db.write() as conn:
            await directory.home_opened(conn, workspace_id, user, self.clock())

    async def home_viewers(self, workspace_id: int) -> list[str]:
        async with self.db.read() as conn:
            return await directory.home_viewers_since(
                conn, workspace_id, self.clock() - HOME_VIEWERS_WITHIN, HOME_VIEWERS_MAX
            )

    async def configure_workspace(
        self, workspace_id: int, *, escalation_channel: str | None, leads_channel: str | None, settings: dict[str, Any]
    ) -> None:
        async with self.db.write() as conn:
            await directory.save_workspace_config(
                conn,
                workspace_id,
                escalation_channel=escalation_channel,
                leads_channel=leads_channel,
                settings=settings,
            )
            woken = await outbox.wake_workspace(conn, workspace_id, self.clock())  # cards waiting for a channel
        if woken:
            self._committed()

    # ---- what the platforms report back ----------------------------------

    async def card_failure(self, handoff_id: int) -> str | None:
        """Why a handoff's card will not be posted (its post died), or None."""
        async with self.db.read() as conn:
            return await outbox.card_failure(conn, handoff_id)

    async def channel_ready(self, workspace_id: int) -> int:
        """A channel was set up in this workspace: what was waiting for one goes out now."""
        async with self.db.single() as conn:
            woken = await outbox.wake_workspace(conn, workspace_id, self.clock())
        if woken:
            self._committed()
        return woken

    async def card_posted(
        self,
        workspace_id: int,
        handoff_id: int,
        *,
        channel: str,
        ref: str,
        url: str | None,
        similar: list[dict[str, Any]] | None = None,
    ) -> bool:
        """Remember the card's place (and the similar resolutions it shows), once, and release the
        messages that were waiting for it."""
        now = self.clock()
        async with self.db.write() as conn:
            first = await q.set_card(conn, workspace_id, handoff_id, channel, ref, url, similar)
            if first:
                await q.add_event(
                    conn,
                    workspace_id=workspace_id,
                    handoff_id=handoff_id,
                    kind="posted",
                    actor=None,
                    at=now,
                    data={"channel": channel, "ref": ref},
                )
                await outbox.wake_waiting(conn, handoff_id, now)
        if first:
            self._committed()
        return first
