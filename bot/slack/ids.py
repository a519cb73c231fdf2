"""Action ids, callback ids, and the typed metadata carried in buttons and modals.

Metadata is a pydantic model serialised to JSON, so a forged or stale value
fails to parse instead of being half-understood. It never carries a workspace:
that always comes from the signed request.
"""

from __future__ import annotations

import enum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from handoff.domain import MAX_ID

# A handoff id as a button or form carries it: a JSON integer (never `true`, never "7") that
# fits the database's column.
HandoffId = Annotated[int, Field(ge=1, le=MAX_ID, strict=True)]
CHANNEL_ID = r"^[A-Z0-9]{1,32}$"


class ActionId(enum.StrEnum):
    CLAIM = "claim"
    RELEASE = "release"
    RESOLVE = "resolve"
    MOVE = "move"  # to another queue (on a claimed card, for its holder: "Escalate further")


class CallbackId(enum.StrEnum):
    ESCALATE = "escalate"
    RESOLVE = "resolve_note"
    CONFIG = "workspace_config"
    # The message shortcut "Escalate this message" (its callback id is also in manifest.yml).
    ESCALATE_MESSAGE = "escalate_message"
    MOVE = "move_queue"
    QUEUE = "queue_config"
    QUEUE_REMOVE = "queue_remove"


class Field_(enum.StrEnum):
    """Block ids of the escalation modal (the action id inside each block is `value`)."""

    SUMMARY = "summary"
    SEVERITY = "severity"
    CUSTOMER = "customer"
    TRIED = "tried"
    DETAILS = "details"
    SENIOR = "requested_senior"
    NOTE = "note"
    QUEUE = "queue"
    MOVE_TRIED = "move_tried"
    # /escalate config queue NAME
    QUEUE_NAME = "queue_name"
    ALIASES = "aliases"
    SERVES = "serves"
    REMINDER_MINUTES = "reminder_minutes"
    LEAD_ALERT_MINUTES = "lead_alert_minutes"
    # /escalate config
    ESCALATION_CHANNEL = "escalation_channel"
    LEADS_CHANNEL = "leads_channel"
    SENIORS = "senior_user_ids"
    SENIOR_GROUP = "senior_usergroup"
    LEADS = "lead_user_ids"
    RETENTION_DAYS = "retention_days"


# The first field of each of our forms: where a message about the whole form is shown.
FIRST_FIELD = {
    CallbackId.ESCALATE.value: Field_.SUMMARY.value,
    CallbackId.RESOLVE.value: Field_.NOTE.value,
    CallbackId.CONFIG.value: Field_.ESCALATION_CHANNEL.value,
    CallbackId.MOVE.value: Field_.QUEUE.value,
    CallbackId.QUEUE.value: Field_.QUEUE_NAME.value,
    CallbackId.QUEUE_REMOVE.value: Field_.QUEUE.value,
}


class BadMetadata(ValueError):
    pass


class _Meta(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def dump(self) -> str:
        return self.model_dump_json(exclude_none=True)

    @classmethod
    def parse(cls, raw: object) -> _Meta:
        if not isinstance(raw, str) or len(raw) > 3000:
            raise BadMetadata("not a metadata string")
        try:
            return cls.model_validate_json(raw)
        except ValidationError as exc:
            raise BadMetadata(str(exc)) from None


class CardAction(_Meta):
    """The value of a card button: which handoff, and the version the card showed."""

    h: HandoffId
    v: int | None = Field(default=None, ge=1, le=MAX_ID, strict=True)
    q: int | None = Field(default=None, ge=1, le=MAX_ID, strict=True)  # the queue whose card it is


class QueueMeta(_Meta):
    """The queue modals' private_metadata: which queue (None: a new one)."""

    q: int | None = Field(default=None, ge=1, le=MAX_ID, strict=True)


class MoveMeta(_Meta):
    """The move modal's private_metadata: which handoff, and the version the mover saw."""

    h: HandoffId
    v: int = Field(ge=1, le=MAX_ID, strict=True)


class EscalateMeta(_Meta):
    """The escalate modal's private_metadata: where /escalate was run, and for "Escalate this
    message", which message (its channel, ts and thread)."""

    channel: str | None = Field(default=None, pattern=CHANNEL_ID)
    src_ts: str | None = Field(default=None, max_length=32, pattern=r"^\d+\.\d+$")
    src_thread: str | None = Field(default=None, max_length=32, pattern=r"^\d+\.\d+$")


class ResolveMeta(_Meta):
    h: HandoffId
    channel: str | None = Field(default=None, pattern=CHANNEL_ID)
