"""Domain types: what an escalation is and what can happen to it.

Nothing here knows about Slack or Teams; platform adapters turn these into
cards and replies.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# The largest id a row can have (a 32-bit INTEGER column on PostgreSQL): anything a request
# carries beyond it is not an id of ours.
MAX_ID = 2**31 - 1


class Status(enum.StrEnum):
    OPEN = "open"
    CLAIMED = "claimed"
    RESOLVED = "resolved"
    CANCELLED = "cancelled"


class Severity(enum.StrEnum):
    P1 = "P1"
    P2 = "P2"
    P3 = "P3"
    P4 = "P4"

    @property
    def label(self) -> str:
        return SEVERITY_LABELS[self]


SEVERITY_LABELS = {
    Severity.P1: "P1 · critical",
    Severity.P2: "P2 · high",
    Severity.P3: "P3 · normal",
    Severity.P4: "P4 · low",
}


class Outbound(enum.StrEnum):
    """Kinds of outbox rows. Platform-neutral; each platform's deliverer renders them."""

    POST_CARD = "post_card"
    UPDATE_CARD = "update_card"
    NOTIFY_REQUESTER = "notify_requester"
    THREAD_NOTE = "thread_note"
    REMIND_SENIORS = "remind_seniors"
    ALERT_LEADS = "alert_leads"
    WEEKLY_REPORT = "weekly_report"
    REFRESH_HOME = "refresh_home"
    NOTICE = "notice"  # something the leads of a workspace need to know once (payload: which notice)
    MOVED_CARD = "moved_card"  # the card an escalation had in the queue it left: says where it went


@dataclass(frozen=True)
class Draft:
    """A validated escalation, before it is stored."""

    summary: str
    severity: Severity
    tried: str
    details: str = ""
    customer: str = ""
    requested_senior_id: str | None = None
    origin_channel: str | None = None
    category: str | None = None
    links: list[str] | None = None
    transcript: list[dict[str, Any]] | None = None
    source: dict[str, Any] | None = None  # the chat message it was escalated from


@dataclass(frozen=True)
class Handoff:
    id: int
    workspace_id: int
    number: int
    status: Status
    severity: Severity
    summary: str
    details: str
    tried: str
    customer: str
    requester_id: str
    requested_senior_id: str | None
    origin_channel: str | None
    claimed_by: str | None
    claimed_at: datetime | None
    first_action_at: datetime | None
    resolved_by: str | None
    resolution: str | None
    resolved_at: datetime | None
    version: int
    card_channel: str | None
    card_ref: str | None
    card_url: str | None
    created_at: datetime
    updated_at: datetime
    category: str | None = None
    links: list[str] | None = None
    transcript: list[dict[str, Any]] | None = None
    source: dict[str, Any] | None = None
    similar: list[dict[str, Any]] | None = None
    queue_id: int | None = None
    queue_arrived_at: datetime | None = None
    moves: int = 0
    handovers: list[dict[str, Any]] | None = None
    cancelled_by: str | None = None
    cancelled_at: datetime | None = None

    @property
    def ref(self) -> str:
        return f"ESC-{self.number}"

    @classmethod
    def from_row(cls, row: Any) -> Handoff:
        m = row._mapping
        return cls(
            id=m["id"],
            workspace_id=m["workspace_id"],
            number=m["number"],
            status=Status(m["status"]),
            severity=Severity(m["severity"]),
            summary=m["summary"],
            details=m["details"] or "",
            tried=m["tried"] or "",
            customer=m["customer"] or "",
            requester_id=m["requester_id"],
            requested_senior_id=m["requested_senior_id"],
            origin_channel=m["origin_channel"],
            claimed_by=m["claimed_by"],
            claimed_at=m["claimed_at"],
            first_action_at=m["first_action_at"],
            resolved_by=m["resolved_by"],
            resolution=m["resolution"],
            resolved_at=m["resolved_at"],
            version=m["version"],
            card_channel=m["card_channel"],
            card_ref=m["card_ref"],
            card_url=m["card_url"],
            created_at=m["created_at"],
            updated_at=m["updated_at"],
            category=m["category"],
            links=m["links"],
            transcript=m["transcript"],
            source=m["source"],
            similar=m["similar"],
            queue_id=m["queue_id"],
            queue_arrived_at=m["queue_arrived_at"],
            moves=m["moves"] or 0,
            handovers=m["handovers"],
            cancelled_by=m["cancelled_by"],
            cancelled_at=m["cancelled_at"],
        )


