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
        )


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


ClaimOutcome = Won | AlreadyYours | Conflict | NotAllowed | Closed | NotFound


# ---- outcomes of release / resolve ----------------------------------------


@dataclass(frozen=True)
class Done:
    handoff: Handoff


@dataclass(frozen=True)
class NotHolder:
    """The clicker does not hold the escalation (any more): someone else does, or nobody."""

    handoff: Handoff


ChangeOutcome = Done | NotHolder | Closed | NotFound


@dataclass(frozen=True)
class Escalated:
    handoff: Handoff
    created: bool  # False when the idempotency key had been seen: nothing new was stored