@dataclass(frozen=True)
class Queue:
    """Where escalations go: a channel, who may claim, who leads, how soon to chase. The default
    queue's channels and people are the workspace's own settings (the platform fills them in)."""

    id: int
    workspace_id: int
    name: str
    is_default: bool
    aliases: tuple[str, ...] = ()
    escalation_channel: str | None = None
    leads_channel: str | None = None
    senior_user_ids: tuple[str, ...] = ()
    senior_usergroup: str | None = None
    lead_user_ids: tuple[str, ...] = ()
    reminder_minutes: int | None = None
    lead_alert_minutes: int | None = None
    serves: tuple[str, ...] = ()  # the channels whose escalations it takes by default

    @classmethod
    def from_row(cls, row: Any) -> Queue:
        m = row._mapping
        s: dict[str, Any] = m["settings"] or {}
        return cls(
            id=m["id"],
            workspace_id=m["workspace_id"],
            name=m["name"],
            is_default=bool(m["is_default"]),
            aliases=tuple(m["aliases"] or ()),
            escalation_channel=m["escalation_channel"],
            leads_channel=m["leads_channel"],
            senior_user_ids=tuple(s.get("senior_user_ids") or ()),
            senior_usergroup=s.get("senior_usergroup"),
            lead_user_ids=tuple(s.get("lead_user_ids") or ()),
            reminder_minutes=s.get("reminder_minutes"),
            lead_alert_minutes=s.get("lead_alert_minutes"),
            serves=tuple(s.get("serves") or ()),
        )

    def settings(self) -> dict[str, Any]:
        """What goes in the row's `settings` JSON."""
        return {
            "senior_user_ids": list(self.senior_user_ids),
            "senior_usergroup": self.senior_usergroup,
            "lead_user_ids": list(self.lead_user_ids),
            "reminder_minutes": self.reminder_minutes,
            "lead_alert_minutes": self.lead_alert_minutes,
            "serves": list(self.serves),
        }

    def answers_to(self, word: str) -> bool:
        word = word.strip().lower()
        return word == self.name.lower() or word in self.aliases


# ---- outcomes of a claim --------------------------------------------------


@dataclass(frozen=True)
class Won:
    handoff: Handoff


@dataclass(frozen=True)
class AlreadyYours:
    handoff: Handoff


@dataclass(frozen=True)
class Conflict:
    winner: str
    claimed_at: datetime
    handoff: Handoff


@dataclass(frozen=True)
class NotAllowed:
    """`own`: the requester tried to claim their own; `not_senior`: not on the seniors list."""

    reason: str
    handoff: Handoff


@dataclass(frozen=True)
class Closed:
    handoff: Handoff


@dataclass(frozen=True)
class NotFound:
    pass


@dataclass(frozen=True)
class MovedAway:
    """The click came from a card of a queue the escalation has left: it is in `handoff.queue_id` now."""

    handoff: Handoff


ClaimOutcome = Won | AlreadyYours | Conflict | NotAllowed | Closed | NotFound | MovedAway


# ---- outcomes of release / resolve ----------------------------------------


@dataclass(frozen=True)
class Done:
    handoff: Handoff


@dataclass(frozen=True)
class NotHolder:
    """The clicker does not hold the escalation (any more): someone else does, or nobody."""

    handoff: Handoff


ChangeOutcome = Done | NotHolder | Closed | NotFound


# ---- outcomes of a move ---------------------------------------------------


@dataclass(frozen=True)
class Moved:
    handoff: Handoff
    from_queue: Queue
    to_queue: Queue
    released: str | None  # who held it, now released


@dataclass(frozen=True)
class Changed:
    """It changed since the mover looked (claimed, released, moved by someone else): nothing moved."""

    handoff: Handoff


MoveOutcome = Moved | Changed | Closed | NotFound | NotAllowed


@dataclass(frozen=True)
class Escalated:
    handoff: Handoff
    created: bool  # False when the idempotency key had been seen: nothing new was stored
